"""Serve the HTTP views: health, the rules in force, a user's state.

/metrics is served by Faust's Prometheus sensor setup (see stream/runtime/app.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust import web

from stream.engine.state import UserState

if TYPE_CHECKING:
    from stream.runtime.app import Worker


def user_view(state: UserState, levels: list[str]) -> dict[str, Any]:
    """Return the public view of a user's state: balance, level, retained counters."""
    doc = state.doc
    return {
        "team_id": state.team,
        "points": doc["points"],
        "level": levels[doc["level"]],
        "lifetime": doc["life"],
        "watermark_ts": doc["wm"],
        "days": {name: {"points": b["pts"], "counters": b["n"]} for name, b in sorted(doc["days"].items())},
        "weeks": {
            name: {"counters": b["n"], "done": b.get("done", [])} for name, b in sorted(doc["weeks"].items())
        },
        "roster": doc["roster"],
        "left": doc.get("left", False),
    }


def register_views(worker: Worker) -> None:
    """Add the worker's HTTP views to its Faust app."""
    app, table = worker.app, worker.table
    levels = [level.name for level in worker.rules.levels]

    @app.page("/health")
    async def health(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok", "rules_version": worker.rules.version})

    @app.page("/rules")
    async def rules(self: web.View, request: web.Request) -> web.Response:
        return self.json(worker.rules.model_dump(mode="json"))

    @app.page("/users/{user_id}")
    async def user(self: web.View, request: web.Request, user_id: str) -> web.Response:
        key = user_id.encode()
        state = worker.pipeline.cache.get(key)
        if state is None:
            raw = table.get(key)
            if raw is None:
                return self.json({"error": f"unknown user {user_id!r}"}, status=404)
            state = UserState.decode(raw)
        return self.json({"user_id": user_id, **user_view(state, levels)})
