"""
Ctrl-C and SIGTERM stop the process once; a repeat is acknowledged, not a crash.

People press Ctrl-C again when a stop takes a moment (in-flight requests are
being drained), and terminals, ``timeout`` and process managers often deliver
the same signal twice. Twisted's handlers call ``reactor.stop()`` every time,
and the second call, made while the reactor is already stopping, is logged as
a critical ``ReactorNotRunning`` traceback. The stop itself is bounded by the
drain and stop timeouts, so the repeat only needs to say so.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from twisted.logger import Logger

__all__ = ["stop_once_on_signals"]

_log = Logger(namespace="wampweb.signals")

_Handler = Callable[[int, FrameType | None], None]


class _StopOnce:
    """The signal handler: the first signal stops the reactor, later ones are only logged."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.stopping = False
        self._handlers: dict[int, _Handler] = {
            signal.SIGINT: reactor.sigInt,
            signal.SIGTERM: reactor.sigTerm,
        }
        # A stop that did not come from a signal (a Component that failed for
        # good, a test) counts too: a signal after it must not stop again.
        reactor.addSystemEventTrigger("before", "shutdown", self._mark_stopping)

    def _mark_stopping(self) -> None:
        self.stopping = True

    def __call__(self, number: int, frame: FrameType | None) -> None:
        if self.stopping:
            _log.info(
                "received {name} again: already stopping (bounded by the drain and stop timeouts)",
                name=signal.Signals(number).name,
            )
            return
        self.stopping = True
        self._handlers[number](number, frame)


def stop_once_on_signals(reactor: Any) -> None:
    """
    Take SIGINT and SIGTERM over from Twisted once its reactor is running (it
    installs its own handlers as it starts, and would replace ours). A reactor
    that handles no signals (an in-memory one in tests) is left as it is.
    """
    if not (hasattr(reactor, "sigInt") and hasattr(reactor, "sigTerm")):
        return
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, _StopOnce) and current.reactor is reactor:
        return  # taken over already (the CLI, then run_until_stopped)
    handler = _StopOnce(reactor)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, handler)
