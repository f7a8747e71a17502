"""
Registrations and subscriptions an application declares once and wampweb
re-makes on every session.

Autobahn's ``Component.register``/``subscribe`` run in a ``join`` listener
whose errors are swallowed, so a session can look ready while a procedure is
missing. Here each declaration is made and checked; the session is *ready*
only when all of them succeeded. A fast rejoin can still find the old
registration at the router (``procedure_already_exists``): such failures are
retried a few times before the procedure is reported missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions, SubscribeOptions
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from wampweb._sessions import Session, SessionState, SessionTracker

_log = Logger()

F = TypeVar("F", bound=Callable[..., Any])

_RETRYABLE = frozenset(
    {
        "wamp.error.procedure_already_exists",
        "wamp.error.subscription_already_exists",
    }
)


@attrs.frozen
class Declaration:
    """One procedure to register or one topic to subscribe, with its options."""

    kind: str  # "register" | "subscribe"
    uri: str
    handler: Callable[..., Any]
    options: RegisterOptions | SubscribeOptions | None = None

    def apply(self, session: Session) -> Deferred[Any]:
        if self.kind == "register":
            return maybeDeferred(session.register, self.handler, self.uri, options=self.options)
        return maybeDeferred(session.subscribe, self.handler, self.uri, options=self.options)

    def describe(self) -> str:
        return f"{self.kind} {self.uri!r}"


@attrs.define(eq=False)
class Declarations:
    """
    The declared registrations and subscriptions of one Component, applied on
    every join and reported through the tracker's readiness.
    """

    tracker: SessionTracker
    reactor: IReactorTime
    attempts: int = 5
    retry_delay: float = 0.5
    items: list[Declaration] = attrs.field(factory=list)
    #: Declarations not (yet) in place on the current session, with why.
    missing: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.tracker.when_joined(lambda session, _event: self.apply_all(session))

    def register(self, uri: str, options: RegisterOptions | None = None) -> Callable[[F], F]:
        """Declare ``uri`` as a procedure served by the decorated function."""

        def decorator(handler: F) -> F:
            self._add(Declaration("register", uri, handler, options))
            return handler

        return decorator

    def subscribe(self, topic: str, options: SubscribeOptions | None = None) -> Callable[[F], F]:
        """Declare the decorated function as a handler of events on ``topic``."""

        def decorator(handler: F) -> F:
            self._add(Declaration("subscribe", topic, handler, options))
            return handler

        return decorator

    def _add(self, declaration: Declaration) -> None:
        self.items.append(declaration)
        session = self.tracker.session
        if session is not None:
            # Declared after the join: make it now rather than at the next
            # reconnect, and stop claiming readiness until it is in place.
            if self.tracker.state is SessionState.READY:
                self.tracker.state = SessionState.JOINED
            self._apply_one(session, declaration).addCallback(lambda _: self._maybe_ready(session))

    def apply_all(self, session: Session) -> Deferred[None]:
        """Make every declaration on ``session``; mark it ready when all succeeded."""
        self.missing = {}
        results = [self._apply_one(session, item) for item in self.items]
        done: Deferred[None] = DeferredList(results, consumeErrors=True).addCallback(
            lambda _: self._maybe_ready(session)
        )
        return done

    def _maybe_ready(self, session: Session) -> None:
        if not self.missing:
            self.tracker.mark_ready(session)

    def _apply_one(self, session: Session, item: Declaration, attempt: int = 1) -> Deferred[None]:
        # Every step checks that ``session`` is still the current one: after a
        # fast rejoin, answers and retries for the old session must not touch
        # the new session's bookkeeping.
        def current() -> bool:
            return session is self.tracker.session

        def succeeded(_: object) -> None:
            if current():
                self.missing.pop(item.describe(), None)

        def retry(_: object) -> Deferred[None] | None:
            return self._apply_one(session, item, attempt + 1) if current() else None

        def failed(failure: Failure) -> Deferred[None] | None:
            if not current():
                return None  # the session is gone; the next join starts over
            error = failure.value
            uri = error.error if isinstance(error, ApplicationError) else None
            if uri in _RETRYABLE and attempt < self.attempts:
                return deferLater(self.reactor, self.retry_delay, lambda: None).addCallback(retry)
            reason = uri or repr(error)
            self.missing[item.describe()] = reason
            _log.error(
                "component {name!r}: could not {what}: {reason}",
                name=self.tracker.name,
                what=item.describe(),
                reason=reason,
            )
            return None

        self.missing[item.describe()] = "pending"
        return item.apply(session).addCallbacks(succeeded, failed)
