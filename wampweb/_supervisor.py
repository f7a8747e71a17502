"""
Keeping one Autobahn Component connected for as long as the app runs.

Left alone, a Component drifts: its reconnect backoff is never reset when it
has no ``main`` (delays grow to minutes across router restarts), a router
GOODBYE with ``wamp.close.normal`` (a session kill) ends it for good, and an
authentication or realm error is retried silently forever. The supervisor
resets the backoff once a session has lasted, restarts the Component after a
normal close, gives up at once (and says why) when the router refuses us, and
makes sure a half-open link is noticed: WebSocket auto-ping, and for RawSocket,
which has no ping, a WAMP heartbeat (:mod:`wampweb._heartbeat`). Before the
session joins, a deadline on each connection attempt does the same for a link
that connects and then says nothing (:mod:`wampweb._join_deadline`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobahn.twisted.component import Component
from autobahn.twisted.rawsocket import WampRawSocketProtocol
from autobahn.wamp.exception import ApplicationError
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from wampweb._errors import ComponentFailedError
from wampweb._heartbeat import Heartbeat, settings_of
from wampweb._join_deadline import DEFAULT_JOIN_TIMEOUT, JoinAttempt, JoinDeadline, Link
from wampweb._outage import OutageLog
from wampweb._sessions import Session, SessionTracker

_log = Logger()

#: Router answers that mean "this will never work with this configuration".
FATAL_ERRORS = frozenset(
    {
        "wamp.error.no_such_realm",
        "wamp.error.not_authorized",
        "wamp.error.authorization_failed",
        "wamp.error.authentication_failed",
        "wamp.error.no_auth_method",
        "wamp.error.no_such_role",
        "wamp.error.no_such_principal",
    }
)

#: Auto-ping settings for WebSocket transports that do not choose their own.
DEFAULT_AUTO_PING = {"auto_ping_interval": 10.0, "auto_ping_timeout": 5.0}


def enable_auto_ping(component: Component) -> None:
    """
    Turn on WebSocket auto-ping on every transport that did not set it.

    Autobahn's default is no ping, which leaves a half-open TCP link looking
    alive until the kernel gives up on it, many minutes later.
    """
    for transport in component._transports:
        if transport.type != "websocket":
            continue
        options = transport.options
        if not any(key in options for key in ("auto_ping_interval", "autoPingInterval")):
            options.update(DEFAULT_AUTO_PING)


class ComponentSupervisor(Service):
    """
    Runs one named Component as a Twisted service, feeding its session events
    to a :class:`SessionTracker`.
    """

    def __init__(
        self,
        name: str,
        component: Component,
        tracker: SessionTracker,
        reactor: IReactorTime,
        *,
        stable_after: float = 10.0,
        restart_delay: float = 0.5,
        stop_timeout: float = 5.0,
        join_timeout: float = DEFAULT_JOIN_TIMEOUT,
        on_failed: Callable[[ComponentFailedError], object] | None = None,
    ) -> None:
        self.name = name
        self.component = component
        self.tracker = tracker
        self.reactor = reactor
        self.stable_after = stable_after
        self.restart_delay = restart_delay
        self.stop_timeout = stop_timeout
        self.on_failed = on_failed
        #: Bounds each connection attempt from "connected" to "joined".
        self.join_deadline = JoinDeadline(name, reactor, join_timeout)
        self.restarts = 0
        self._done: Deferred[Any] | None = None
        self._stopping = False
        self._fatal_reason: str | None = None
        self._stable_timer: IDelayedCall | None = None
        self._restart_timer: IDelayedCall | None = None
        self._heartbeat: Heartbeat | None = None
        #: The transport the Component is connecting (or connected) over.
        self._connecting: object | None = None
        #: Whether the current connection attempt got as far as a joined session.
        self._attempt_joined = False
        self._users_is_fatal = component._is_fatal
        component._is_fatal = self._is_fatal
        self._note_transports(component)
        self.join_deadline.watch(component._transports)
        component.on("connect", self._opened)
        component.on("join", self._joined)
        component.on("leave", self._left)
        component.on("disconnect", self._disconnected)
        component.on("connectfailure", self._connect_failed)
        #: Says once that the router cannot be reached, not once per attempt.
        self.outage = OutageLog(name, reactor)
        enable_auto_ping(component)

    # -- Service ----------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._stopping = False
        self._run()

    def stopService(self) -> Deferred[None]:
        """Leave with a GOODBYE, and wait (bounded) for the Component to end."""
        Service.stopService(self)
        self._stopping = True
        self.tracker.mark_stopped()
        self.join_deadline.abandon()
        self._stop_heartbeat()
        for timer in (self._stable_timer, self._restart_timer):
            if timer is not None and timer.active():
                timer.cancel()
        done = self._done
        if done is None or done.called:
            return succeed(None)
        ended: Deferred[None] = Deferred()

        def end(_: object = None) -> None:
            if not ended.called:
                ended.callback(None)

        # Autobahn resolves `done` from its own 'leave' listener, before ours
        # has heard of the leave; ending the stop in that same call would let
        # the whole shutdown (down to the transport's loss) run first, and the
        # session would be logged as lost rather than left. One turn later,
        # every listener has seen the leave.
        def end_next_turn(_: object) -> None:
            self.reactor.callLater(0, end)

        done.addBoth(end_next_turn)
        self.component.stop()

        def force() -> None:
            session = self.component._session
            if session is not None and session._transport is not None:
                _log.warn(
                    "component {name!r} did not leave within {t:g} s; dropping the link",
                    name=self.name,
                    t=self.stop_timeout,
                )
                session.disconnect()
            end()

        timer = self.reactor.callLater(self.stop_timeout, force)

        def stop_timer(_: object) -> None:
            if timer.active():
                timer.cancel()

        ended.addBoth(stop_timer)
        return ended

    # -- running and restarting ---------------------------------------------------------

    def _run(self) -> None:
        self._fatal_reason = None
        # A Component remembers stop() for ever; clear it so a restart can run.
        self.component._stopping = False
        done = self.component.start(self.reactor)
        self._done = done
        done.addBoth(self._ended)

    def _ended(self, result: object) -> None:
        if self._stopping:
            return
        if isinstance(result, Failure):
            reason = self._fatal_reason or str(result.getErrorMessage() or result.type)
            error = ComponentFailedError(self.tracker.name, reason)
            _log.error("{error}", error=str(error))
            self.tracker.mark_failed(error)
            if self.on_failed is not None:
                self.on_failed(error)
            return
        # The router closed the session normally (a kill, a router-initiated
        # GOODBYE): Autobahn calls the Component done. We are not done.
        self.restarts += 1
        _log.warn(
            "router ended the session of component {name!r} ({reason}); restarting it",
            name=self.name,
            reason=self.tracker.last_leave_reason,
        )
        self._reset_backoff()
        self._restart_timer = self.reactor.callLater(self.restart_delay, self._run)

    def _is_fatal(self, error: Exception) -> bool:
        if isinstance(error, ApplicationError) and error.error in FATAL_ERRORS:
            self._fatal_reason = f"the router refused the session: {error.error_message()}"
            return True
        if self._users_is_fatal is not None:
            return bool(self._users_is_fatal(error))
        return False

    def _reset_backoff(self) -> None:
        for transport in self.component._transports:
            transport.reset()

    def _note_transports(self, component: Component) -> None:
        """
        Remember which of its transports the Component tries, so a session's
        heartbeat follows that transport's settings: Autobahn tells a session
        nothing of the transport configuration it came from. Each try is also
        one attempt of the join deadline, over when Autobahn says it ended.
        """
        connect_once = getattr(component, "_connect_once", None)
        if connect_once is None:
            return

        def noting(reactor: Any, transport: object) -> Any:
            if self._stopping:
                # Autobahn's reconnect loop never checks stop(): an attempt
                # that fails after it schedules the next one. A Deferred that
                # never fires ends the loop here, with no new connection.
                return Deferred()
            self._connecting = transport
            self._attempt_joined = False
            attempt = self.join_deadline.begin(getattr(transport, "url", None))
            done = connect_once(reactor, transport)
            if isinstance(done, Deferred):
                done.addBoth(attempt.end)
                done.addBoth(self._unless_abandoned, attempt)
            return done

        # Autobahn looks the method up on the instance at each attempt.
        component._connect_once = noting  # type: ignore[method-assign]

    @staticmethod
    def _unless_abandoned(result: object, attempt: JoinAttempt) -> object:
        """
        An attempt the stop gave up ends Autobahn's loop where it is, as an
        attempt after the stop does: passed on, its failure would be logged
        as a connection error and start the next try.
        """
        if attempt.abandoned:
            return Deferred()  # the loop waits on it for ever; the failure is consumed
        return result

    # -- heartbeat ------------------------------------------------------------------------

    def _start_heartbeat(self, session: Session) -> None:
        """RawSocket has no ping of its own: prove its link alive with WAMP calls."""
        self._stop_heartbeat()
        link = getattr(session, "_transport", None)
        if not isinstance(link, WampRawSocketProtocol):
            return
        settings = settings_of(self._connecting)
        if not settings.enabled:
            return
        self._heartbeat = Heartbeat(self.tracker.name, session, link, self.reactor, settings)
        self._heartbeat.start()

    def _stop_heartbeat(self, session: Session | None = None) -> None:
        """Stop the heartbeat (of ``session`` only, if given: a late event of an old one)."""
        heartbeat = self._heartbeat
        if heartbeat is None or (session is not None and heartbeat.session is not session):
            return
        heartbeat.stop()
        self._heartbeat = None

    # -- session events ----------------------------------------------------------------

    def _opened(self, session: Session, link: Link) -> None:
        self.join_deadline.opened(link)

    def _connect_failed(self, component: object, error: object) -> None:
        if self._stopping:
            return
        joined, self._attempt_joined = self._attempt_joined, False
        if joined:
            # Autobahn reports the end of a joined session as its attempt's
            # failure; the router was reached, and the loss is logged already.
            self.outage.lost()
            return
        self.outage.failed(getattr(self._connecting, "url", None), error)

    def _joined(self, session: Session, details: Any) -> None:
        self._attempt_joined = True
        self.join_deadline.end()
        self.outage.joined()
        self.tracker.on_join(session, details)
        if self._stable_timer is not None and self._stable_timer.active():
            self._stable_timer.cancel()

        def still_joined() -> None:
            if self.tracker.session is session:
                self._reset_backoff()

        self._stable_timer = self.reactor.callLater(self.stable_after, still_joined)
        if not self._stopping:
            self._start_heartbeat(session)

    def _left(self, session: Session, details: Any) -> None:
        self._stop_heartbeat(session)
        if self._stable_timer is not None and self._stable_timer.active():
            self._stable_timer.cancel()
        self.tracker.on_leave(session, details)

    def _disconnected(self, session: Session, was_clean: bool = False) -> None:
        self._stop_heartbeat(session)
        self.tracker.on_disconnect(session, was_clean)
