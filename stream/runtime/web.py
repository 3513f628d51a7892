"""Serve the HTTP views: health, rules, users and their ledgers, groups, teams, boards, the economy, routing.

The invitation views (what waits for an operator, the funnel, budgets) are in stream/runtime/web_invites.py;
a user's invitations are the ``invites`` object of ``/users/{id}`` (stream/runtime/invites_view.py).

/metrics is served by Faust's Prometheus sensor setup (see stream/runtime/app.py).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from faust import web

from stream.domains import economy
from stream.domains.board import board_view
from stream.domains.group import group_view
from stream.domains.messages import board_owner, group_owner, team_owner
from stream.domains.partition import RANKING, rank_key
from stream.domains.team import team_view
from stream.engine import ledger
from stream.engine.layout import CORE, SEPARATOR, new_core
from stream.engine.view import ledger_view, user_view
from stream.runtime import invites_view
from stream.runtime.routing import Router, RouteUnavailable, owned_by, unavailable
from stream.runtime.web_invites import register_invite_views

if TYPE_CHECKING:
    from stream.runtime.app import Worker


WEEK = re.compile(r"\d{4}-W\d{2}")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
DEFAULT_LEDGER = 20
MAX_GROUPS_SHOWN = 10


def bad_week(view: web.View, week: str) -> web.Response:
    """Return the 400 answer to a week that is not an ISO week's name."""
    return view.json({"error": f"week {week!r} is not an ISO week like 2026-W48"}, status=400)


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
    cache = worker.pipeline.cache
    router = Router(worker)
    partitions = worker.settings.topic_partitions

    def now_ms() -> int:
        return int(time.time() * 1000)

    @app.page("/users/{user_id}")
    @owned_by(worker, lambda user_id: user_id.encode())
    async def user(self: web.View, request: web.Request, partition: int, user_id: str) -> web.Response:
        rules = book.at(now_ms())

        def get(key: bytes) -> Any:
            return cache.get(partition, key)

        def scan(prefix: bytes) -> Any:
            return cache.scan(partition, prefix)

        view = user_view(get, user_id.encode(), rules, calendar, now_ms())
        if view is None and invites_view.has_invites(get, scan, user_id):
            # known only through an invitation so far (e.g. a held invitee who never logged in)
            core_key = user_id.encode() + SEPARATOR + CORE
            view = user_view(
                lambda k: new_core() if k == core_key else get(k), user_id.encode(), rules, calendar, now_ms()
            )
        if view is None:
            return self.json({"error": f"unknown user {user_id!r}"}, status=404)
        view["challenges"] = await _challenges(view, rules)
        view["invites"] = invites_view.user_invites(get, scan, user_id)
        return self.json({"user_id": user_id, **view})

    async def _challenges(view: dict[str, Any], rules: Any) -> list[dict[str, Any]]:
        """Return the progress of the challenges the user is in: this week's groups, this month's team."""
        out: list[dict[str, Any]] = []
        week = view["this_week"]["week"]
        month = view["today"]["day"][:7]
        lookups: list[tuple[str, str, bytes, str]] = [
            ("group", group, group_owner(group), f"/groups/{quote(group, safe='')}/{week}")
            for group in sorted(view["this_week"].get("groups", {}))[:MAX_GROUPS_SHOWN]
        ]
        if view["team_id"]:
            team = view["team_id"]
            lookups.append(("team", team, team_owner(team), f"/teams/{quote(team, safe='')}/{month}"))
        for kind, ident, key, path in lookups:
            try:
                status, body = await router.fetch(key, path)
            except RouteUnavailable as exc:
                out.append({kind: ident, "error": str(exc)})
                continue
            if status != 200:
                continue
            count = body.get("interactions", body.get("messages", 0))
            for challenge in body.get("challenges", []):
                out.append(
                    {
                        kind: ident,
                        "period": week if kind == "group" else month,
                        "rule": challenge["rule"],
                        "count": count,
                        "threshold": challenge["threshold"],
                        "reached": challenge["reached"],
                        "points": challenge["points"],
                    }
                )
        return out

    @app.page("/users/{user_id}/ledger")
    @owned_by(worker, lambda user_id: user_id.encode())
    async def user_ledger(self: web.View, request: web.Request, partition: int, user_id: str) -> web.Response:
        try:
            limit = int(request.query.get("limit", DEFAULT_LEDGER))
        except ValueError:
            return self.json({"error": "limit must be a whole number"}, status=400)
        limit = max(1, min(limit, ledger.LIMIT))
        awards = ledger_view(lambda k: cache.get(partition, k), user_id.encode(), limit)
        if awards is None:
            return self.json({"error": f"unknown user {user_id!r}"}, status=404)
        return self.json({"user_id": user_id, "limit": limit, "awards": awards})

    @app.page("/groups/{group_id}/{week}")
    @owned_by(worker, lambda group_id, week: group_owner(group_id))
    async def group(
        self: web.View, request: web.Request, partition: int, group_id: str, week: str
    ) -> web.Response:
        if not WEEK.fullmatch(week):
            return bad_week(self, week)
        rules = _rules_of_week(week)
        view = group_view(lambda k: cache.get(partition, k), group_owner(group_id), week, rules)
        if view is None:
            return self.json({"error": f"unknown group {group_id!r} in {week}"}, status=404)
        return self.json({"group_id": group_id, **view})

    @app.page("/teams/{team_id}/{month}")
    @owned_by(worker, lambda team_id, month: team_owner(team_id))
    async def team(
        self: web.View, request: web.Request, partition: int, team_id: str, month: str
    ) -> web.Response:
        if not MONTH.fullmatch(month):
            return self.json({"error": f"month {month!r} is not a month like 2026-11"}, status=400)
        rules = book.at(calendar.month_start_ms(month))
        view = team_view(lambda k: cache.get(partition, k), team_owner(team_id), month, rules)
        if view is None:
            return self.json({"error": f"unknown team {team_id!r}"}, status=404)
        return self.json({"team_id": team_id, **view})

    @app.page("/boards/{board}/{week}")
    @owned_by(worker, lambda board, week: board_owner(board))
    async def board(
        self: web.View, request: web.Request, partition: int, board: str, week: str
    ) -> web.Response:
        if not WEEK.fullmatch(week):
            return bad_week(self, week)
        known = sorted({b.name for version in book.versions for b in version.boards})
        if board not in known:
            return self.json({"error": f"unknown board {board!r} (boards: {', '.join(known)})"}, status=404)
        view = board_view(lambda k: cache.get(partition, k), board_owner(board), week, partitions)
        if view is None:
            view = {"week": week, "closed": False, "winner": None, "ranking": [], "partitions_reported": 0}
        if not view["closed"]:
            # still open: the live ranking, merged from every partition's local top so far
            try:
                answers = await router.gather_all(f"/local/boards/{quote(board, safe='')}/{week}")
            except RouteUnavailable as exc:
                return unavailable(self, str(exc))
            entries = sorted((e for _url, body in answers for e in body["entries"]), key=rank_key)
            view["ranking"] = [
                {"rank": i + 1, "id": ident, "score": score, "reached_at": ts}
                for i, (ident, score, ts) in enumerate(entries[:RANKING])
            ]
        return self.json({"board": board, **view})

    @app.page("/local/boards/{board}/{week}")
    async def local_board(self: web.View, request: web.Request, board: str, week: str) -> web.Response:
        """This worker's partitions' local tops of an open week of a board."""
        if not WEEK.fullmatch(week):
            return bad_week(self, week)
        entries: list[Any] = []
        for p in range(partitions):
            if router.held(p):
                local = cache.get(p, worker.pipeline.partition(p).boards_prefix + week.encode())
                entries.extend((local or {}).get(board, []))
        return self.json({"entries": entries})

    @app.page("/economy/{week}")
    async def economy_week(self: web.View, request: web.Request, week: str) -> web.Response:
        if not WEEK.fullmatch(week):
            return bad_week(self, week)
        try:
            answers = await router.gather_all(f"/local/economy/{week}")
        except RouteUnavailable as exc:
            return unavailable(self, str(exc))
        parts = [part for _url, body in answers for part in body["parts"]]
        held = sorted(p for _url, body in answers for p in body["partitions"])
        if held != list(range(partitions)):
            return unavailable(self, f"partitions answered {held}, not all {partitions}: rebalancing, retry")
        report = economy.merge(week, parts)
        winners: dict[str, Any] = {}
        for name in sorted({b.name for b in _rules_of_week(week).boards}):
            try:
                status, body = await router.fetch(board_owner(name), f"/boards/{name}/{week}")
            except RouteUnavailable as exc:
                return unavailable(self, str(exc))
            winners[name] = body if status == 200 else None
        report["boards"] = {
            name: {"closed": body["closed"], "winner": body["winner"], "ranking": body["ranking"][:3]}
            for name, body in winners.items()
            if body is not None
        }
        return self.json(report)

    @app.page("/local/economy/{week}")
    async def local_economy(self: web.View, request: web.Request, week: str) -> web.Response:
        """This worker's part of a week's economy: one part per partition active here."""
        if not WEEK.fullmatch(week):
            return bad_week(self, week)
        held = [p for p in range(partitions) if router.held(p)]
        parts = [
            economy.local_part(cache.scan(p, b""), cache.get(p, economy.economy_key(p, week)), week)
            for p in held
        ]
        return self.json({"partitions": held, "parts": parts})

    def _rules_of_week(week: str) -> Any:
        return worker.pipeline.rules_of_week(week)[0]

    register_invite_views(worker, router)

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
