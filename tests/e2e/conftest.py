"""Fixtures of the end-to-end tests: a real broker, private topics per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker import ensure_broker
from tests.e2e.harness import Topics, delete_topics


@pytest.fixture(scope="session")
def bootstrap() -> str:
    return ensure_broker()


@pytest.fixture
def topics(bootstrap: str) -> Iterator[Topics]:
    names = Topics()
    yield names
    delete_topics(bootstrap, names, app_ids=[f"{names.prefix}-a", f"{names.prefix}-b"])
