"""Catching what is logged while a test runs, as text, for the fixtures that look at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from twisted.logger import LogEvent, formatEvent, globalLogPublisher


@contextmanager
def logged(keep: Callable[[LogEvent], bool]) -> Iterator[list[str]]:
    """The text of every event ``keep`` accepts, logged until the block ends."""
    seen: list[str] = []

    def observe(event: LogEvent) -> None:
        if keep(event):
            seen.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(observe)
