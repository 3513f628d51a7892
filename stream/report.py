"""``stream report economy|invites`` and ``stream invites pending``: reports from the query API.

``format_economy`` is pure: the report's JSON (``/economy/{week}``) in, text out. It prints the
distribution of the points each user earned in the week against seed 000's 200-300 band, the points by
rule, the active users per day, and each weekly board's winner with its top 3. ``format_funnel``
(``/invites/funnel``) prints the invitation funnel per channel with the cost per fully activated invitee;
``format_pending`` (``/invites/pending``) the invitations that wait for an operator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from stream.client import Client
from stream.engine.periods import iso_week_name
from stream.explain import format_time, plural, table

WEEK = re.compile(r"\d{4}-W\d{2}")
BAR_WIDTH = 30


def economy_json(client: Client, week: str) -> bytes:
    """Return the body of ``/economy/{week}`` as the API sent it (raises ``ApiError``)."""
    return client.get_bytes(f"/economy/{week}")


def last_week(now_ms: int, timezone: str) -> str:
    """Return the ISO week before the one of ``now_ms`` in ``timezone`` (the latest that may have closed)."""
    today = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone)).date()
    return iso_week_name(today - timedelta(days=7))


def _bar(value: int, top: int) -> str:
    if top <= 0 or value <= 0:
        return ""
    return "#" * max(1, round(value * BAR_WIDTH / top))


def format_distribution(report: Mapping[str, Any]) -> list[str]:
    """Return the points-per-user distribution and the share inside the band."""
    dist = report.get("points_per_user") or {}
    users = int(dist.get("users", 0))
    low, high = (dist.get("band") or [200, 300])[:2]
    if not users:
        return ["Points per user: no user earned points this week (or the week is no longer retained)"]
    share = float(dist.get("inside_band_share", 0.0))
    return [
        f"Points per user ({plural(users, 'user')} active): "
        f"p10 {dist.get('p10', 0)} · p50 {dist.get('p50', 0)} · p90 {dist.get('p90', 0)} · max {dist.get('max', 0)}",
        f"Inside the {low}-{high} band (seed 000's normal user): "
        f"{plural(int(dist.get('inside_band', 0)), 'user')}, {share:.1%}",
    ]


def format_rules(report: Mapping[str, Any]) -> list[str]:
    """Return the points by rule as a table with each rule's share, largest first, and the total."""
    by_rule = report.get("points_by_rule") or {}
    if not by_rule:
        return ["Points by rule: none"]
    total = sum(int(n) for n in by_rule.values())
    rows = [["rule", "points", "share"]]
    for rule, n in sorted(by_rule.items(), key=lambda item: (-int(item[1]), item[0])):
        rows.append([rule, f"{int(n):,}", f"{int(n) / total:.1%}" if total else "-"])
    rows.append(["total", f"{total:,}", "100.0%" if total else "-"])
    return ["Points by rule:", *table(rows, right=frozenset({1, 2}))]


def format_days(report: Mapping[str, Any]) -> list[str]:
    """Return the active users of each day of the week, with a bar."""
    days = report.get("active_users_per_day") or {}
    if not days:
        return ["Active users per day: none"]
    top = max(int(n) for n in days.values())
    rows = [
        [f"{date.fromisoformat(day).strftime('%a')} {day}", str(int(n)), _bar(int(n), top)]
        for day, n in sorted(days.items())
    ]
    return ["Active users per day:", *table(rows, right=frozenset({1}))]


def format_boards(report: Mapping[str, Any], timezone: str) -> list[str]:
    """Return each board's winner and top 3, or why there is none yet."""
    boards = report.get("boards") or {}
    if not boards:
        return ["Boards: none in these rules"]
    ranked = any(board.get("ranking") for board in boards.values())
    lines = [f"Boards (reached: when the final score was reached, {timezone}):" if ranked else "Boards:"]
    for name, board in sorted(boards.items()):
        if not board.get("closed"):
            lines.append(
                f"  {name}: open; the week closes once an event past its end (and the grace) is seen"
            )
            continue
        winner = board.get("winner")
        ranking = board.get("ranking") or []
        if winner is None:
            lines.append(f"  {name}: closed, no winner (nobody scored)")
            continue
        lines.append(f"  {name}: winner {winner}")
        rows = [
            [
                f"{entry.get('rank', i + 1)}.",
                str(entry.get("id", "?")),
                f"score {entry.get('score', 0)}",
                f"reached {format_time(int(entry['reached_at']), timezone)}"
                if entry.get("reached_at") is not None
                else "",
            ]
            for i, entry in enumerate(ranking[:3])
        ]
        lines.extend(table(rows, indent="    "))
    return lines


def format_economy(report: Mapping[str, Any], timezone: str) -> str:
    """Return the text of ``stream report economy`` from the JSON of ``/economy/{week}``."""
    parts = [
        [f"Economy of {report.get('week', '?')}"],
        format_distribution(report),
        format_rules(report),
        format_days(report),
        format_boards(report, timezone),
    ]
    return "\n\n".join("\n".join(part) for part in parts)


# --- stream report invites and stream invites pending ------------------------------------------------------

FUNNEL_COLUMNS = (  # (stage in the API's funnel, column title)
    ("invited", "invites"),
    ("registered", "registrations"),
    ("held", "held"),
    ("activated_half", "half"),
    ("activated_full", "full"),
    ("retained", "retained"),
    ("flagged", "flags"),
    ("expired", "expired"),
    ("points_paid", "points paid"),
)
FUNNEL_LEGEND = (
    "half: halves activated (2 an invitee at most) · full: invitees with every half activated",
    "retained: active on day 7 or later (the rules' retention_day) · flags: flagged as fraud in the window",
    "expired: pending awards that lapsed or were rejected · points paid: net of take-backs",
    "cost/full: points paid per fully activated invitee",
)


class BadRange(ValueError):
    """The days asked for do not make a range (the first after the last)."""


def default_days(first: str | None, last: str | None, now_ms: int, timezone: str) -> tuple[str, str]:
    """Return the registration days of ``stream report invites``: ``last`` default today, ``first`` 6 days before."""
    end = (
        date.fromisoformat(last) if last else datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone)).date()
    )
    start = date.fromisoformat(first) if first else end - timedelta(days=6)
    return start.isoformat(), end.isoformat()


def funnel_json(client: Client, first: str, last: str) -> bytes:
    """Return the body of ``/invites/funnel?from=..&to=..`` as the API sent it (raises ``ApiError``)."""
    return client.get_bytes(f"/invites/funnel?{urlencode({'from': first, 'to': last})}")


def pending_json(client: Client) -> bytes:
    """Return the body of ``/invites/pending`` as the API sent it (raises ``ApiError``)."""
    return client.get_bytes("/invites/pending")


def cost_per_full(paid: int, full: int) -> str:
    """Return the points paid per fully activated invitee, ``-`` when none."""
    return f"{paid / full:,.1f}" if full else "-"


def _funnel_row(name: str, stages: Mapping[str, Any]) -> list[str]:
    values = [int(stages.get(stage, 0)) for stage, _title in FUNNEL_COLUMNS]
    paid, full = int(stages.get("points_paid", 0)), int(stages.get("activated_full", 0))
    return [name, *(f"{n:,}" for n in values), cost_per_full(paid, full)]


def format_funnel(report: Mapping[str, Any]) -> str:
    """Return the text of ``stream report invites`` from the JSON of ``/invites/funnel``."""
    first, last = report.get("from", "?"), report.get("to", "?")
    title = f"Invitation funnel of the registrations of {first} .. {last} (by registration day)"
    channels: Mapping[str, Mapping[str, Any]] = report.get("channels") or {}
    if not channels:
        return f"{title}\n\nNo invitation in these days."
    total: dict[str, int] = {}
    for stages in channels.values():
        for stage, n in stages.items():
            total[stage] = total.get(stage, 0) + int(n)
    rows = [["channel", *(column for _stage, column in FUNNEL_COLUMNS), "cost/full"]]
    rows.extend(_funnel_row(name, stages) for name, stages in sorted(channels.items()))
    rows.append(_funnel_row("total", total))
    right = frozenset(range(1, len(rows[0])))
    return "\n".join([title, "", *table(rows, right=right), "", *FUNNEL_LEGEND])


def format_pending(report: Mapping[str, Any], timezone: str) -> str:
    """Return the text of ``stream invites pending`` from the JSON of ``/invites/pending``."""
    rows: list[Mapping[str, Any]] = report.get("pending") or []
    if not rows:
        return "No invitation waits for an operator."
    table_rows = [["invitee", "inviter", "channel", "registered", "reason", "points"]]
    table_rows.extend(
        [
            str(row["invitee"]),
            str(row["inviter"]),
            str(row["channel"]),
            format_time(int(row["registered"]), timezone),
            str(row["reason"]),
            f"{int(row['points']):,}",
        ]
        for row in rows
    )
    points = sum(int(row["points"]) for row in rows)
    head = (
        f"{plural(len(rows), 'invitation')} waiting for an operator, {plural(points, 'point')} promised "
        f"(registered: {timezone} time; stream invites approve|reject INVITEE):"
    )
    return "\n".join([head, *table(table_rows, right=frozenset({5}))])
