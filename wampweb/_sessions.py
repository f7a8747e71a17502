"""
Which WAMP session a named Component has right now.

Autobahn creates a new ``ApplicationSession`` for every connection, so code
that keeps "the session" in a variable keeps a dead one after the first
reconnect. :class:`SessionTracker` swaps the session on ``join`` and clears it
on ``leave``/``disconnect``, counts both, and lets request handlers either take
the session now or wait for one with a bound. It knows nothing of HTTP.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from wampweb._errors import ComponentFailedError, NoSessionError

_log = Logger()


class Session(Protocol):
    """The part of Autobahn's ``ISession`` that wampweb relies on."""

    def is_attached(self) -> bool: ...

    def call(self, procedure: str, *args: Any, **kwargs: Any) -> Any: ...

    def publish(self, topic: str, *args: Any, **kwargs: Any) -> Any: ...

    def register(self, endpoint: Any, procedure: str | None = None, options: Any = None) -> Any: ...

    def subscribe(self, handler: Any, topic: str | None = None, options: Any = None) -> Any: ...

    def leave(self, reason: str | None = None, message: str | None = None) -> Any: ...


class SessionState(enum.Enum):
    """Where a Component's session stands, as a health check would report it."""

    #: Started, never joined yet.
    CONNECTING = "connecting"
    #: Joined; declared registrations and subscriptions are not all in place.
    JOINED = "joined"
    #: Joined and every declared registration and subscription succeeded.
    READY = "ready"
    #: Was joined, lost the session, reconnecting.
    GONE = "gone"
    #: Stopped for good by the router's refusal or exhausted retries.
    FAILED = "failed"
    #: Stopped on purpose.
    STOPPED = "stopped"


SessionListener = Callable[["Session", str], object]


@attrs.define(eq=False)
class SessionTracker:
    """
    The current session of one named Component, or none.

    Readiness (``READY``) is set from outside by whoever performs the declared
    registrations (see :mod:`wampweb._declarations`), because joined is not the
    same as able to serve: callees may still be registering.
    """

    name: str
    reactor: IReactorTime
    #: Seconds suggested to HTTP clients (``Retry-After``) while there is no session.
    retry_after: float = 2.0

    state: SessionState = SessionState.CONNECTING
    join_count: int = 0
    leave_count: int = 0
    last_leave_reason: str | None = None
    last_leave_message: str | None = None
    failure: ComponentFailedError | None = None

    _session: Session | None = None
    _waiters: list[Deferred[Session]] = attrs.field(factory=list)
    _on_lost: list[SessionListener] = attrs.field(factory=list)
    _on_joined: list[SessionListener] = attrs.field(factory=list)

    @property
    def session(self) -> Session | None:
        """The joined session, or None."""
        return self._session

    @property
    def joined(self) -> bool:
        return self._session is not None

    # -- events, fed by the Component ------------------------------------------------

    def on_join(self, session: Session, details: Any = None) -> None:
        """Adopt a freshly joined session and wake everything waiting for one."""
        self._session = session
        self.state = SessionState.JOINED
        self.join_count += 1
        self.failure = None
        _log.info(
            "component {name!r} joined (session {session_id}, join #{count})",
            name=self.name,
            session_id=getattr(details, "session", None),
            count=self.join_count,
        )
        for listener in list(self._on_joined):
            listener(session, "join")
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(session)

    def on_leave(self, session: Session, details: Any = None) -> None:
        """Forget the session; everything issued on it is told it is gone."""
        reason = getattr(details, "reason", None) or "wamp.close.transport_lost"
        message = getattr(details, "message", None)
        self._lose(session, reason, message)

    def on_disconnect(self, session: Session, was_clean: bool = False) -> None:
        """A transport loss without a leave (or after one) ends the session too."""
        self._lose(session, None, None)

    def _lose(self, session: Session, reason: str | None, message: str | None) -> None:
        if session is not self._session:
            # A late event from a session already dropped, or from one that
            # never joined (an ABORT during the handshake). A leave's reason is
            # news (Autobahn may fire it after the disconnect); a disconnect
            # after a leave is not.
            if reason is not None:
                self.last_leave_reason = reason
                self.last_leave_message = message
            return
        reason = reason or "wamp.close.transport_lost"
        self._session = None
        self.leave_count += 1
        self.last_leave_reason = reason
        self.last_leave_message = message
        if self.state not in (SessionState.STOPPED, SessionState.FAILED):
            self.state = SessionState.GONE
        # A closing handshake (GOODBYE, either side's) is a close; anything else, a loss.
        if reason == "wamp.close.transport_lost":
            message = "component {name!r} lost its session: {reason}"
        else:
            message = "the session of component {name!r} closed: {reason}"
        _log.info(message, name=self.name, reason=reason)
        for listener in list(self._on_lost):
            listener(session, reason)

    def mark_ready(self, session: Session) -> None:
        """Called once every declared registration/subscription is in place on ``session``."""
        if session is self._session and self.state is SessionState.JOINED:
            self.state = SessionState.READY

    def mark_failed(self, error: ComponentFailedError) -> None:
        """The Component gave up for good: nobody should wait for a session any more."""
        self.state = SessionState.FAILED
        self.failure = error
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(error)

    def mark_stopped(self) -> None:
        """The app is stopping: waiters get their 503 now instead of at their bound."""
        self.state = SessionState.STOPPED
        error = NoSessionError(self.name, self.retry_after, "the application is stopping")
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(error)

    def when_lost(self, listener: SessionListener) -> None:
        """Call ``listener(session, reason)`` each time a joined session goes away."""
        self._on_lost.append(listener)

    def when_joined(self, listener: SessionListener) -> None:
        """Call ``listener(session, "join")`` each time a session joins."""
        self._on_joined.append(listener)

    # -- what request handlers use -------------------------------------------------------

    def session_now(self) -> Session:
        """The joined session, or :class:`NoSessionError` (an HTTP 503) right away."""
        if self._session is not None and self._session.is_attached():
            return self._session
        raise self._no_session_error()

    def wait_for_session(self, timeout: float) -> Deferred[Session]:
        """
        A joined session within ``timeout`` seconds, or :class:`NoSessionError`.

        A bounded wait lets a request ride out a quick reconnect instead of
        failing, without ever hanging on a router that is not coming back.
        """
        if self._session is not None and self._session.is_attached():
            return succeed(self._session)
        if timeout <= 0 or self.state in (SessionState.FAILED, SessionState.STOPPED):
            return fail(self._no_session_error())

        timer: list[IDelayedCall] = []

        def forget(waiter: Deferred[Session]) -> None:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

        waiter: Deferred[Session] = Deferred(canceller=forget)
        self._waiters.append(waiter)

        def expire() -> None:
            forget(waiter)
            waiter.errback(self._no_session_error(f"none joined within {timeout:g} s"))

        timer.append(self.reactor.callLater(timeout, expire))

        def stop_timer(result: object) -> object:
            if timer[0].active():
                timer[0].cancel()
            return result

        waiter.addBoth(stop_timer)
        return waiter

    def _no_session_error(self, detail: str = "") -> NoSessionError | ComponentFailedError:
        if self.failure is not None:
            return self.failure
        reason = detail or self._describe_absence()
        return NoSessionError(self.name, self.retry_after, reason)

    def _describe_absence(self) -> str:
        if self.state is SessionState.STOPPED:
            return "the application is stopping"
        if self.join_count == 0:
            return "not joined yet"
        return f"reconnecting after {self.last_leave_reason}"
