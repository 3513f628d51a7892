"""Answers of the query API, trimmed from a real run, for the tests of ``stream explain`` and ``stream report``.

2026-11-28 is a Saturday of ISO week 2026-W48 (Monday 2026-11-23); times are epoch ms, Asia/Shanghai.
"""

from __future__ import annotations

from typing import Any

TZ = "Asia/Shanghai"

USER: dict[str, Any] = {
    "user_id": "u000172",
    "team_id": "t029",
    "points": 778,
    "balance": 778,
    "level": "newcomer",
    "badges": [
        {"badge": "weekly_groups", "kind": "task"},
        {"badge": "best_collaborating_group", "kind": "title", "period": "2026-W47"},
    ],
    "today": {
        "day": "2026-11-28",
        "counters": {"logins_day": 1, "messages_day": 1, "likes_given_day": 12},
        "capped_points": {"like_given": 10},
        "done": ["daily_login", "daily_likes"],
        "ignored": {"cap:like_given": 2},
    },
    "this_week": {
        "week": "2026-W48",
        "counters": {"messages_week": 56, "votes_week": 0, "groups_spoken_week": 3},
        "capped_points": {},
        "done": ["weekly_groups"],
        "groups": {"g00251": 10, "g00348": 14},
        "points": 449,
    },
    "tasks": [
        {"rule": "daily_login", "per": "day", "count": 1, "threshold": 1, "done": True, "badge": None},
        {"rule": "daily_messages", "per": "day", "count": 1, "threshold": 3, "done": False, "badge": "task"},
        {
            "rule": "weekly_active_100",
            "per": "week",
            "count": 56,
            "threshold": 100,
            "done": False,
            "badge": None,
        },
        {"rule": "weekly_groups", "per": "week", "count": 3, "threshold": 3, "done": True, "badge": "task"},
        {"rule": "weekly_vote", "per": "week", "count": 0, "threshold": 1, "done": False, "badge": "task"},
        {
            "rule": "messages_1000",
            "per": "lifetime",
            "count": 89,
            "threshold": 1000,
            "done": False,
            "badge": "achievement",
        },
    ],
    "challenges": [
        {
            "group": "g00251",
            "period": "2026-W48",
            "rule": "group_weekly_500",
            "count": 207,
            "threshold": 500,
            "reached": False,
            "points": 50,
        },
        {"group": "g00348", "error": "no worker holds partition 3 now: rebalancing, retry"},
        {
            "team": "t029",
            "period": "2026-11",
            "rule": "team_monthly_10000",
            "count": 10250,
            "threshold": 10000,
            "reached": True,
            "points": 500,
        },
    ],
    "days": {
        # last week: not shown by "what stopped points"
        "2026-11-21": {"counters": {}, "capped_points": {}, "done": [], "ignored": {"like_pair_limit": 9}},
        "2026-11-23": {"counters": {}, "capped_points": {}, "done": []},
        "2026-11-24": {
            "counters": {"likes_given_day": 8},
            "capped_points": {"like_given": 8},
            "done": [],
            "ignored": {"like_pair_limit": 3, "self_like": 1},
        },
        "2026-11-26": {
            "counters": {},
            "capped_points": {"like_given": 10},
            "done": [],
            "ignored": {"cap:like_given": 4, "group_without_members": 1, "self_thanks_card": 2},
        },
        "2026-11-28": {
            "counters": {"likes_given_day": 12},
            "capped_points": {"like_given": 10},
            "done": [],
            "ignored": {"cap:like_given": 2},
        },
    },
}

LEDGER: dict[str, Any] = {
    "user_id": "u000172",
    "limit": 4,
    "awards": [
        {
            "award_id": "4e5c6355f9d512d67b3053cc",
            "period": "2026-W47",
            "rules_version": "2026-11-23.1",
            "ts": 1794758400000,  # 2026-11-16 00:00:00
            "badge": "best_collaborating_group",
            "kind": "title",
        },
        {
            "award_id": "dd2a53ed59e92a6168709102",
            "period": "2026-11-27",
            "rules_version": "2026-11-23.1",
            "ts": 1795715078239,  # 2026-11-27 01:44:38
            "rule": "group_created",
            "points": 15,
            "status": "granted",
            "reason": "created a group with members",
        },
        {
            "award_id": "107dad8394797451e959b151",
            "period": "2026-11-28",
            "rules_version": "2026-11-23.1",
            "ts": 1795812019116,  # 2026-11-28 04:40:19
            "rule": "daily_messages",
            "points": 5,
            "status": "granted",
            "reason": "3rd message of the day: daily task 'send 3 messages'",
        },
        {
            "award_id": "5d775bf0d1ec2ff176315ac0",
            "period": "2026-11-28",
            "rules_version": "2026-11-23.1",
            "ts": 1795812000000,  # 2026-11-28 04:40:00
            "rule": "invite_inviter",
            "points": 10,
            "status": "pending",
            "reason": "invitee registered",
        },
    ],
}


def _rules(like_cap: int, pair_limit: int) -> dict[str, Any]:
    return {
        "anti_gaming": {"like_pair_daily_limit": pair_limit, "group_min_invited": 1},
        "rules": {
            "daily_login": {"title": "first login of the day", "points": 5},
            "daily_messages": {"title": "send 3 messages", "points": 5, "badge": "task"},
            "weekly_active_100": {"title": "100 messages in a week", "points": 100},
            "weekly_groups": {"title": "speak in 3 groups", "points": 30, "badge": "task"},
            "weekly_vote": {"title": "take part in a vote", "points": 30, "badge": "task"},
            "messages_1000": {"title": "send 1000 messages", "points": 50, "badge": "achievement"},
            "like_given": {"title": "gave a like", "points": 1, "cap": {"day": like_cap}},
        },
        "levels": [
            {"name": "newcomer", "min_points": 0},
            {"name": "communicator", "min_points": 1000},
            {"name": "team_star", "min_points": 5000},
        ],
    }


RULES: dict[str, Any] = {
    "in_effect": "2026-11-25.1",
    "versions": [
        {"version": "2026-11-23.1", "effective_from_ms": 1577808000000, "rules": _rules(10, 5)},
        # from 2026-11-25 00:00 Asia/Shanghai: the like cap is 12 and the pair limit 4
        {"version": "2026-11-25.1", "effective_from_ms": 1795536000000, "rules": _rules(12, 4)},
    ],
}

ECONOMY: dict[str, Any] = {
    "week": "2026-W47",
    "points_per_user": {
        "users": 200,
        "p10": 8,
        "p50": 49,
        "p90": 175,
        "max": 552,
        "band": [200, 300],
        "inside_band": 10,
        "inside_band_share": 0.05,
    },
    "points_by_rule": {"message_text": 2314, "weekly_groups": 2160, "like_given": 481, "group_created": 180},
    "active_users_per_day": {"2026-11-19": 160, "2026-11-20": 164, "2026-11-21": 172, "2026-11-22": 80},
    "boards": {
        "best_collaborating_group": {
            "closed": True,
            "winner": "g00251",
            "ranking": [
                {"rank": 1, "id": "g00251", "score": 140, "reached_at": 1795362789000},
                {"rank": 2, "id": "g00641", "score": 90, "reached_at": 1795363048000},
                {"rank": 3, "id": "g00178", "score": 86, "reached_at": 1795360197000},
            ],
        },
        "most_active_newcomer": {"closed": True, "winner": None, "ranking": []},
        "most_valuable_contributor": {"closed": False, "winner": None, "ranking": []},
    },
}

# /invites/pending: invitations waiting for an operator, by registration time
# (tests/unit/runtime/test_invites_view.py checks the views answer this shape)
INVITES_PENDING: dict[str, Any] = {
    "pending": [
        {
            "invitee": "u000913",
            "inviter": "u000172",
            "channel": "poster",
            "registered": 1795374000000,  # 2026-11-23 03:00:00 in Shanghai
            "reason": "daily_limit",
            "points": 40,
            "event_id": "inv-20931",
        },
        {
            "invitee": "u001204",
            "inviter": "u000455",
            "channel": "link",
            "registered": 1795464123000,  # 2026-11-24 04:02:03
            "reason": "budget",
            "points": 1250,
            "event_id": "inv-21177",
        },
    ],
    "count": 2,
    "points": 1290,
}

_STAGES = ("invited", "verified", "registered", "held", "activated_half", "activated_full", "retained")


def _funnel(*counts: int) -> dict[str, int]:
    return dict(zip((*_STAGES, "flagged", "expired", "points_paid"), counts, strict=True))


# /invites/funnel?from=2026-11-16&to=2026-11-22
INVITES_FUNNEL: dict[str, Any] = {
    "from": "2026-11-16",
    "to": "2026-11-22",
    "channels": {
        "link": _funnel(120, 90, 80, 3, 130, 50, 31, 2, 56, 1180),
        "poster": _funnel(40, 10, 9, 0, 8, 3, 1, 1, 12, 54),
        "qr": _funnel(5, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    },
    "total": _funnel(165, 100, 89, 3, 138, 53, 32, 3, 68, 1234),
}
