"""Apply the base reward rules with quix-streams: the reference application (d) of the benchmark.

Run by bench/bench.py as ``python -m bench.quix_reference`` from the repository root, with the Python of a
virtual environment that has ``quixstreams`` (bench/requirements-quix.txt; it cannot share the project's
environment, whose pins it conflicts with). Imports nothing from ``stream``.

The rules, per user (the record key) and local day: message points by kind (text 2, voice/video 5,
file/image 10), reply +3 when replying to someone else, daily_login 5 on the first login of the day,
vote 8, group_created 15 when at least one member was invited, like_given 1 capped at 10 a day, at most 5
counted likes a day from one user to the same user, self-likes ignored, every event id counted once a day.
State is quix's default: RocksDB with a changelog topic. Each input topic gets its own dataframe and so
its own store: no rule needs another topic's counters, and concatenated dataframes (one store) make quix
align the topics' timestamps, which halved its rate when tried. Every paid rule is one award record on the
output topic, keyed by the user.

Settings come from the environment: KAFKA_BOOTSTRAP_SERVERS; BENCH_APP_ID (the consumer group);
BENCH_TOPICS, ``source=topic`` pairs separated by commas, source one of message, like, login, activity;
BENCH_OUTPUT_TOPIC; BENCH_GUARANTEE, ``at-least-once`` or ``exactly-once``; BENCH_COUNT (input records
to wait for); BENCH_DATADIR (the state directory); BENCH_TIMEZONE (default Asia/Shanghai); BENCH_OUT, a
JSON file written at exit: ``{"count", "first", "last", "end", "awards", "points"}``: records processed,
the wall clock of the first and of the BENCH_COUNT-th processed record, the wall clock once the final
checkpoint was committed and the application closed, awards emitted and their points.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from quixstreams import Application
from quixstreams.state import State

MESSAGE_POINTS = {"text": 2, "voice": 5, "video": 5, "file": 10, "image": 10}
REPLY = 3
DAILY_LOGIN = 5
VOTE = 8
GROUP_CREATED = 15
GROUP_MIN_INVITED = 1
LIKE_GIVEN = 1
LIKE_DAILY_CAP = 10
LIKE_PAIR_DAILY_LIMIT = 5

TZ = ZoneInfo(os.environ.get("BENCH_TIMEZONE", "Asia/Shanghai"))
COUNT = int(os.environ["BENCH_COUNT"])
OUT = Path(os.environ["BENCH_OUT"])

_days: dict[int, str] = {}  # quarter hour since the epoch -> local date
progress = {"count": 0, "first": 0.0, "last": 0.0, "awards": 0, "points": 0}


def local_day(ts_ms: int) -> str:
    """Return the local date of a millisecond timestamp, e.g. ``2026-11-23``.

    Cached per quarter hour: time zone offsets and their changes fall on whole quarter hours.
    """
    quarter = ts_ms // 900_000
    day = _days.get(quarter)
    if day is None:
        day = _days[quarter] = datetime.fromtimestamp(quarter * 900, TZ).date().isoformat()
    return day


def rules(source: str) -> Any:
    """Return the stateful function that applies the base rules to one record of ``source``."""

    def apply(value: dict[str, Any], state: State) -> list[dict[str, Any]]:
        user, event_id, ts = value["user_id"], value["event_id"], value["ts"]
        day = local_day(ts)
        seen = f"seen:{day}:{event_id}"
        if state.exists(seen):
            return []
        state.set(seen, 1)
        counters_key = f"day:{day}"
        counters: dict[str, Any] = state.get(counters_key) or {}
        paid: list[tuple[str, int]] = []
        if source == "message":
            counters["messages"] = counters.get("messages", 0) + 1
            paid.append(("message_" + value["kind"], MESSAGE_POINTS[value["kind"]]))
            reply_to = value.get("reply_to_user_id")
            if reply_to is not None and reply_to != user:
                paid.append(("reply", REPLY))
        elif source == "login":
            counters["logins"] = counters.get("logins", 0) + 1
            if counters["logins"] == 1:
                paid.append(("daily_login", DAILY_LOGIN))
        elif source == "like":
            target = value["target_user_id"]
            pairs: dict[str, int] = counters.setdefault("pairs", {})
            if target != user and pairs.get(target, 0) < LIKE_PAIR_DAILY_LIMIT:
                pairs[target] = pairs.get(target, 0) + 1
                counters["likes"] = counters.get("likes", 0) + 1
                so_far = counters.get("like_points", 0)
                points = min(LIKE_GIVEN, LIKE_DAILY_CAP - so_far)
                if points > 0:
                    counters["like_points"] = so_far + points
                    paid.append(("like_given", points))
        elif source == "activity":
            kind = value["type"]
            counters[kind] = counters.get(kind, 0) + 1
            if kind == "vote":
                paid.append(("vote", VOTE))
            elif kind == "group_created" and (value.get("invited_count") or 0) >= GROUP_MIN_INVITED:
                paid.append(("group_created", GROUP_CREATED))
        state.set(counters_key, counters)
        progress["awards"] += len(paid)
        progress["points"] += sum(points for _, points in paid)
        return [
            {
                "award_id": f"{rule}:{user}:{day if rule == 'daily_login' else event_id}",
                "user_id": user,
                "rule": rule,
                "points": points,
                "day": day,
                "source_event_id": event_id,
                "ts": ts,
            }
            for rule, points in paid
        ]

    return apply


def main() -> None:
    """Build the application, run it until BENCH_COUNT records were processed, write BENCH_OUT."""
    app: Application

    def on_processed(_topic: str, _partition: int, _offset: int) -> None:
        progress["count"] += 1
        if progress["count"] == 1:
            progress["first"] = time.time()
        if progress["count"] == COUNT:
            progress["last"] = time.time()
            app.stop()  # the loop ends, then commits the checkpoint

    app = Application(
        broker_address=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        consumer_group=os.environ["BENCH_APP_ID"],
        auto_offset_reset="earliest",
        processing_guarantee=os.environ.get("BENCH_GUARANTEE", "at-least-once"),
        state_dir=os.environ["BENCH_DATADIR"],
        on_message_processed=on_processed,
        loglevel="WARNING",
    )
    output = app.topic(os.environ["BENCH_OUTPUT_TOPIC"], value_serializer="json", key_serializer="bytes")
    for pair in os.environ["BENCH_TOPICS"].split(","):
        source, name = pair.split("=", 1)
        topic = app.topic(name, value_deserializer="json", key_deserializer="bytes")
        sdf = app.dataframe(topic)
        sdf = sdf.apply(rules(source), stateful=True, expand=True)
        sdf.to_topic(output)
    app.run()
    tmp = OUT.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({**progress, "end": time.time()}))
    tmp.replace(OUT)


if __name__ == "__main__":
    main()
