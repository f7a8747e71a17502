"""
The WAMP peers of ``benchmarks/faults.py``: plain Autobahn Components in the
script's own reactor, each connected straight to the router (never through
wampweb nor through the fault proxy), reconnecting quickly after a restart.

- :class:`CountingSubscriber` counts the sequence numbers published to a topic
  and knows, at any moment, whether its subscription is in place (and which
  one: an *epoch* per successful subscribe), so that "acknowledged but lost"
  can be told from "published while nobody listened".
- :class:`SlowCallee` registers a procedure that answers after a delay (or
  never), counting invocations.
- :class:`MetaWatcher` subscribes to ``wamp.session.on_join``/``on_leave``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from autobahn.twisted.component import Component
from autobahn.wamp.types import SubscribeOptions
from twisted.internet.defer import Deferred, DeferredList, succeed

#: Quick reconnects: the peers must be back before wampweb is, or they would be what we measure.
PEER_RETRY = {
    "initial_retry_delay": 0.2,
    "max_retry_delay": 0.5,
    "retry_delay_growth": 1.2,
    "retry_delay_jitter": 0.05,
    "max_retries": -1,
}


def peer_component(rawsocket_port: int, realm: str = "realm1") -> Component:
    transport = {
        "type": "rawsocket",
        "url": f"rs://127.0.0.1:{rawsocket_port}",
        "serializer": "msgpack",
        "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": rawsocket_port},
        **PEER_RETRY,
    }
    return Component(transports=[transport], realm=realm)


class _Peer:
    """Start/stop and readiness shared by the peers."""

    def __init__(self, reactor: Any, rawsocket_port: int) -> None:
        self.reactor = reactor
        self.component = peer_component(rawsocket_port)
        self.ready = False
        self.joins = 0
        self._waiters: list[Deferred[None]] = []
        self._done: Deferred[Any] | None = None
        self.component.on("join", self._on_join)
        self.component.on("leave", self._on_gone)
        self.component.on("disconnect", self._on_gone)

    def start(self) -> None:
        self._done = self.component.start(self.reactor)
        self._done.addErrback(lambda _: None)

    def _on_join(self, session: Any, details: Any) -> Deferred[Any]:
        self.joins += 1
        declared = self.declare(session)
        declared.addCallback(lambda _: self._mark_ready())
        return declared

    def declare(self, session: Any) -> Deferred[Any]:
        raise NotImplementedError

    def _mark_ready(self) -> None:
        self.ready = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _on_gone(self, *_: Any, **__: Any) -> None:
        self.ready = False

    def wait_ready(self, timeout: float) -> Deferred[None]:
        """Fires once declared on a live session; fails after ``timeout`` seconds."""
        if self.ready:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        timer = self.reactor.callLater(timeout, waiter.cancel)
        waiter.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        return waiter

    async def until_ready(self, timeout: float = 30.0) -> None:
        if not self.ready:
            await self.wait_ready(timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        if self._done is None:
            return
        done = self._done
        with contextlib.suppress(Exception):
            self.component.stop()
        if not done.called:
            timer = self.reactor.callLater(timeout, done.cancel)
            await DeferredList([done], consumeErrors=True)
            if timer.active():
                timer.cancel()


class CountingSubscriber(_Peer):
    """Subscribes to ``topic`` and records the first argument (a sequence number) of each event."""

    def __init__(self, reactor: Any, rawsocket_port: int, topic: str) -> None:
        # rawsocket_port may be a proxy's, to watch what the router sends.
        super().__init__(reactor, rawsocket_port)
        self.topic = topic
        self.epoch = 0
        self.seen: set[int] = set()
        self.events = 0

    def declare(self, session: Any) -> Deferred[Any]:
        subscribed: Deferred[Any] = session.subscribe(self._event, self.topic)

        def bump(result: Any) -> Any:
            self.epoch += 1
            return result

        return subscribed.addCallback(bump)

    def _event(self, *args: Any, **_kwargs: Any) -> None:
        self.events += 1
        if args and isinstance(args[0], int):
            self.seen.add(args[0])

    def current_epoch(self) -> int | None:
        """The subscription in place now (None: not subscribed)."""
        return self.epoch if self.ready else None


class SlowCallee(_Peer):
    """Registers ``procedure``, answering after ``delay`` seconds (None: never)."""

    def __init__(
        self, reactor: Any, rawsocket_port: int, procedure: str, delay: float | None
    ) -> None:
        super().__init__(reactor, rawsocket_port)
        self.procedure = procedure
        self.delay = delay
        self.invocations = 0
        self._held: list[Deferred[Any]] = []
        self._counters: list[tuple[int, Deferred[None]]] = []

    def declare(self, session: Any) -> Deferred[Any]:
        registered: Deferred[Any] = session.register(self._invoked, self.procedure)
        return registered

    def _invoked(self, *args: Any, **_kwargs: Any) -> Deferred[Any]:
        self.invocations += 1
        for count, waiter in list(self._counters):
            if self.invocations >= count:
                self._counters.remove((count, waiter))
                waiter.callback(None)
        answer: Deferred[Any] = Deferred()
        if self.delay is None:
            self._held.append(answer)  # never answered
        else:
            self.reactor.callLater(self.delay, answer.callback, list(args))
        return answer

    def when_invoked(self, count: int) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if self.invocations >= count:
            waiter.callback(None)
        else:
            self._counters.append((count, waiter))
        return waiter

    def forget_held(self) -> None:
        self._held.clear()


class MetaWatcher(_Peer):
    """Records the router's ``wamp.session.on_join``/``on_leave`` meta events."""

    def __init__(self, reactor: Any, rawsocket_port: int) -> None:
        super().__init__(reactor, rawsocket_port)
        self.joined: dict[int, float] = {}
        self.left: dict[int, float] = {}

    def declare(self, session: Any) -> Deferred[Any]:
        options = SubscribeOptions(details_arg="details")
        return DeferredList(
            [
                session.subscribe(self._on_join_meta, "wamp.session.on_join", options=options),
                session.subscribe(self._on_leave_meta, "wamp.session.on_leave", options=options),
            ],
            fireOnOneErrback=True,
            consumeErrors=True,
        )

    def _on_join_meta(self, info: Any = None, *_: Any, **__: Any) -> None:
        session = info.get("session") if isinstance(info, dict) else info
        if isinstance(session, int):
            self.joined[session] = time.monotonic()

    def _on_leave_meta(self, session: Any = None, *_: Any, **__: Any) -> None:
        if isinstance(session, int):
            self.left[session] = time.monotonic()
