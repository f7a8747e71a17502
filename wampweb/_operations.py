"""
WAMP calls and publishes made on behalf of HTTP requests, which can never hang.

Autobahn leaves a call's Deferred pending forever when the transport drops
under a Component, raises ``TransportLost`` synchronously once the transport
is gone, and sets no timer of its own. Every operation issued here therefore
gets: a deadline (CANCEL sent to the router when it passes), a failure the
moment its session leaves, and a cancel that is only forwarded to Autobahn
while the session can still carry it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from autobahn.exception import Disconnected
from autobahn.wamp.exception import TransportLost
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from wampweb._errors import BadRequestError, DeadlineError, NoSessionError, SessionLostError
from wampweb._flush import flush_now
from wampweb._jsonbody import RECEIVER_RESERVED
from wampweb._options import call_options, publish_options
from wampweb._sessions import Session, SessionTracker

_log = Logger()


@attrs.define(eq=False)
class _Pending:
    """One operation in flight: the answer we owe and Autobahn's Deferred behind it."""

    description: str
    session: Session
    answer: Deferred[Any]
    inner: Deferred[Any] | None = None
    timer: IDelayedCall | None = None

    @property
    def settled(self) -> bool:
        return self.answer.called

    def settle(self, result: object) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if not self.answer.called:
            self.answer.callback(result)  # a Failure is fine: callback() routes it to errback

    def cancel_inner(self) -> None:
        """Ask the router to stop, only if the session can still carry the CANCEL."""
        inner = self.inner
        if inner is None or inner.called or not self.session.is_attached():
            return
        try:
            inner.cancel()
        except Exception:  # Autobahn's canceller touches a transport that may be gone
            _log.debug("cancelling {what} failed", what=self.description)


@attrs.define(eq=False)
class Operations:
    """
    Calls and publishes on one named Component's current session.

    ``timeout`` is wampweb's deadline in seconds (no answer by then: the call
    is cancelled and :class:`DeadlineError` raised); ``session_wait`` is how
    long to wait for a session when there is none (0: answer at once).
    """

    tracker: SessionTracker
    reactor: IReactorTime
    default_timeout: float = 30.0
    default_session_wait: float = 0.0
    _in_flight: dict[int, set[_Pending]] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.tracker.when_lost(self._fail_outstanding)

    @property
    def in_flight(self) -> int:
        """How many operations are waiting for the router now."""
        return sum(len(ops) for ops in self._in_flight.values())

    def call(
        self,
        procedure: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        session_wait: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """
        Call ``procedure`` and fire with its result.

        ``options`` are passed to :class:`autobahn.wamp.types.CallOptions`
        (e.g. ``disclose_me``). The deadline is kept here, not sent as the
        call's ``timeout`` option: routers disagree on its unit (seconds in
        Crossbar, milliseconds in the WAMP spec and Bondy), and a CANCEL means
        the same thing everywhere.
        """
        kw = _check_payload(args, kwargs, "procedure")
        deadline = self.default_timeout if timeout is None else timeout
        checked_options = call_options(options)

        def issue(session: Session) -> Any:
            return session.call(procedure, *args, options=checked_options, **kw)

        return self._run(f"call {procedure!r}", issue, deadline, session_wait)

    def publish(
        self,
        topic: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        session_wait: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """
        Publish to ``topic`` and fire with the router's acknowledgement.

        Always acknowledged: without it Autobahn returns None and a lost
        publish is indistinguishable from a delivered one.
        """
        kw = _check_payload(args, kwargs, "topic")
        checked_options = publish_options(options)
        deadline = self.default_timeout if timeout is None else timeout

        def issue(session: Session) -> Any:
            return session.publish(topic, *args, options=checked_options, **kw)

        return self._run(f"publish to {topic!r}", issue, deadline, session_wait)

    def _run(
        self,
        description: str,
        issue: Callable[[Session], Any],
        deadline: float,
        session_wait: float | None,
    ) -> Deferred[Any]:
        session = self.tracker.session
        if session is not None and session.is_attached():
            # The common case, kept free of a Deferred chain of its own.
            return self._issue(description, session, issue, deadline)
        wait = self.default_session_wait if session_wait is None else session_wait
        got_session = self.tracker.wait_for_session(wait)
        return got_session.addCallback(
            lambda session: self._issue(description, session, issue, deadline)
        )

    def _issue(
        self,
        description: str,
        session: Session,
        issue: Callable[[Session], Any],
        deadline: float,
    ) -> Deferred[Any]:
        pending: _Pending

        def cancelled_by_caller(_: Deferred[Any]) -> None:
            # The HTTP client went away: tell the router, then give up locally.
            pending.cancel_inner()

        answer: Deferred[Any] = Deferred(canceller=cancelled_by_caller)
        pending = _Pending(description, session, answer)
        try:
            inner = issue(session)
        except (TransportLost, Disconnected):
            # TransportLost: the transport is gone. Disconnected: it is going
            # (e.g. auto-ping gave up) and the leave has not arrived yet.
            # Either way nothing was sent: a failed Deferred, as from any other
            # operation, never an exception out of call()/publish().
            return fail(
                NoSessionError(self.tracker.name, self.tracker.retry_after, "the transport is gone")
            )
        if not isinstance(inner, Deferred):
            raise TypeError(f"{description}: Autobahn returned {inner!r}, not a Deferred")
        pending.inner = inner
        # The router can start on this message while we read the next request.
        flush_now(getattr(session, "_transport", None))

        key = id(session)
        self._in_flight.setdefault(key, set()).add(pending)

        def forget(result: object) -> object:
            ops = self._in_flight.get(key)
            if ops is not None:
                ops.discard(pending)
                if not ops:
                    del self._in_flight[key]
            return result

        answer.addBoth(forget)
        inner.addBoth(self._deliver, pending)

        def expire() -> None:
            pending.settle(Failure(DeadlineError(self.tracker.name, description, deadline)))
            pending.cancel_inner()  # after settling, so Autobahn's CancelledError is not the answer

        pending.timer = self.reactor.callLater(deadline, expire)
        return answer

    @staticmethod
    def _deliver(result: object, pending: _Pending) -> None:
        """Pass Autobahn's answer on, unless we already answered (deadline, leave, cancel)."""
        if pending.settled:
            if isinstance(result, Failure) and not result.check(CancelledError):
                _log.debug(
                    "late failure for {what} ignored: {f}", what=pending.description, f=result
                )
            return  # consumed: a late answer is nobody's unhandled error
        pending.settle(result)

    def _fail_outstanding(self, session: Session, reason: str) -> None:
        ops = self._in_flight.pop(id(session), set())
        for pending in list(ops):
            pending.settle(
                Failure(SessionLostError(self.tracker.name, pending.description, reason))
            )


def _check_payload(
    args: Sequence[Any], kwargs: Mapping[str, Any] | None, uri_argument: str
) -> dict[str, Any]:
    """Refuse payloads that would collide with Autobahn's own arguments."""
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise BadRequestError(f"args must be a list, not {type(args).__name__}")
    kw = dict(kwargs or {})
    for name in ("options", uri_argument, "self"):
        if name in kw:
            raise BadRequestError(
                f"a keyword argument named {name!r} cannot be sent through Autobahn, "
                "whose own argument has that name"
            )
    for name in RECEIVER_RESERVED:
        if name in kw:
            raise BadRequestError(
                f"a keyword argument named {name!r} would break the session of an Autobahn "
                "peer receiving it (its dispatch passes handlers through f/fun parameters)"
            )
    return kw
