"""
Saying, once, that the router cannot be reached, and how long that lasted.

While a router is down, Autobahn logs three lines per connection attempt
(``trying transport``, ``connecting once``, ``Connection failed`` at error),
every few seconds for as long as the outage lasts: a thousand lines an hour
that say one thing, and whose error level pages people for a condition
wampweb handles by design (requests get ``503`` with ``Retry-After``, the
Component keeps retrying). :class:`OutageLog` says it once, again only when
the reason changes or a minute has passed, and says when the router is back.
``wampweb run`` leaves Autobahn's per-attempt lines out of its log unless the
log level is ``debug`` (:func:`is_retry_chatter`); a library user's logging
is left as it is.
"""

from __future__ import annotations

from typing import Final

from twisted.internet.interfaces import IReactorTime
from twisted.logger import LogEvent, Logger, PredicateResult

__all__ = ["OutageLog", "is_retry_chatter", "without_retry_chatter"]

_log = Logger(namespace="wampweb.outage")

#: While the router stays unreachable for the same reason, a reminder this often.
REMINDER_INTERVAL: Final = 60.0

#: Autobahn's per-attempt lines (autobahn.wamp.component), by their format.
_RETRY_CHATTER: Final = frozenset(
    {
        'trying transport {transport_idx} ("{transport_url}") using connect delay '
        "{transport_delay}",
        'connecting once using transport type "{transport_type}" over endpoint "{endpoint_desc}"',
        "Connection failed: {error}",
        "Connection failed with OS error: {msg}",
    }
)


class OutageLog:
    """The log of one Component's connection attempts, one line per news."""

    def __init__(
        self, name: str, reactor: IReactorTime, reminder_interval: float = REMINDER_INTERVAL
    ) -> None:
        self.name = name
        self.reactor = reactor
        self.reminder_interval = reminder_interval
        #: Failed attempts since the last join (or the start).
        self.failures = 0
        #: Why the latest of them failed (None once a session joins).
        self.last_error: str | None = None
        self._since: float | None = None
        self._said: str | None = None
        self._said_at = 0.0

    def lost(self) -> None:
        """The joined session went away (its loss is logged where it is seen): the clock starts."""
        if self._since is None:
            self._since = self.reactor.seconds()

    def failed(self, url: str | None, error: object) -> None:
        """An attempt failed; say so if it is news."""
        now = self.reactor.seconds()
        self.failures += 1
        if self._since is None:
            self._since = now
        reason = _reason(error)
        self.last_error = reason
        where = url or "the router"
        if self._said is None:
            _log.warn(
                "component {name!r} cannot reach {where}: {reason}; retrying, and answering "
                "503 with Retry-After meanwhile",
                name=self.name,
                where=where,
                reason=reason,
            )
        elif reason != self._said or now - self._said_at >= self.reminder_interval:
            _log.warn(
                "component {name!r} still cannot reach {where} ({failures} in "
                "{seconds:.0f} s): {reason}",
                name=self.name,
                where=where,
                failures=_attempts(self.failures),
                seconds=now - self._since,
                reason=reason,
            )
        else:
            return
        self._said = reason
        self._said_at = now

    def joined(self) -> None:
        """A session joined: the outage, if there was one, is over."""
        if self._since is not None and self._said is not None:
            _log.info(
                "component {name!r} reached the router again after {seconds:.1f} s "
                "({failures} failed)",
                name=self.name,
                seconds=self.reactor.seconds() - self._since,
                failures=_attempts(self.failures),
            )
        self.failures = 0
        self.last_error = None
        self._since = None
        self._said = None


def _attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def _reason(error: object) -> str:
    text = str(error).strip().rstrip(".")
    return text or type(error).__name__


def is_retry_chatter(event: LogEvent) -> bool:
    """Whether ``event`` is one of Autobahn's per-attempt lines."""
    namespace = event.get("log_namespace")
    return (
        isinstance(namespace, str)
        and namespace.startswith("autobahn.")
        and event.get("log_format") in _RETRY_CHATTER
    )


def without_retry_chatter(event: LogEvent) -> PredicateResult:
    """
    A ``twisted.logger`` filter predicate that leaves Autobahn's per-attempt
    connection lines out: wampweb's own outage log says what they say, once
    per outage rather than three times per attempt.
    """
    verdict: PredicateResult = (
        PredicateResult.no if is_retry_chatter(event) else PredicateResult.maybe
    )
    return verdict
