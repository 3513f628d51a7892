"""Load the JSON Schema files of the topics from the repository's ``schemas/`` folder.

The folder sits next to the ``stream`` package (the package is installed editable), and is the source of
truth other teams read; the tests check that ``stream.events`` agrees with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

SCHEMA_DIR: Final = Path(__file__).resolve().parent.parent / "schemas"

INPUT_TOPICS: Final = {
    "message": "im.messages",
    "like": "im.likes",
    "login": "im.logins",
    "activity": "im.activities",
    "invite": "im.invites",
    "member": "im.members",
    "decision": "rewards.invite-decisions",
}
"""Default input topic of each event source of ``stream.events.decode``; its schema file has its name."""

OUTPUT_TOPICS: Final = ("rewards.points", "rewards.badges", "rewards.deadletter")

TOPICS: Final = (*INPUT_TOPICS.values(), *OUTPUT_TOPICS)


def schema_path(topic: str) -> Path:
    """Return the path of a topic's schema file, ``schemas/<topic>.schema.json``."""
    return SCHEMA_DIR / f"{topic}.schema.json"


def load_schema(topic: str) -> dict[str, Any]:
    """Read and return the JSON Schema of a topic, by its default name (e.g. ``im.messages``).

    Raises ``FileNotFoundError`` for a topic without a schema file. Returns a fresh dict on every call.
    """
    schema: dict[str, Any] = json.loads(schema_path(topic).read_text(encoding="utf-8"))
    return schema
