"""Serve the HTTP views: health, the rules in force, a user's state, the routing of queries.

/metrics is served by Faust's Prometheus sensor setup (see stream/runtime/app.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from faust import web

from stream.engine.view import user_view
from stream.runtime.routing import Router, owned_by

if TYPE_CHECKING:
    from stream.runtime.app import Worker


def register_views(worker: Worker) -> None:
    """Add the worker's HTTP views to its Faust app."""
    app, book = worker.app, worker.book
    calendar = worker.pipeline.engine.calendar

    @app.page("/health")
    async def health(self: web.View, request: web.Request) -> web.Response:
        now = book.at(int(time.time() * 1000))
        return self.json({"status": "ok", "rules_version": now.version})

    @app.page("/rules")
    async def rules(self: web.View, request: web.Request) -> web.Response:
        now = book.at(int(time.time() * 1000))
        return self.json(
            {
                "in_effect": now.version,
                "versions": [
                    {
                        "version": v.version,
                        "effective_from_ms": v.effective_from_ms,
                        "rules": v.source.model_dump(mode="json"),
                    }
                    for v in book.versions
                ],
            }
        )

    # Views of one owner's state: any worker answers, the owner's partition decides which one computes
    # the answer (stream/runtime/routing.py).
    @app.page("/users/{user_id}")
    @owned_by(worker, lambda user_id: user_id.encode())
    async def user(self: web.View, request: web.Request, partition: int, user_id: str) -> web.Response:
        cache = worker.pipeline.cache
        view = user_view(lambda k: cache.get(partition, k), user_id.encode(), book.latest, calendar)
        if view is None:
            return self.json({"error": f"unknown user {user_id!r}"}, status=404)
        return self.json({"user_id": user_id, **view})

    @app.page("/routing")
    async def routing(self: web.View, request: web.Request) -> web.Response:
        """This worker's view of the group: its advertised URL, who owns which partition, what it holds."""
        router = Router(worker)
        owners = {str(p): router.owner(p) for p in range(worker.settings.topic_partitions)}
        return self.json(
            {
                "url": router.me,
                "ready": router.ready(),
                "held": [p for p in range(worker.settings.topic_partitions) if router.held(p)],
                "owners": owners,
                "members": router.members(),
            }
        )
