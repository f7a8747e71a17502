"""
Proving a RawSocket link alive, since Autobahn's RawSocket has no ping.

A router host that vanishes without a FIN or RST leaves a TCP link that looks
open until the kernel gives up on it, many minutes later. Meanwhile the session
looks joined, so every request waits for its own deadline (a 504) instead of
getting a quick 503. WebSocket has auto-ping for this; Autobahn implements no
RawSocket PING frames, and a gateway that must work with any router cannot
count on them anyway. So the heartbeat is plain WAMP: a CALL to a procedure
nobody registers. Any answer, an error included (``no_such_procedure``,
``not_authorized``), proves the router heard us. Silence past the timeout
means the link is dead: it is dropped at once, Autobahn's ``connectionLost``
makes the session leave, everything in flight fails, and the Component
reconnects.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from wampweb._seconds import checked_seconds
from wampweb._sessions import Session

_log = Logger()

#: Registered by nobody: the router answers at once, with an error.
HEARTBEAT_PROCEDURE: Final = "wampweb.heartbeat"

#: Where the settings of an Autobahn transport are kept (Autobahn refuses
#: options it does not know, so they cannot travel in ``options``).
_SETTINGS_ATTRIBUTE: Final = "_wampweb_heartbeat"


@attrs.frozen
class HeartbeatSettings:
    """
    Seconds between heartbeats (0: none) and seconds to wait for an answer.
    The defaults are those of wampweb's WebSocket auto-ping, so a dead link is
    noticed within about 15 s whatever the transport.
    """

    interval: float = 10.0
    timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        return self.interval > 0


DEFAULT_HEARTBEAT: Final = HeartbeatSettings()


def heartbeat_settings(
    interval: float = DEFAULT_HEARTBEAT.interval, timeout: float = DEFAULT_HEARTBEAT.timeout
) -> HeartbeatSettings:
    """The settings, if they can be; else a ValueError naming the one that cannot."""
    return HeartbeatSettings(
        interval=checked_seconds("heartbeat_interval", interval, zero_means="0: off"),
        timeout=checked_seconds("heartbeat_timeout", timeout),
    )


def keep_settings(transport: object, settings: HeartbeatSettings) -> None:
    """Remember ``settings`` on one of an Autobahn Component's ``_transports``."""
    setattr(transport, _SETTINGS_ATTRIBUTE, settings)


def settings_of(transport: object | None) -> HeartbeatSettings:
    """
    The settings kept on ``transport``, or the default: Components built by
    hand (or a transport not known) get the heartbeat too.
    """
    settings = getattr(transport, _SETTINGS_ATTRIBUTE, None)
    return settings if isinstance(settings, HeartbeatSettings) else DEFAULT_HEARTBEAT


class Link(Protocol):
    """What a dead link is dropped through: Autobahn's protocol, ``session._transport``."""

    def abort(self) -> Any: ...


class Heartbeat:
    """
    The heartbeat of one joined session, from :meth:`start` until :meth:`stop`.

    Each session gets its own: an answer that arrives for a session already
    replaced finds its heartbeat stopped and changes nothing. One call at a
    time: the next is sent ``interval`` seconds after the previous answer.
    """

    def __init__(
        self,
        name: str,
        session: Session,
        link: Link,
        reactor: IReactorTime,
        settings: HeartbeatSettings = DEFAULT_HEARTBEAT,
    ) -> None:
        self.name = name
        self.session = session
        self.link = link
        self.reactor = reactor
        self.settings = settings
        #: Heartbeats sent and answered on this session.
        self.sent = 0
        self.answered = 0
        #: Whether the link was dropped for want of an answer.
        self.dropped = False
        self._running = False
        self._next: IDelayedCall | None = None
        self._deadline: IDelayedCall | None = None
        self._pending: Deferred[Any] | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if self._running or self.dropped or not self.settings.enabled:
            return
        self._running = True
        self._schedule()

    def stop(self) -> None:
        """
        No more heartbeats. A call still pending is left alone, not cancelled:
        cancelling sends a CANCEL, and on a lost transport Autobahn raises.
        """
        self._running = False
        self._pending = None
        for timer in (self._next, self._deadline):
            if timer is not None and timer.active():
                timer.cancel()
        self._next = self._deadline = None

    def _schedule(self) -> None:
        self._next = self.reactor.callLater(self.settings.interval, self._beat)

    def _beat(self) -> None:
        self._next = None
        if not self._running:
            return
        try:
            answer = self.session.call(HEARTBEAT_PROCEDURE)
        except Exception as error:
            # The transport is already going (TransportLost, Disconnected) or
            # cannot carry a message: either way nothing proves it alive.
            self._drop("could not send the heartbeat ({error})", error=repr(error))
            return
        self.sent += 1
        sent_at = self.reactor.seconds()
        self._pending = answer
        self._deadline = self.reactor.callLater(self.settings.timeout, self._timed_out)
        answer.addBoth(self._answered, answer, sent_at)

    def _answered(self, result: object, answer: Deferred[Any], sent_at: float) -> None:
        # A result or an error (a Failure, swallowed here): the router answered.
        if answer is not self._pending or not self._running:
            return
        self._pending = None
        self.answered += 1
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        _log.debug(
            "component {name!r}: heartbeat answered in {ms:.1f} ms",
            name=self.name,
            ms=(self.reactor.seconds() - sent_at) * 1000,
        )
        self._schedule()

    def _timed_out(self) -> None:
        self._deadline = None
        if not self._running:
            return
        self._drop(
            "no answer to the heartbeat within {timeout:g} s (router gone or link black-holed)",
            timeout=self.settings.timeout,
        )

    def _drop(self, why: str, **fields: object) -> None:
        self.stop()
        self.dropped = True
        _log.warn(
            "component {name!r}: " + why + "; dropping the RawSocket link",
            name=self.name,
            **fields,
        )
        try:
            self.link.abort()
        except Exception as error:
            # Already gone (Autobahn raises TransportLost): the leave is on its way.
            _log.debug(
                "component {name!r}: the link was already gone ({error})",
                name=self.name,
                error=repr(error),
            )
