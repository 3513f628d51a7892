"""Groups, teams and boards: each message applied twice changes nothing; crossings pay the right people."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from stream.core.state import MemoryStore, StateCache
from stream.domains import board, group, team
from stream.domains.messages import Grant, GroupCount, GroupJoin, GroupWon, Report, RosterChange, TeamCount
from stream.engine.layout import decode_value, encode_value
from stream.rules.compiler import compile_rules
from tests.unit.support import parse

D0 = 1_795_363_200_000  # Monday 2026-11-23 00:00 (2026-W48) in Shanghai
MONTH0 = 1_793_462_400_000  # 2026-11-01 00:00
RULES = compile_rules(
    parse(
        """
        rules:
          vote: {fact: vote, points: 8}
        challenges:
          g10: {owner: group, threshold: 10, points: 50}
          t5: {owner: team, threshold: 5, points: 500}
        boards:
          mvc: {score: received, facts: [like]}
          best_group: {score: group_interactions}
        """
    ),
    ZoneInfo("Asia/Shanghai"),
)


def tx():  # type: ignore[no-untyped-def]
    return StateCache(MemoryStore(), decode_value, encode_value).begin(0)


def paid(grants: list[Grant]) -> list[tuple[str, str, int]]:
    return [(g.user, g.rule, g.points) for g in grants]


def test_a_group_pays_its_members_at_the_crossing_and_later_joiners_once() -> None:
    t = tx()
    for user in ("a", "b"):
        assert group.on_join(t, GroupJoin("g", "2026-W48", user, D0, D0), RULES) == []
    grants, score = group.on_count(t, GroupCount("g", "2026-W48", 0, 6, D0 + 5, D0), RULES, late=False)
    assert grants == [] and score == (6, D0 + 5)
    grants, score = group.on_count(t, GroupCount("g", "2026-W48", 1, 4, D0 + 9, D0), RULES, late=True)
    assert paid(grants) == [("a", "g10", 50), ("b", "g10", 50)]
    assert score is None  # late for the board: the board score stays 6
    assert group.on_count(t, GroupCount("g", "2026-W48", 1, 4, D0 + 9, D0), RULES, late=False) == ([], None)
    assert group.on_count(t, GroupCount("g", "2026-W48", 1, 3, D0 + 9, D0), RULES, late=False) == ([], None)
    assert paid(group.on_join(t, GroupJoin("g", "2026-W48", "c", D0 + 99, D0), RULES)) == [("c", "g10", 50)]
    assert group.on_join(t, GroupJoin("g", "2026-W48", "c", D0 + 99, D0), RULES) == []
    view = group.group_view(t.get, b"\x00g\x00g", "2026-W48", RULES)
    assert view is not None and (view["interactions"], view["members"]) == (10, 3)


def test_a_won_group_titles_its_members_and_later_ones() -> None:
    t = tx()
    group.on_join(t, GroupJoin("g", "2026-W48", "a", D0, D0), RULES)
    won = GroupWon("g", "2026-W48", "best_group", "best group", "t1", D0)
    titles = group.on_won(t, won)
    assert [(g.user, g.badge, g.kind, g.period) for g in titles] == [("a", "best_group", "title", "2026-W48")]
    assert group.on_won(t, won) == []
    later = group.on_join(t, GroupJoin("g", "2026-W48", "b", D0 + 5, D0), RULES)
    assert [(g.user, g.badge) for g in later] == [("b", "best_group")]


def test_a_group_week_past_the_retention_is_ignored() -> None:
    t = tx()
    group.on_count(
        t, GroupCount("g", "2027-W02", 0, 1, D0 + 50 * 86_400_000, D0 + 49 * 86_400_000), RULES, False
    )
    assert group.on_count(t, GroupCount("g", "2026-W48", 0, 20, D0, D0), RULES, False) == ([], None)


def test_a_team_pays_the_roster_at_the_crossing() -> None:
    t = tx()
    team.on_roster(t, RosterChange("T", "a", 10, D0 - 1))
    team.on_roster(t, RosterChange("T", "b", 11, D0 - 1))
    team.on_roster(t, RosterChange("T", "left", 12, D0 - 1))
    team.on_roster(t, RosterChange("T", "left", 13, None))
    team.on_roster(t, RosterChange("T", "left", 12, D0 - 1))  # an older change replayed: ignored
    month_end = MONTH0 + 30 * 86_400_000
    assert team.on_count(t, TeamCount("T", "2026-11", 0, 3, MONTH0), RULES, month_end) == []
    grants = team.on_count(t, TeamCount("T", "2026-11", 1, 2, MONTH0), RULES, month_end)
    assert paid(grants) == [("a", "t5", 500), ("b", "t5", 500)]
    assert {(g.period, g.per, g.period_start_ms) for g in grants} == {("2026-11", "month", MONTH0)}
    team.on_roster(t, RosterChange("T", "late", 14, D0))
    assert team.on_count(t, TeamCount("T", "2026-11", 1, 9, MONTH0), RULES, month_end) == []
    view = team.team_view(t.get, b"\x00t\x00T", "2026-11", RULES)
    assert view is not None and view["messages"] == 12 and view["roster"] == ["a", "b", "late"]


def rules_at(week: str):  # type: ignore[no-untyped-def]
    return RULES, D0


def test_a_board_decides_once_every_partition_reported() -> None:
    t = tx()
    one = Report("mvc", "2026-W48", 0, {"2026-W48": [["u1", 3, D0 + 9], ["u3", 1, D0]]})
    assert board.on_report(t, one, 2, rules_at) == []
    assert board.on_report(t, one, 2, rules_at) == []  # a replay
    two = Report("mvc", "2026-W48", 1, {"2026-W48": [["u2", 3, D0 + 5]]})
    [grant] = board.on_report(t, two, 2, rules_at)
    assert (grant.user, grant.badge, grant.kind, grant.period, grant.points) == (
        "u2",
        "mvc",
        "title",
        "2026-W48",
        0,
    )
    view = board.board_view(t.get, b"\x00b\x00mvc", "2026-W48", 2)
    assert view is not None and view["closed"] and view["winner"] == "u2"
    assert [r["id"] for r in view["ranking"]] == ["u2", "u1", "u3"]


def test_a_group_board_sends_the_win_to_the_group() -> None:
    t = tx()
    board.on_report(t, Report("best_group", "2026-W48", 0, {"2026-W48": [["g1", 9, D0]]}), 2, rules_at)
    [won] = board.on_report(t, Report("best_group", "2026-W48", 1, {}), 2, rules_at)
    assert isinstance(won, GroupWon) and (won.group, won.week, won.board) == ("g1", "2026-W48", "best_group")
