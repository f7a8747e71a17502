"""Shared test fixtures."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from twisted.logger import globalLogPublisher
from twisted.logger._interfaces import LogEvent


@pytest.fixture
def logged_failures() -> Iterator[list[LogEvent]]:
    """
    Every failure logged while the test runs, including "Unhandled error in
    Deferred" (found by collecting garbage before the test ends).
    """
    events: list[LogEvent] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield events
        gc.collect()
    finally:
        globalLogPublisher.removeObserver(observe)


# The real-router fixtures: `router` (one per session) and `fresh_router` (one per test).
pytest_plugins = ["tests.router_fixtures"]
