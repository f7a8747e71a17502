"""
In-memory fakes for testing wampweb apps without a router.

:class:`FakeSession` stands in for an Autobahn session: every call, publish,
registration and subscription is recorded and answered by a Deferred the
test fires. :class:`FakeComponent` stands in for an Autobahn ``Component``:
the test decides when it joins, leaves or ends. Together with Twisted's
``MemoryReactorClock`` and treq's ``StubTreq`` they let a whole app be
driven synchronously, with no sockets and no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from autobahn.wamp.exception import TransportLost
from autobahn.wamp.types import CloseDetails, SessionDetails
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed
from twisted.web.resource import IResource

from wampweb._http import JsonErrorRequest

__all__ = ["FakeComponent", "FakeSession", "Recorded", "stub_client"]


def stub_client(resource: IResource) -> StubTreq:
    """
    treq's ``StubTreq`` serving ``resource`` the way wampweb's own Site does.

    Plain ``StubTreq`` wraps the resource in a default ``Site``, whose
    unexpected-error page is HTML; wampweb answers JSON there, and a test
    should see what a client would.
    """
    stub = StubTreq(resource)
    agent = stub._agent
    agent._serverFactory.requestFactory = JsonErrorRequest
    agent._serverFactory.displayTracebacks = False
    return stub


@attrs.define(eq=False)
class Recorded:
    """One operation a :class:`FakeSession` received, and the Deferred that answers it."""

    kind: str
    uri: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: Any
    answer: Deferred[Any]
    cancelled: bool = False


@attrs.define(eq=False)
class FakeSession:
    """
    A session that records what it is asked and answers when told.

    ``auto_answer`` makes publishes and registrations succeed at once, which
    is what most tests want; calls always wait for the test to answer them.
    """

    session_id: int = 1
    attached: bool = True
    auto_answer: bool = True
    records: list[Recorded] = attrs.field(factory=list)
    left_with: str | None = None

    def is_attached(self) -> bool:
        return self.attached

    def _record(self, kind: str, uri: str, args: Any, kwargs: Any, options: Any) -> Recorded:
        if not self.attached:
            raise TransportLost()
        record: Recorded

        def cancel(_: Deferred[Any]) -> None:
            record.cancelled = True

        record = Recorded(kind, uri, tuple(args), dict(kwargs), options, Deferred(cancel))
        self.records.append(record)
        return record

    def call(self, procedure: str, *args: Any, options: Any = None, **kwargs: Any) -> Any:
        return self._record("call", procedure, args, kwargs, options).answer

    def publish(self, topic: str, *args: Any, options: Any = None, **kwargs: Any) -> Any:
        record = self._record("publish", topic, args, kwargs, options)
        if self.auto_answer:
            record.answer.callback(FakePublication(len(self.records)))
        return record.answer

    def register(self, endpoint: Any, procedure: str | None = None, options: Any = None) -> Any:
        record = self._record("register", procedure or "", (endpoint,), {}, options)
        if self.auto_answer:
            record.answer.callback(object())
        return record.answer

    def subscribe(self, handler: Any, topic: str | None = None, options: Any = None) -> Any:
        record = self._record("subscribe", topic or "", (handler,), {}, options)
        if self.auto_answer:
            record.answer.callback(object())
        return record.answer

    def leave(self, reason: str | None = None, message: str | None = None) -> Any:
        self.left_with = reason or "wamp.close.normal"
        return succeed(None)

    def of_kind(self, kind: str) -> list[Recorded]:
        """What was asked of this kind ("call", "publish", "register", "subscribe")."""
        return [record for record in self.records if record.kind == kind]


@attrs.frozen
class FakePublication:
    """What an acknowledged publish fires with."""

    id: int


class _FakeTransport:
    """The bits of Autobahn's ``_Transport`` that wampweb touches."""

    def __init__(self, kind: str = "websocket") -> None:
        self.type = kind
        self.options: dict[str, Any] = {}
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1


class FakeComponent:
    """
    Stands in for ``autobahn.twisted.component.Component``; the test drives it.

    ``join()`` makes a new :class:`FakeSession` join (as every reconnect
    does), ``leave()`` loses it, ``connect_failed()`` reports a failed
    connection attempt, ``end()`` finishes the Component the way a router
    GOODBYE does, and ``fail()`` the way exhausted retries do.
    """

    def __init__(self, transports: int = 1) -> None:
        self._transports = [_FakeTransport() for _ in range(transports)]
        self._is_fatal: Callable[[Exception], bool] | None = None
        self._session: FakeSession | None = None
        self._stopping = False
        self.listeners: dict[str, list[Callable[..., Any]]] = {}
        self.starts = 0
        self.stops = 0
        self.sessions: list[FakeSession] = []
        self._done: Deferred[None] | None = None

    def on(self, event: str, listener: Callable[..., Any]) -> None:
        self.listeners.setdefault(event, []).append(listener)

    def _fire(self, event: str, *args: Any) -> None:
        for listener in self.listeners.get(event, []):
            listener(*args)

    def start(self, reactor: Any = None) -> Deferred[None]:
        self.starts += 1
        self._done = Deferred()
        return self._done

    def stop(self) -> Deferred[None]:
        self.stops += 1
        self._stopping = True
        session = self._session
        if session is not None and session.attached:
            session.leave("wamp.close.normal")
            self.leave("wamp.close.normal")
        self.end()
        return succeed(None)

    def join(self, session: FakeSession | None = None) -> FakeSession:
        """A new session joins, as after every (re)connect."""
        session = session or FakeSession(session_id=len(self.sessions) + 1)
        self.sessions.append(session)
        self._session = session
        self._fire("join", session, SessionDetails(realm="realm1", session=session.session_id))
        return session

    def leave(self, reason: str = "wamp.close.transport_lost", message: str = "") -> None:
        """The current session is lost (without ending the Component)."""
        session = self._session
        if session is None:
            return
        session.attached = False
        self._session = None
        self._fire("leave", session, CloseDetails(reason=reason, message=message))
        self._fire("disconnect", session, False)

    def connect_failed(self, error: Exception) -> None:
        """A connection attempt failed (the router is down, say); Autobahn will retry."""
        self._fire("connectfailure", self, error)

    def end(self) -> None:
        """The Component finishes, as after a router GOODBYE with ``wamp.close.normal``."""
        if self._done is not None and not self._done.called:
            self._done.callback(None)

    def fail(self, error: Exception) -> None:
        """The Component gives up, as when its transports run out of retries."""
        if self._is_fatal is not None:
            self._is_fatal(error)
        if self._done is not None and not self._done.called:
            self._done.errback(error)
