"""Bounded waits for the integration tests: the event itself, or a failure that names it."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred


async def within(deferred: Deferred[Any], seconds: float, what: str, reactor: Any = None) -> Any:
    """Wait for ``deferred`` at most ``seconds``; past that, fail saying ``what`` did not happen."""
    if reactor is None:
        from twisted.internet import reactor as running

        reactor = running
    timer = reactor.callLater(seconds, deferred.cancel)
    try:
        return await deferred
    except CancelledError:
        raise AssertionError(f"{what} did not happen within {seconds} s") from None
    finally:
        if timer.active():
            timer.cancel()
