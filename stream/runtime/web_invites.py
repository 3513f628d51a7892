"""Serve the invitation views: what waits for an operator, the funnel by channel, a month's budget.

- ``/invites/pending``: every invitation waiting for an operator's approval (daily limit or budget),
  gathered from every worker's ``/local/invites/pending``, by registration time;
- ``/invites/funnel?from=YYYY-MM-DD&to=YYYY-MM-DD``: the funnel of the registrations of those days
  (inclusive) per channel and stage, gathered from every worker's ``/local/invites/funnel``;
- ``/invites/budget/{month}``: the points promised against a month's budget, answered by the worker
  that owns the month's budget key (routed like a user's view).

A gathered answer needs every partition: while the group rebalances it is a 503 to retry, never a
partial sum. A user's own invitations are part of ``/users/{id}`` (stream/runtime/web.py).
"""

from __future__ import annotations

import re
import time
from datetime import date
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from faust import web

from stream.domains.invitations import budget_owner
from stream.runtime import invites_view
from stream.runtime.routing import Router, RouteUnavailable, owned_by, unavailable

if TYPE_CHECKING:
    from stream.runtime.app import Worker

MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _days(request: web.Request) -> tuple[date, date] | str:
    """Return the ``from`` and ``to`` days of a funnel request, or why they are not a range of days."""
    days = []
    for name in ("from", "to"):
        text = request.query.get(name)
        day = invites_view.parse_day(text)
        if day is None:
            got = "missing" if text is None else f"{text!r} is not a date like 2026-11-23"
            return f"{name}: {got} (from and to: YYYY-MM-DD, inclusive)"
        days.append(day)
    first, last = days
    if first > last:
        return f"from {first} is after to {last}"
    return first, last


def register_invite_views(worker: Worker, router: Router) -> None:
    """Add the invitation views to the worker's Faust app."""
    app, book = worker.app, worker.book
    cache = worker.pipeline.cache
    calendar = worker.pipeline.engine.calendar
    partitions = worker.settings.topic_partitions

    def held_here() -> list[int]:
        return [p for p in range(partitions) if router.held(p)]

    async def gather(path: str) -> list[Any]:
        """Return every worker's answer to a local path; raise RouteUnavailable unless every partition answered."""
        answers = await router.gather_all(path)
        held = sorted(p for _url, body in answers for p in body["partitions"])
        if held != list(range(partitions)):
            raise RouteUnavailable(f"partitions answered {held}, not all {partitions}: rebalancing, retry")
        return [body for _url, body in answers]

    @app.page("/invites/pending")
    async def pending(self: web.View, request: web.Request) -> web.Response:
        try:
            bodies = await gather("/local/invites/pending")
        except RouteUnavailable as exc:
            return unavailable(self, str(exc))
        rows = invites_view.sort_pending(row for body in bodies for row in body["pending"])
        return self.json({"pending": rows, "count": len(rows), "points": sum(row["points"] for row in rows)})

    @app.page("/local/invites/pending")
    async def local_pending(self: web.View, request: web.Request) -> web.Response:
        """This worker's partitions' invitations that wait for an operator."""
        held = held_here()
        rows = []
        for p in held:
            rows.extend(
                invites_view.pending_rows(
                    cache.get(p, invites_view.held_key(worker.pipeline.partition(p).prefix))
                )
            )
        return self.json({"partitions": held, "pending": rows})

    @app.page("/invites/funnel")
    async def funnel(self: web.View, request: web.Request) -> web.Response:
        days = _days(request)
        if isinstance(days, str):
            return self.json({"error": days}, status=400)
        first, last = days
        query = urlencode({"from": first.isoformat(), "to": last.isoformat()})
        try:
            bodies = await gather(f"/local/invites/funnel?{query}")
        except RouteUnavailable as exc:
            return unavailable(self, str(exc))
        total: dict[str, dict[str, int]] = {}
        for body in bodies:
            invites_view.add_funnel(total, body["funnel"])
        return self.json(
            {"from": first.isoformat(), "to": last.isoformat(), **invites_view.funnel_view(total)}
        )

    @app.page("/local/invites/funnel")
    async def local_funnel(self: web.View, request: web.Request) -> web.Response:
        """This worker's partitions' funnel of the registration days asked (summed over its partitions)."""
        days = _days(request)
        if isinstance(days, str):
            return self.json({"error": days}, status=400)
        first, last = days
        held = held_here()
        total: dict[str, dict[str, int]] = {}
        for p in held:
            prefix = worker.pipeline.partition(p).prefix
            scan = partial(cache.scan, p)
            invites_view.add_funnel(total, invites_view.local_funnel(scan, prefix, first, last))
        return self.json({"partitions": held, "funnel": total})

    @app.page("/invites/budget/{month}")
    @owned_by(worker, lambda month: budget_owner(month))
    async def budget(self: web.View, request: web.Request, partition: int, month: str) -> web.Response:
        if not MONTH.fullmatch(month):
            return self.json({"error": f"month {month!r} is not a month like 2026-11"}, status=400)
        year, number = int(month[:4]), int(month[5:])
        following = f"{year + number // 12}-{number % 12 + 1:02d}"
        # the budget of the version in effect at the month's end, or now while the month runs
        at = min(int(time.time() * 1000), calendar.month_start_ms(following) - 1)
        limit = book.at(at).invites.monthly_budget
        record = cache.get(partition, budget_owner(month))
        return self.json(invites_view.budget_view(record, month, limit))
