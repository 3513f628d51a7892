"""Decode every input record and do nothing else: the framework ceiling of the benchmark.

Run by bench/bench.py as ``python -m faust -A bench.decode_only worker -l warn`` from the repository root.
Settings come from the environment: KAFKA_BOOTSTRAP_SERVERS (and the worker's KAFKA_SECURITY_PROTOCOL & co.),
BENCH_APP_ID, BENCH_TOPICS (comma-separated), BENCH_COUNT (records to wait for), BENCH_OUT (a JSON file
written once BENCH_COUNT records were decoded: ``{"count", "first", "last"}``, wall-clock seconds of the
first and the last record) and BENCH_DATADIR.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import faust
import orjson

from stream.runtime.kafka_config import faust_broker_settings
from stream.settings import Settings

TOPICS = os.environ["BENCH_TOPICS"].split(",")
COUNT = int(os.environ["BENCH_COUNT"])
OUT = Path(os.environ["BENCH_OUT"])

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker="kafka://" + os.environ["KAFKA_BOOTSTRAP_SERVERS"],
    value_serializer="raw",
    key_serializer="raw",
    store="memory://",
    datadir=os.environ["BENCH_DATADIR"],
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    **faust_broker_settings(Settings()),
)
source = app.topic(*TOPICS, key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def decode(stream: faust.StreamT[bytes]) -> None:
    """Decode each record; write the timings to BENCH_OUT when BENCH_COUNT records were seen."""
    seen = 0
    first = 0.0
    loads = orjson.loads
    async for value in stream:
        loads(value)
        seen += 1
        if seen == 1:
            first = time.time()
        if seen == COUNT:
            tmp = OUT.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps({"count": seen, "first": first, "last": time.time()}))
            tmp.replace(OUT)
