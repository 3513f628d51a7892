"""Serve the HTTP views: health, the rules in force, a user's state.

/metrics is served by Faust's Prometheus sensor setup (see stream/runtime/app.py).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from faust import web

from stream.engine.view import user_view
from stream.pipeline import partition_for

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

    @app.page("/users/{user_id}")
    async def user(self: web.View, request: web.Request, user_id: str) -> web.Response:
        key = user_id.encode()
        partition = partition_for(key, worker.settings.topic_partitions)
        cache = worker.pipeline.cache
        if not worker.store.holds(partition):
            return self.json(
                {"error": f"user {user_id!r} is on partition {partition}, not held here"}, status=404
            )
        view = user_view(lambda k: cache.get(partition, k), key, book.latest, calendar)
        if view is None:
            return self.json({"error": f"unknown user {user_id!r}"}, status=404)
        return self.json({"user_id": user_id, **view})
