"""What the benchmark scripts share: the repository root, the topic settings, and small process helpers."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The environment variable that names each input and output topic of a worker.
INPUTS = {
    "message": "STREAM_TOPIC_MESSAGES",
    "like": "STREAM_TOPIC_LIKES",
    "login": "STREAM_TOPIC_LOGINS",
    "activity": "STREAM_TOPIC_ACTIVITIES",
    "member": "STREAM_TOPIC_MEMBERS",
    "invite": "STREAM_TOPIC_INVITES",
    "decision": "STREAM_TOPIC_INVITE_DECISIONS",
}
OUTPUTS = {
    "points": "STREAM_TOPIC_POINTS",
    "badges": "STREAM_TOPIC_BADGES",
    "deadletter": "STREAM_TOPIC_DEADLETTER",
}
TIMEZONE = "Asia/Shanghai"
DAY_MS = 86_400_000


def progress_log(name: str) -> Callable[[str], None]:
    """Return a ``log(message)`` that prints ``[name seconds] message`` lines to stderr."""
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{name} {time.monotonic() - started:7.1f}s] {message}", file=sys.stderr, flush=True)

    return log


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    """Return the last lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def pythonpath() -> str:
    """Return PYTHONPATH with the repository root first, so subprocesses import this checkout."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
