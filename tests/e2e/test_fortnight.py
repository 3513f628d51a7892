"""End to end: a scripted fortnight for several users, a campaign and a rules version published mid-stream.

Two ISO weeks (A: MONDAY..MONDAY+6, B: MONDAY+7..MONDAY+13, Asia/Shanghai) three weeks back, so every
event is in the past and within the 35-day retention. The worker runs with a rules file of ours: the
bundled defaults plus a campaign doubling ``message_voice`` (version ``fortnight.1``). Once it has scored
every event before SWITCH, version ``fortnight.2`` (``message_text`` 2 -> 3 from SWITCH on, event time) is
published with ``stream rules publish --force``; then the rest follows, an event at SWITCH - 1 ms included.

Every expected number is worked out by hand below, from SPEC and stream/rules/default.yaml:
daily_login 5 · message_text 2 (3 from SWITCH) · message_voice 5 (x2 in the campaign) · message_file 10 ·
reply 3 · vote 8 · group_created 15 · like_given 1 (10 a day at most) · thanks_received 20 ·
quality_bonus 10 · weekly_active_100 100 · daily tasks (3 messages, 2 likes, 1 feed view) 5 each ·
weekly tasks (3 groups, 1 vote, a 5-day login streak) 30 each · achievements (1000 messages, 100 likes
received, 5 groups created) 50 each · levels communicator 1000, team_star 5000.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stream.rules.model import default_rules_text
from tests.e2e.harness import (
    Topics,
    WorkerProcess,
    create_topics,
    make_producer,
    produce,
    read_all,
    run_stream,
    wait_until_quiet,
)
from tests.e2e.test_scripted_week import Script

pytestmark = pytest.mark.e2e

TZ = ZoneInfo("Asia/Shanghai")
PARTITIONS = 3
V1, V2 = "fortnight.1", "fortnight.2"


def _monday() -> date:
    """Monday of the ISO week three weeks before this one (local): week B ends more than a week ago."""
    today = datetime.now(TZ).date()
    return today - timedelta(days=today.weekday() + 21)


MONDAY = _monday()


def local(day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> datetime:
    d = MONDAY + timedelta(days=day)
    return datetime(d.year, d.month, d.day, hh, mm, ss)


def at(day: int, hh: int = 0, mm: int = 0, ss: int = 0) -> int:
    """Epoch ms of local (Shanghai) time on MONDAY + day."""
    return int(local(day, hh, mm, ss).replace(tzinfo=TZ).timestamp() * 1000)


def day_name(day: int) -> str:
    return (MONDAY + timedelta(days=day)).isoformat()


def week_name(day: int) -> str:
    iso = (MONDAY + timedelta(days=day)).isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


WEEK_A, WEEK_B = week_name(0), week_name(7)
# The campaign doubles voice messages from Wednesday of week A, 12:00, to Friday of week B, 12:00 (end
# exclusive); the new version scores from Wednesday of week B, 00:00 on.
CAMPAIGN_START, CAMPAIGN_END = local(2, 12), local(11, 12)
START, END = at(2, 12), at(11, 12)
SWITCH_AT = local(9)
SWITCH = at(9)
FANS = [f"fan{i}" for i in range(10)]


def rules_text(version: str, effective_from: datetime, message_text: int) -> str:
    """The bundled defaults with our version, effective_from, campaign and message_text points."""
    text = default_rules_text()
    edits = [
        ('version: "2026-11-23.1"', f'version: "{version}"'),
        ('effective_from: "2020-01-01T00:00:00"', f'effective_from: "{effective_from.isoformat()}"'),
        (
            "campaigns: {}",
            "campaigns:\n  double_voice: {rules: [message_voice], multiplier: 2, "
            f'start: "{CAMPAIGN_START.isoformat()}", end: "{CAMPAIGN_END.isoformat()}", '
            "title: double voice}",
        ),
        (
            "message_text:    {fact: message, where: {kind: text}, points: 2,",
            f"message_text:    {{fact: message, where: {{kind: text}}, points: {message_text},",
        ),
    ]
    for old, new in edits:
        assert text.count(old) == 1, f"the bundled defaults changed: {old!r} not found once"
        text = text.replace(old, new)
    # No weekly boards: this script's expected awards are the per-user programme's and the group
    # challenge's (no group here reaches 500); titles are tested end to end in test_social.py.
    start, end = text.index("\nboards:\n"), text.index("\n\n# Campaigns")
    return text[:start] + "\nboards: {}" + text[end:]


class Fortnight(Script):
    """The script, with the ids of the events the assertions look at."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: dict[str, str] = {}

    def msg_in(
        self, user: str, ts: int, group: str, kind: str = "text", mark: str | None = None, **kw: Any
    ) -> None:
        eid = self._id()
        value = {"event_id": eid, "user_id": user, "team_id": "T1", "kind": kind, "ts": ts, "group_id": group}
        value.update(kw)
        self.records.append(("message", user, value))
        if mark:
            self.marks[mark] = eid

    def like_of(self, user: str, target: str, ts: int, mark: str | None = None) -> None:
        self.like(user, "T1", target, ts)
        if mark:
            self.marks[mark] = self.records[-1][2]["event_id"]


def build() -> tuple[Fortnight, Fortnight]:
    """Return the events before the switch (phase 1) and the rest (phase 2), in production order."""
    s1, s2 = Fortnight(), Fortnight()
    s2.n = 100_000  # distinct event ids across the two phases
    for user in ["ann", "ben", "cat", "dan", "eve", *FANS]:
        s1.records.append(("member", user, {"user_id": user, "team_id": "T1", "joined_at": at(-60, 9)}))

    # ann: logs in every day of the fortnight at 08:00: daily_login 14 x 5 = 70; her streak reaches 5 on
    #   Friday A (weekly_login_streak, week A, 30) and is 8 on Monday B (week B, 30).         -> 130
    #   Wednesday A: voice at START - 1 ms (5, no campaign yet), voice at START (x2: 10), text at 13:00
    #   (2; texts are not in the campaign); 3 messages: daily_messages Wednesday 5; groups ga, gb, gc:
    #   weekly_groups week A 30.                                                                 -> 52
    #   Tuesday B: texts at 10:00 and 10:01 (2 + 2); the text at SWITCH - 1 ms (23:59:59.999, produced
    #   after the switch, scored by fortnight.1: 2) is the 3rd message of Tuesday: daily_messages 5.  -> 11
    #   Wednesday B: text at SWITCH (fortnight.2: 3), her 3rd group of week B (ga, gb, gc): weekly_groups
    #   week B 30.                                                                                -> 33
    #   Thursday B: a text replying to ben: 3 + reply 3.                                           -> 6
    #   Friday B: voice at END - 1 ms (x2: 10), voice at END (5, the campaign is over).           -> 15
    #   Eve marks her reply high quality: quality_bonus 10.                                        -> 10
    #   Total 130 + 52 + 11 + 33 + 6 + 15 + 10 = 257.
    for day in range(14):
        (s1 if at(day, 8) < SWITCH else s2).login("ann", "T1", at(day, 8))
    s1.msg_in("ann", START - 1, "ga", kind="voice", mark="voice_before_start")
    s1.msg_in("ann", START, "gb", kind="voice", mark="voice_at_start")
    s1.msg_in("ann", at(2, 13), "gc")
    s1.msg_in("ann", at(8, 10, 0), "ga")
    s1.msg_in("ann", at(8, 10, 1), "gb")
    s2.msg_in("ann", SWITCH - 1, "ga", mark="text_before_switch")
    s2.msg_in("ann", SWITCH, "gc", mark="text_at_switch")
    s2.msg_in("ann", at(10, 9), "ga", reply_to_user_id="ben", mark="reply")
    s2.msg_in("ann", END - 1, "ga", kind="voice", mark="voice_before_end")
    s2.msg_in("ann", END, "ga", kind="voice", mark="voice_at_end")

    # ben: 1000 file messages, 125 a day Monday A .. Monday B, round-robin in groups gb0..gb2 (about 292
    #   a group in week A, well below any group threshold): 1000 x 10 = 10000; daily_messages on 8 days
    #   40; weekly_active_100 week A (875 messages) and week B (125) 200; weekly_groups A and B 60;
    #   messages_1000 50 on his last message. Total 10350: levels communicator and team_star.
    for i in range(1000):
        day, j = divmod(i, 125)
        s1.msg_in(
            "ben", at(day, 8) + j * 10_000, f"gb{i % 3}", kind="file", mark="ben_1000th" if i == 999 else None
        )

    # cat: 100 counted likes received. Day 1 (Tuesday A): each fan likes her 5 times (50); fan0 a 6th
    #   time (over the pair limit: counts for nothing). Day 8 (Tuesday B): fan0..fan8 5 times each,
    #   fan9 4 times (49, 99 in all), and fan0 twice more (over the limit). The 100th is fan9's like on
    #   day 10, after the switch: likes_received_100 50 (fortnight.2), exactly at that like.
    #   Thursday A she does every daily task: 3 texts (3 x 2) daily_messages 5; a self-like (nothing),
    #   likes to ann and ben (1 + 1) daily_likes 5 (the self-like does not count); a feed view,
    #   daily_feed_view 5. Total 50 + 11 + 7 + 5 = 73.
    # fans: day 1: 5 counted likes 5 + daily_likes 5 = 10 (fan0's 6th: 0); day 8: fan0..fan8 the same
    #   10, fan9 4 + 5 = 9 and 1 more on day 10 (1, no task). Each fan 20.
    for fan in FANS:
        for k in range(5):
            s1.like_of(fan, "cat", at(1, 10, k))
    s1.like_of("fan0", "cat", at(1, 10, 30))
    for fan in FANS:
        for k in range(4 if fan == "fan9" else 5):
            s1.like_of(fan, "cat", at(8, 10, k))
    s1.like_of("fan0", "cat", at(8, 10, 30))
    s1.like_of("fan0", "cat", at(8, 10, 31))
    s2.like_of("fan9", "cat", at(10, 10), mark="cat_100th_like")
    for minute in range(3):
        s1.msg_in("cat", at(3, 9, minute), "gc")
    s1.like("cat", "T1", "cat", at(3, 9, 10))
    s1.like("cat", "T1", "ann", at(3, 9, 11))
    s1.like("cat", "T1", "ben", at(3, 9, 12))
    s1.act("cat", "T1", "feed_view", at(3, 9, 20))

    # dan: logins Mon-Thu A and Sat A-Tue B (Friday A missed): two streaks of 4, no streak task;
    #   8 x 5 = 40. Groups dg1..dg5 created Mon-Fri A with 1, 2, 3, 1, 5 invited: 5 x 15 = 75 and
    #   groups_created_5 50 on Friday (a group with nobody invited on Wednesday counts for nothing, so
    #   not Thursday). Votes Tuesday A, Wednesday A and Wednesday B (after the switch): 3 x 8 = 24 and
    #   weekly_vote A and B 60. Feed views Monday A (twice: one task) and Monday B: daily_feed_view 10.
    #   A thanks card from eve: 20. Total 40 + 125 + 84 + 10 + 20 = 279.
    for day in (0, 1, 2, 3, 5, 6, 7, 8):
        s1.login("dan", "T1", at(day, 7))
    for day, invited in enumerate((1, 2, 3, 1, 5)):
        s1.act("dan", "T1", "group_created", at(day, 10), group_id=f"dg{day + 1}", invited_count=invited)
        if day == 2:
            s1.act("dan", "T1", "group_created", at(2, 10, 5), group_id="dg0", invited_count=0)
    dan_5th_group = s1.records[-1][2]["event_id"]
    s1.act("dan", "T1", "vote", at(1, 11))
    s1.act("dan", "T1", "vote", at(2, 11))
    s2.act("dan", "T1", "vote", at(9, 11))
    s1.act("dan", "T1", "feed_view", at(0, 12))
    s1.act("dan", "T1", "feed_view", at(0, 13))
    s1.act("dan", "T1", "feed_view", at(7, 12))

    # eve: logins Friday A .. Thursday B (7 days): 35; her streak crosses the week boundary and reaches
    #   5 on Tuesday B: weekly_login_streak week B 30 (none in week A: 3 days there). Saturday A she likes
    #   ann 7 times: 5 counted (pair limit) 5, daily_likes 5. A thanks card to herself (nothing), one to
    #   dan (dan 20, eve 0), a quality mark on ann's reply (ann 10, eve 0). Total 35 + 30 + 10 = 75.
    for day in range(4, 11):
        (s1 if at(day, 9) < SWITCH else s2).login("eve", "T1", at(day, 9))
    for k in range(7):
        s1.like_of("eve", "ann", at(5, 10, k))
    s1.act("eve", "T1", "thanks_card", at(5, 11), target_user_id="eve", note="me!")
    s1.act("eve", "T1", "thanks_card", at(5, 11, 1), target_user_id="dan", note="thanks")
    s2.act("eve", "T1", "quality_marked", at(10, 10), target_user_id="ann")

    s1.marks["dan_5th_group"] = dan_5th_group
    return s1, s2


EXPECTED_POINTS = {"ann": 257, "ben": 10350, "cat": 73, "dan": 279, "eve": 75, **{fan: 20 for fan in FANS}}


def task(badge: str, period: str) -> tuple[str, str, str]:
    return (badge, "task", period)


EXPECTED_BADGES = {
    "ann": {
        task("weekly_login_streak", WEEK_A),
        task("weekly_login_streak", WEEK_B),
        task("daily_messages", day_name(2)),
        task("daily_messages", day_name(8)),
        task("weekly_groups", WEEK_A),
        task("weekly_groups", WEEK_B),
    },
    "ben": {
        *(task("daily_messages", day_name(d)) for d in range(8)),
        task("weekly_groups", WEEK_A),
        task("weekly_groups", WEEK_B),
        ("messages_1000", "achievement", "lifetime"),
        ("communicator", "level", "lifetime"),
        ("team_star", "level", "lifetime"),
    },
    "cat": {
        ("likes_received_100", "achievement", "lifetime"),
        task("daily_messages", day_name(3)),
        task("daily_likes", day_name(3)),
        task("daily_feed_view", day_name(3)),
    },
    "dan": {
        ("groups_created_5", "achievement", "lifetime"),
        task("weekly_vote", WEEK_A),
        task("weekly_vote", WEEK_B),
        task("daily_feed_view", day_name(0)),
        task("daily_feed_view", day_name(7)),
    },
    "eve": {task("weekly_login_streak", WEEK_B), task("daily_likes", day_name(5))},
    **{fan: {task("daily_likes", day_name(1)), task("daily_likes", day_name(8))} for fan in FANS},
}


def _totals(points: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for award in {a["award_id"]: a for a in points}.values():
        totals[award["user_id"]] += award["points"]
    return dict(totals)


def test_fortnight(bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    create_topics(bootstrap, topics, PARTITIONS)
    v1_file, v2_file = tmp_path / "v1.yaml", tmp_path / "v2.yaml"
    v1_file.write_text(rules_text(V1, datetime(2020, 1, 1), message_text=2))
    v2_file.write_text(rules_text(V2, SWITCH_AT, message_text=3))
    worker = WorkerProcess(
        bootstrap, topics, tmp_path, f"{topics.prefix}-a", PARTITIONS, STREAM_RULES_FILE=str(v1_file)
    ).start()
    try:
        phase1, phase2 = build()
        assert all(v is None or v.get("ts", 0) < SWITCH for _s, _k, v in phase1.records)
        producer = make_producer(bootstrap)
        produce(producer, topics, phase1.records)
        # Every event before the switch is scored (the last one's awards are out) before publishing.
        wait_until_quiet(worker, len(phase1.records), timeout=180)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            early = read_all(bootstrap, topics.output("points"), timeout=5)
            if any(a["rule"] == "messages_1000" for a in early):
                break
            time.sleep(1)
        assert {a["rules_version"] for a in early} == {V1}
        assert worker.get("/rules")["in_effect"] == V1

        published = run_stream(["rules", "publish", str(v2_file), "--force"], worker.env)
        assert published.returncode == 0, published.stderr
        assert "warning (--force): effective_from is in the past" in published.stdout
        # Without --force, an effective_from in the past is refused.
        refused = run_stream(["rules", "publish", str(v2_file)], worker.env)
        assert refused.returncode == 1 and "refused" in refused.stderr, refused.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            known = worker.get("/rules")
            if [v["version"] for v in known["versions"]] == [V1, V2]:
                break
            time.sleep(0.5)
        assert [v["version"] for v in known["versions"]] == [V1, V2], worker.log_tail()
        assert known["in_effect"] == V2
        assert known["versions"][1]["effective_from_ms"] == SWITCH

        produce(producer, topics, phase2.records)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            points = read_all(bootstrap, topics.output("points"), timeout=5)
            if _totals(points) == EXPECTED_POINTS:
                break
            time.sleep(1)
        time.sleep(3)  # anything extra would show up now
        points = read_all(bootstrap, topics.output("points"), timeout=5)
        badges = read_all(bootstrap, topics.output("badges"), timeout=5)
        dead = read_all(bootstrap, topics.output("deadletter"), timeout=5)

        assert _totals(points) == EXPECTED_POINTS, worker.log_tail()
        assert dead == []
        ids = [a["award_id"] for a in points] + [b["award_id"] for b in badges]
        assert len(set(ids)) == len(ids), "award ids are unique and no award is emitted twice"

        got_badges: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
        for b in badges:
            got_badges[b["user_id"]].add((b["badge"], b["kind"], b["period"]))
        assert dict(got_badges) == EXPECTED_BADGES
        assert len(badges) == sum(len(v) for v in EXPECTED_BADGES.values())
        # Each task and achievement paid its points once, in its badge's period.
        rewarded = sorted(
            (a["user_id"], a["rule"], a["period"], a["points"])
            for a in points
            if a["rule"].startswith(
                ("daily_messages", "daily_likes", "daily_feed", "weekly_", "messages_1000")
            )
            or a["rule"] in ("likes_received_100", "groups_created_5")
        )
        expected_rewarded = sorted(
            (user, badge, period, 30 if badge.startswith("weekly_") else 50 if kind == "achievement" else 5)
            for user, held in EXPECTED_BADGES.items()
            for badge, kind, period in held
            if kind != "level"
        )
        expected_rewarded += [
            ("ben", "weekly_active_100", WEEK_A, 100),
            ("ben", "weekly_active_100", WEEK_B, 100),
        ]
        assert rewarded == sorted(expected_rewarded)

        by_source: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for a in points:
            by_source[a["source_event_id"]][a["rule"]] = a
        marks = {**phase1.marks, **phase2.marks}

        # The campaign's edges: start inclusive, end exclusive, 1 ms either side.
        voice = {m: by_source[marks[m]]["message_voice"] for m in marks if m.startswith("voice_")}
        assert {m: a["points"] for m, a in voice.items()} == {
            "voice_before_start": 5,
            "voice_at_start": 10,
            "voice_before_end": 10,
            "voice_at_end": 5,
        }
        assert "campaign" in voice["voice_at_start"]["reason"]
        assert "campaign" not in voice["voice_at_end"]["reason"]
        assert {m: a["rules_version"] for m, a in voice.items()} == {
            "voice_before_start": V1,
            "voice_at_start": V1,
            "voice_before_end": V2,
            "voice_at_end": V2,
        }

        # The switch: 1 ms before it the old version scores (and its task), at it the new one.
        before = by_source[marks["text_before_switch"]]
        assert {r: (a["points"], a["rules_version"], a["period"]) for r, a in before.items()} == {
            "message_text": (2, V1, day_name(8)),
            "daily_messages": (5, V1, day_name(8)),
        }
        at_switch = by_source[marks["text_at_switch"]]
        assert {r: (a["points"], a["rules_version"], a["period"]) for r, a in at_switch.items()} == {
            "message_text": (3, V2, day_name(9)),
            "weekly_groups": (30, V2, WEEK_B),
        }
        reply = by_source[marks["reply"]]
        assert {r: (a["points"], a["rules_version"]) for r, a in reply.items()} == {
            "message_text": (3, V2),
            "reply": (3, V2),
        }
        # Every award of an event before the switch names fortnight.1, after it fortnight.2.
        for a in points:
            assert a["rules_version"] == (V1 if a["ts"] < SWITCH else V2), a
        for b in badges:
            assert b["rules_version"] == (V1 if b["ts"] < SWITCH else V2), b

        # Achievements at exactly the counted fact that reached them: the pair limit's and the empty
        # group's events did not count.
        cat_100 = by_source[marks["cat_100th_like"]]
        assert "likes_received_100" in cat_100, sorted(
            a["source_event_id"] for a in points if a["user_id"] == "cat"
        )
        assert cat_100["likes_received_100"]["rules_version"] == V2
        assert by_source[marks["dan_5th_group"]]["groups_created_5"]["points"] == 50
        assert by_source[marks["ben_1000th"]]["messages_1000"]["points"] == 50

        # The query API agrees, and `rules show` lists both versions, the new one in effect.
        assert worker.get("/users/ann")["points"] == 257
        assert worker.get("/users/ben")["level"] == "team_star"
        shown = run_stream(["rules", "show"], worker.env)
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert [line.split()[0] for line in lines[1:]] == [V1, V2], shown.stdout
        assert lines[2].endswith("<- in effect now")
    finally:
        worker.stop()
