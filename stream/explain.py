"""``stream explain USER``: answer support's "why didn't I get my points?" from the query API.

``format_explain`` is pure: it takes the JSON of ``/users/{id}``, ``/users/{id}/ledger`` and (optionally)
``/rules`` and returns the text; ``explain`` fetches them. The text has four parts: the balance and level;
the latest awards (time in STREAM_TIMEZONE, points, rule, period, rules version, reason); the progress of
every task and challenge (today, this week, this month, lifetime); and what stopped points on each retained
day of this week (events that counted for nothing, and caps that cut a rule's payments), in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stream.client import Client, segment
from stream.engine.periods import week_of_day

DEFAULT_LIMIT = 10
PERIOD_ORDER = ("day", "week", "month", "lifetime")
PERIOD_LABEL = {"day": "today", "week": "this week", "month": "this month", "lifetime": "lifetime"}
CAP_UNIT = {"day": "a day", "week": "a week", "month": "a month"}


def fetch(client: Client, user_id: str, *, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """Return the JSON a user's explanation is made of: ``user``, ``ledger`` and ``rules`` (raises ``ApiError``)."""
    return {
        "user": client.get(f"/users/{segment(user_id)}"),
        "ledger": client.get(f"/users/{segment(user_id)}/ledger?limit={limit}"),
        "rules": client.get("/rules"),
    }


def explain(client: Client, user_id: str, *, limit: int = DEFAULT_LIMIT, timezone: str) -> str:
    """Fetch a user's view, ledger and the rules, and return the explanation (raises ``ApiError``)."""
    got = fetch(client, user_id, limit=limit)
    return format_explain(got["user"], got["ledger"], got["rules"], timezone)


# --- formatting: pure functions of the API's JSON --------------------------------------------------------


def plural(n: int, one: str, many: str | None = None) -> str:
    """Return ``"1 like"`` / ``"3 likes"`` / ``"1,399 points"``."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def format_time(ts_ms: int, timezone: str) -> str:
    """Return an epoch-milliseconds time as ``YYYY-MM-DD HH:MM:SS`` in ``timezone``."""
    return datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S")


def _number(n: int) -> str:
    return f"{n:,}"


def rules_at(rules: Mapping[str, Any] | None, ts_ms: int | None = None) -> dict[str, Any]:
    """Return the rules (the YAML's content) of the version in effect at ``ts_ms`` (default: now's), or {}."""
    if not rules:
        return {}
    versions = rules.get("versions", [])
    chosen = None
    if ts_ms is not None:
        earlier = [v for v in versions if v.get("effective_from_ms", 0) <= ts_ms]
        if earlier:
            chosen = max(earlier, key=lambda v: v.get("effective_from_ms", 0))
    if chosen is None:
        chosen = next((v for v in versions if v.get("version") == rules.get("in_effect")), None)
    return dict(chosen["rules"]) if chosen else {}


def _day_end_ms(day: str, timezone: str) -> int:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), ZoneInfo(timezone))
    return int((start + timedelta(days=1)).timestamp() * 1000) - 1


def iso_week(day: str) -> str:
    """Return the ISO week (``2026-W48``) of a day (``2026-11-23``)."""
    return week_of_day(day)


def _rule_title(rules: Mapping[str, Any], name: str) -> str:
    for section in ("rules", "challenges", "boards"):
        entry = (rules.get(section) or {}).get(name)
        if isinstance(entry, dict) and entry.get("title"):
            return str(entry["title"])
    return ""


def table(rows: list[list[str]], right: frozenset[int] = frozenset(), indent: str = "  ") -> list[str]:
    """Align ``rows`` in columns (the last column is left ragged); ``right``: columns aligned right."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    out = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            if i == len(row) - 1:
                cells.append(cell.rjust(widths[i]) if i in right else cell)
            else:
                cells.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        out.append((indent + "  ".join(cells)).rstrip())
    return out


# --- the parts -------------------------------------------------------------------------------------------


def format_header(user: Mapping[str, Any], rules: Mapping[str, Any]) -> list[str]:
    """Return the balance, level, points to the next level, this week's points and the badges."""
    balance = int(user.get("balance", user.get("points", 0)))
    team = f" (team {user['team_id']})" if user.get("team_id") else ""
    line = f"User {user.get('user_id', '?')}{team}: balance {plural(balance, 'point')}, level {user.get('level', '?')}"
    levels = sorted(rules.get("levels") or [], key=lambda level: level["min_points"])
    above = [level for level in levels if level["min_points"] > balance]
    if above:
        nxt = above[0]
        line += f"; {_number(nxt['min_points'] - balance)} more to {nxt['name']} (at {_number(nxt['min_points'])})"
    lines = [line]
    week = user.get("this_week") or {}
    if "points" in week:
        lines.append(f"Earned this week ({week.get('week', '?')}): {plural(int(week['points']), 'point')}")
    badges = user.get("badges") or []
    if badges:
        shown = []
        for badge in badges:
            what = badge.get("kind", "?")
            if badge.get("period"):
                what += f", {badge['period']}"
            shown.append(f"{badge.get('badge', '?')} ({what})")
        lines.append("Badges: " + ", ".join(shown))
    else:
        lines.append("Badges: none yet")
    return lines


def format_ledger(ledger: Mapping[str, Any], timezone: str) -> list[str]:
    """Return the latest awards as a table, newest first, times in ``timezone``."""
    awards = ledger.get("awards") or []
    if not awards:
        return ["Latest awards: none (no award yet)"]
    lines = [f"Latest {plural(len(awards), 'award')}, newest first by event time (times in {timezone}):"]
    rows = [["time", "points", "rule", "period", "version", "reason"]]
    # The ledger lists awards as they were made; a credit (a like or thanks received) is made a little
    # after its event, on the receiver's partition, so sort by the event's time for reading.
    for award in sorted(awards, key=lambda a: -int(a.get("ts") or 0)):
        when = format_time(int(award["ts"]), timezone) if award.get("ts") is not None else "?"
        if "badge" in award:
            rows.append(
                [
                    when,
                    "badge",
                    str(award["badge"]),
                    str(award.get("period") or "lifetime"),
                    str(award.get("rules_version", "")),
                    f"{award.get('kind', '?')} badge",
                ]
            )
            continue
        points = int(award.get("points", 0))
        status = award.get("status", "granted")
        reason = str(award.get("reason") or "")
        if status != "granted":
            reason = f"[{status}] {reason}".rstrip()
        rows.append(
            [
                when,
                f"{points:+d}",
                str(award.get("rule", "?")),
                str(award.get("period", "")),
                str(award.get("rules_version", "")),
                reason,
            ]
        )
    lines.extend(table(rows, right=frozenset({1})))
    return lines


def format_progress(user: Mapping[str, Any], rules: Mapping[str, Any]) -> list[str]:
    """Return every task's and challenge's progress in its current period: count/threshold, done or not."""
    today = (user.get("today") or {}).get("day", "?")
    week = (user.get("this_week") or {}).get("week", "?")
    period_name = {"day": today, "week": week, "month": today[:7], "lifetime": ""}
    tasks = user.get("tasks") or []
    challenges = user.get("challenges") or []
    if not tasks and not challenges:
        return ["Tasks and challenges: none in these rules"]
    lines = ["Tasks and challenges ([x] done, [ ] not yet):"]
    for per in (*PERIOD_ORDER, *sorted({t.get("per", "") for t in tasks} - set(PERIOD_ORDER))):
        group = [t for t in tasks if t.get("per") == per]
        if not group:
            continue
        label = PERIOD_LABEL.get(per, per)
        lines.append(f"  {label} ({period_name[per]})" if period_name.get(per) else f"  {label}")
        rows = []
        for task in group:
            count, threshold = int(task.get("count", 0)), int(task.get("threshold", 0))
            done = bool(task.get("done"))
            reward = _reward(rules, task.get("rule", ""), task.get("badge"))
            todo = "done" if done else f"{_number(max(threshold - count, 0))} to go"
            rows.append(
                [
                    "[x]" if done else "[ ]",
                    str(task.get("rule", "?")),
                    f"{_number(count)}/{_number(threshold)}",
                    todo,
                    reward,
                ]
            )
        lines.extend(table(rows, indent="    "))
    if challenges:
        lines.append(
            "  challenges (paid to every member once the group's or team's count reaches the threshold)"
        )
        rows = []
        for challenge in challenges:
            kind = "group" if "group" in challenge else "team"
            who = f"{kind} {challenge.get(kind, '?')}"
            if "error" in challenge:
                rows.append(["[?]", who, "", "", f"unavailable now: {challenge['error']}"])
                continue
            count, threshold = int(challenge.get("count", 0)), int(challenge.get("threshold", 0))
            reached = bool(challenge.get("reached"))
            points = challenge.get("points")
            rows.append(
                [
                    "[x]" if reached else "[ ]",
                    f"{who} ({challenge.get('period', '?')})",
                    str(challenge.get("rule", "?")),
                    f"{_number(count)}/{_number(threshold)}",
                    f"+{points} points" if points else "",
                ]
            )
        lines.extend(table(rows, indent="    "))
    return lines


def _reward(rules: Mapping[str, Any], rule: str, badge: str | None) -> str:
    """Return ``"send 3 messages (+5 points, task badge)"`` for a task, from the rules when known."""
    entry = (rules.get("rules") or {}).get(rule) or {}
    extras = [f"+{entry['points']} points"] if entry.get("points") else []
    if badge:
        extras.append(f"{badge} badge")
    title = str(entry.get("title") or "")
    if not extras:
        return title
    return f"{title} ({', '.join(extras)})" if title else ", ".join(extras)


def describe_ignored(reason: str, n: int, rules: Mapping[str, Any]) -> str:
    """Say in words what ``n`` events ignored for ``reason`` (or capped: ``cap:<rule>``) cost the user."""
    anti = rules.get("anti_gaming") or {}
    if reason.startswith("cap:"):
        rule = reason[4:]
        entry = (rules.get("rules") or {}).get(rule) or {}
        caps = entry.get("cap") or {}
        title = f" ({entry['title']})" if entry.get("title") else ""
        if caps:
            limits = [f"{cap} points {CAP_UNIT.get(per, 'per ' + per)}" for per, cap in caps.items()]
            what = f"its cap of {limits[0]}" if len(limits) == 1 else "its caps of " + " and ".join(limits)
        else:
            what = "its cap"
        return (
            f"{rule}{title} hit {what} {plural(n, 'time')}: "
            f"{'that payment was' if n == 1 else 'those payments were'} cut short or dropped"
        )
    if reason == "self_like":
        return f"{plural(n, 'like')} given to oneself counted for nothing (self-likes never count)"
    if reason == "like_pair_limit":
        limit = anti.get("like_pair_daily_limit")
        of = f" of {limit}" if limit is not None else ""
        return f"{plural(n, 'like')} to the same person beyond the daily limit{of} counted for nothing"
    if reason == "self_thanks_card":
        return f"{plural(n, 'thanks card')} sent to oneself counted for nothing"
    if reason == "self_quality_marked":
        return f"{plural(n, 'quality mark')} on one's own reply counted for nothing"
    if reason == "group_without_members":
        needed = anti.get("group_min_invited")
        need = f" (at least {needed} needed)" if needed is not None else ""
        return f"{plural(n, 'group')} created without inviting anyone{need} counted for nothing"
    return f"{plural(n, 'event')} counted for nothing ({reason})"


def format_stopped(user: Mapping[str, Any], rules_json: Mapping[str, Any] | None, timezone: str) -> list[str]:
    """Return what stopped points today and on every retained day of this week, in words, day by day."""
    today = user.get("today") or {}
    this_week = user.get("this_week") or {}
    week = this_week.get("week") or (iso_week(today["day"]) if today.get("day") else "")
    days: dict[str, Mapping[str, Any]] = {
        day: record for day, record in (user.get("days") or {}).items() if iso_week(day) == week
    }
    if today.get("day") and today.get("ignored"):
        days.setdefault(today["day"], today)
    lines = [f"What stopped points this week ({week}; today is {today.get('day', '?')}):"]
    found = False
    for day in sorted(days):
        ignored = days[day].get("ignored") or {}
        if not ignored:
            continue
        found = True
        rules = rules_at(rules_json, _day_end_ms(day, timezone))
        label = f"{day} {date.fromisoformat(day).strftime('%a')}"
        if day == today.get("day"):
            label += " (today)"
        entries = sorted(ignored.items(), key=lambda item: (item[0].startswith("cap:"), item[0]))
        for i, (reason, n) in enumerate(entries):
            lines.append(
                f"  {label if i == 0 else ' ' * len(label)}  {describe_ignored(reason, int(n), rules)}"
            )
    for reason, n in sorted((this_week.get("ignored") or {}).items()):
        found = True
        lines.append(f"  the week: {describe_ignored(reason, int(n), rules_at(rules_json))}")
    if not found:
        lines.append("  nothing: every event of this week's retained days counted, and no cap cut a payment")
    return lines


WAITING_FOR = {
    "login": "the invitee's first login",
    "activity": "the invitee's messages in groups",
    "operator": "an operator's approval (stream invites pending)",
}


def format_invites(user: Mapping[str, Any], timezone: str) -> list[str]:
    """Return the user's pending invitation rewards and invitees, or nothing when it has none."""
    invites = user.get("invites") or {}
    pending = invites.get("pending") or []
    invitees = invites.get("invitees") or []
    own = invites.get("invitation")
    if not pending and not invitees and not own:
        return []
    lines = ["Invitations:"]
    if own:
        lines.append(
            f"  invited by {own.get('inviter')} ({own.get('channel')}), registered "
            f"{format_time(int(own.get('registered') or 0), timezone)}: {own.get('status')}"
            + (", flagged as fraud" if own.get("flagged") else "")
        )
    for award in pending:
        deadline = award.get("deadline")
        until = f" until {format_time(int(deadline), timezone)}" if deadline else ""
        lines.append(
            f"  pending {plural(int(award.get('points') or 0), 'point')} ({award.get('rule')}, "
            f"invitee {award.get('invitee')}): waits for {WAITING_FOR.get(award.get('waiting_for'), '?')}{until}"
        )
    if invitees:
        full = sum(1 for entry in invitees if entry.get("fully_activated"))
        lines.append(
            f"  {plural(len(invitees), 'invitee')}, {full} fully activated"
            + (", squad badge earned" if invites.get("squad") else "")
        )
    return lines


def format_explain(
    user: Mapping[str, Any],
    ledger: Mapping[str, Any],
    rules: Mapping[str, Any] | None,
    timezone: str,
) -> str:
    """Return the whole explanation of a user, from the JSON of the user, the ledger and (optionally) the rules."""
    now_rules = rules_at(rules)
    parts = [
        format_header(user, now_rules),
        format_ledger(ledger, timezone),
        format_progress(user, now_rules),
        format_stopped(user, rules, timezone),
        format_invites(user, timezone),
    ]
    return "\n\n".join("\n".join(part) for part in parts if part)
