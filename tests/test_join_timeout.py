"""
The join deadline: a connection attempt that is connected but not joined
within ``join_timeout`` seconds is dropped, so Autobahn retries it instead of
waiting for ever on a link that accepted TCP and then went silent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogEvent, LogLevel
from twisted.python.failure import Failure

from benchmarks.faults_net import CutProxy
from tests.logged import logged
from tests.waiting import within
from wampweb import SessionTracker, WampWeb, app_from_config
from wampweb._config import parse_config
from wampweb._errors import ConfigError
from wampweb._join_deadline import DEFAULT_JOIN_TIMEOUT, JoinDeadline, WatchedEndpoint
from wampweb._router import EmbeddedRouter
from wampweb._supervisor import ComponentSupervisor
from wampweb.testing import FakeComponent

SOURCE = "wampweb.toml"
URL = "rs://127.0.0.1:8081"
NAMESPACE = "wampweb._join_deadline"


@pytest.fixture
def reactor() -> MemoryReactorClock:
    """Records each TCP connect, which the test then completes (or not), and keeps time."""
    return MemoryReactorClock()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """
    Every warning the join deadline logs while the test runs, as text. (Only
    its own: a Component left reconnecting by an earlier test may log too.)
    """

    def keep(event: LogEvent) -> bool:
        return event.get("log_level") is LogLevel.warn and event.get("log_namespace") == NAMESPACE

    with logged(keep) as seen:
        yield seen


class CountingTransport(StringTransport):
    """The TCP connection under a real Autobahn client protocol, counting aborts."""

    aborts = 0

    def abortConnection(self) -> None:
        self.aborts += 1
        super().abortConnection()


@attrs.define
class CountingLink:
    """Autobahn's protocol as the deadline drops it: through its Twisted transport."""

    transport: CountingTransport = attrs.field(factory=CountingTransport)

    @property
    def aborts(self) -> int:
        return self.transport.aborts


@attrs.define(eq=False)
class Attempt:
    """One of Autobahn's connection attempts, its TCP connection made in memory."""

    done: Deferred[Any]
    protocol: IProtocol
    transport: CountingTransport

    def answer_the_handshake(self) -> None:
        """The router's RawSocket handshake reply: JSON, the largest messages."""
        self.protocol.dataReceived(b"\x7f\xf1\x00\x00")

    def hello(self) -> list[Any]:
        """The HELLO the client sent after the handshake."""
        frame = self.transport.value()[4:]  # after the client's own handshake
        return list(json.loads(frame[4 : 4 + int.from_bytes(frame[1:4], "big")]))

    def welcome(self, session_id: int = 1) -> None:
        message = json.dumps([2, session_id, {"roles": {"broker": {}, "dealer": {}}}]).encode()
        self.protocol.dataReceived(len(message).to_bytes(4, "big") + message)

    def lose(self) -> None:
        """The connection goes (after an abort, or on its own)."""
        self.protocol.connectionLost(Failure(ConnectionAborted()))


def rawsocket_component() -> Component:
    return Component(
        transports=[{"type": "rawsocket", "url": URL, "serializer": "json"}], realm="realm1"
    )


def supervise(
    component: Any, reactor: Clock, join_timeout: float = DEFAULT_JOIN_TIMEOUT
) -> ComponentSupervisor:
    """
    Supervised, not started: the test makes each attempt itself, as Autobahn's
    reconnect loop would (which runs on the global reactor, not the test's).
    """
    tracker = SessionTracker("backend", reactor)
    return ComponentSupervisor("backend", component, tracker, reactor, join_timeout=join_timeout)


def attempt(component: Component, reactor: MemoryReactorClock) -> Attempt:
    """One attempt, through Autobahn's own code, until its TCP connection is up."""
    done = component._connect_once(reactor, component._transports[0])
    done.addErrback(lambda _: None)  # the test plays the reconnect loop, not Autobahn
    host, port, factory, _, _ = reactor.tcpClients[-1]
    protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
    assert protocol is not None
    transport = CountingTransport()
    protocol.makeConnection(transport)
    return Attempt(done, protocol, transport)


# -- one attempt ------------------------------------------------------------------------


def test_a_connection_whose_handshake_is_never_answered_is_dropped_once_after_the_timeout(
    reactor: MemoryReactorClock, warnings: list[str]
) -> None:
    component = rawsocket_component()
    opened: list[Any] = []
    component.on("connect", lambda session, link: opened.append(link))
    supervisor = supervise(component, reactor)
    first = attempt(component, reactor)
    assert first.transport.value()[:1] == b"\x7f"  # the client's handshake, never answered
    reactor.advance(9.9)
    assert first.transport.aborts == 0
    reactor.advance(0.1)
    assert first.transport.aborts == 1
    assert opened == []  # Autobahn's "connect" never came: too late to start the clock
    first.lose()
    assert first.done.called  # Autobahn's attempt is over: its reconnect loop retries
    reactor.advance(600.0)
    assert first.transport.aborts == 1
    assert supervisor.join_deadline.expired == 1
    [warning] = warnings
    assert "'backend'" in warning
    assert URL in warning
    assert "not joined within 10 s" in warning
    assert "no answer to the opening handshake" in warning


def test_a_session_that_joins_in_time_keeps_its_connection(
    reactor: MemoryReactorClock, warnings: list[str]
) -> None:
    component = rawsocket_component()
    supervisor = supervise(component, reactor)
    first = attempt(component, reactor)
    reactor.advance(3.0)
    first.answer_the_handshake()
    assert first.hello()[:2] == [1, "realm1"]
    reactor.advance(6.9)
    first.welcome()
    assert supervisor.tracker.joined
    reactor.advance(0.2)  # past the deadline of the attempt: it is over
    assert first.transport.aborts == 0
    assert supervisor.join_deadline.expired == 0
    assert warnings == []


def test_the_deadline_counts_from_the_tcp_connection_not_from_the_hello(
    reactor: MemoryReactorClock, warnings: list[str], logged_failures: list[Any]
) -> None:
    component = rawsocket_component()
    supervise(component, reactor)
    first = attempt(component, reactor)
    reactor.advance(8.0)
    first.answer_the_handshake()  # HELLO goes out; WELCOME never comes
    reactor.advance(1.9)
    assert first.transport.aborts == 0
    reactor.advance(0.1)
    assert first.transport.aborts == 1
    [warning] = warnings
    assert "no WELCOME to its HELLO" in warning
    first.lose()
    assert first.done.called
    assert logged_failures == []


def test_a_connection_lost_before_the_deadline_is_not_dropped_again(
    reactor: MemoryReactorClock, warnings: list[str]
) -> None:
    component = rawsocket_component()
    supervise(component, reactor)
    first = attempt(component, reactor)
    reactor.advance(4.0)
    first.lose()
    reactor.advance(600.0)
    assert first.transport.aborts == 0
    assert warnings == []


# -- attempt after attempt ---------------------------------------------------------------


def test_the_timer_of_an_earlier_attempt_does_nothing_to_the_next_one(
    reactor: MemoryReactorClock,
) -> None:
    component = rawsocket_component()
    supervisor = supervise(component, reactor)
    first = attempt(component, reactor)
    reactor.advance(5.0)
    first.lose()
    reactor.advance(1.0)
    second = attempt(component, reactor)  # at 6 s; the first one's deadline was 10 s
    reactor.advance(4.0)
    assert (first.transport.aborts, second.transport.aborts) == (0, 0)
    reactor.advance(5.9)
    assert second.transport.aborts == 0
    reactor.advance(0.1)  # 10 s after the second connection
    assert (first.transport.aborts, second.transport.aborts) == (0, 1)
    assert supervisor.join_deadline.expired == 1


def test_after_a_drop_the_retry_gets_a_deadline_of_its_own(reactor: MemoryReactorClock) -> None:
    component = rawsocket_component()
    supervisor = supervise(component, reactor)
    first = attempt(component, reactor)
    reactor.advance(10.0)
    first.lose()
    reactor.advance(1.5)  # Autobahn's backoff
    second = attempt(component, reactor)
    reactor.advance(9.9)
    assert second.transport.aborts == 0
    reactor.advance(0.1)
    assert (first.transport.aborts, second.transport.aborts) == (1, 1)
    assert supervisor.join_deadline.expired == 2


def test_an_attempt_replaced_before_its_deadline_drops_nothing_at_that_deadline() -> None:
    clock = Clock()
    deadline = JoinDeadline("backend", clock, 10.0)
    old, old_link = deadline.begin(URL), CountingLink()
    old.connected(old_link)
    clock.advance(5.0)
    new, new_link = deadline.begin(URL), CountingLink()  # no word of the old one's end
    new.connected(new_link)
    clock.advance(5.0)  # the old deadline
    assert (old_link.aborts, new_link.aborts) == (0, 0)
    clock.advance(5.0)  # the new one
    assert (old_link.aborts, new_link.aborts) == (0, 1)
    assert deadline.expired == 1


def test_a_late_connection_of_an_attempt_already_replaced_starts_no_timer() -> None:
    clock = Clock()
    deadline = JoinDeadline("backend", clock, 10.0)
    old = deadline.begin(URL)
    deadline.begin(URL)
    link = CountingLink()
    old.connected(link)
    clock.advance(600.0)
    assert link.aborts == 0
    assert clock.getDelayedCalls() == []


@pytest.fixture
def errors() -> Iterator[list[str]]:
    """Every error logged while the test runs (Autobahn's "Connection failed" among them)."""
    with logged(
        lambda event: event.get("log_level") in (LogLevel.error, LogLevel.critical)
    ) as seen:
        yield seen


def test_stopping_the_app_drops_a_connection_that_has_not_joined(
    reactor: MemoryReactorClock, errors: list[str]
) -> None:
    # Autobahn's stop() leaves a joined session only: this connection would
    # go on with its handshake and could join a session after the stop.
    component = rawsocket_component()
    supervisor = supervise(component, reactor)
    first = attempt(component, reactor)
    supervisor.stopService()
    assert first.transport.aborts == 1
    first.lose()
    reactor.advance(600.0)
    assert first.transport.aborts == 1, "once, and no deadline afterwards"
    assert len(reactor.tcpClients) == 1, "no new attempt"
    assert errors == [], "a stop is not a connection failure"


def test_stopping_the_app_cancels_a_tcp_connect_under_way(reactor: MemoryReactorClock) -> None:
    component = rawsocket_component()
    supervisor = supervise(component, reactor)
    component._connect_once(reactor, component._transports[0]).addErrback(lambda _: None)
    supervisor.stopService()
    assert reactor.connectors[-1].stoppedConnecting


def test_a_connection_made_for_an_abandoned_attempt_is_dropped() -> None:
    deadline = JoinDeadline("backend", Clock(), timeout=5.0)
    late = deadline.begin()
    deadline.abandon()
    link = CountingLink()
    late.connected(link)
    assert link.aborts == 1


def test_abandoning_a_joined_attempt_drops_nothing(reactor: MemoryReactorClock) -> None:
    deadline = JoinDeadline("backend", reactor, timeout=5.0)
    joined = deadline.begin()
    link = CountingLink()
    joined.connected(link)
    deadline.end()
    deadline.abandon()
    assert link.aborts == 0


# -- on or off, and where the clock starts ------------------------------------------------


def test_zero_turns_the_deadline_off_and_leaves_autobahns_endpoints_alone(
    reactor: MemoryReactorClock,
) -> None:
    component = rawsocket_component()
    supervise(component, reactor, join_timeout=0)
    assert isinstance(component._transports[0].endpoint, dict)
    first = attempt(component, reactor)
    reactor.advance(3600.0)
    assert first.transport.aborts == 0
    assert reactor.getDelayedCalls() == []


def test_autobahn_still_logs_its_endpoint_as_before(reactor: MemoryReactorClock) -> None:
    component = rawsocket_component()
    supervise(component, reactor)
    [transport] = component._transports
    assert isinstance(transport.endpoint, WatchedEndpoint)
    assert transport.describe_endpoint() == "tcp"


def test_through_an_http_proxy_the_clock_starts_at_autobahns_connect_event(
    reactor: MemoryReactorClock,
) -> None:
    component = Component(
        transports=[{"url": "ws://router.example:8080/ws", "proxy": {"host": "h", "port": 3128}}]
    )
    component._connect_once = lambda reactor, transport: Deferred()  # type: ignore[method-assign]
    supervisor = supervise(component, reactor)
    assert isinstance(component._transports[0].endpoint, dict)  # never asked for: not wrapped
    component._connect_once(reactor, component._transports[0])
    reactor.advance(60.0)  # connecting, as far as wampweb can see
    link = CountingLink()
    component.fire("connect", object(), link)
    reactor.advance(9.9)
    assert link.aborts == 0
    reactor.advance(0.1)
    assert link.aborts == 1
    assert supervisor.join_deadline.expired == 1


def test_a_fake_component_has_no_attempts_and_no_deadline() -> None:
    clock = Clock()
    fake = FakeComponent()
    supervisor = supervise(fake, clock)
    supervisor.startService()
    fake.join()
    clock.advance(600.0)
    assert supervisor.join_deadline.expired == 0


# -- add_component and the configuration ---------------------------------------------------


def test_add_component_takes_a_join_timeout_and_defaults_to_ten_seconds() -> None:
    web = WampWeb(listen=None, reactor=Clock())
    default = web.add_component("a", rawsocket_component())
    short = web.add_component("b", rawsocket_component(), join_timeout=2.5)
    off = web.add_component("c", rawsocket_component(), join_timeout=0)
    assert default.supervisor.join_deadline.timeout == 10.0
    assert short.supervisor.join_deadline.timeout == 2.5
    assert not off.supervisor.join_deadline.enabled


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan"), "10", True])
def test_add_component_refuses_a_join_timeout_that_cannot_be_one(bad: Any) -> None:
    web = WampWeb(listen=None, reactor=Clock())
    with pytest.raises(ValueError, match="join_timeout"):
        web.add_component("a", rawsocket_component(), join_timeout=bad)
    assert web.components == {}


def main_with(**settings: Any) -> dict[str, Any]:
    return {"components": {"main": {"realm": "realm1", "url": URL, **settings}}}


@pytest.mark.parametrize(("value", "seconds"), [(2.5, 2.5), (3, 3.0), (0, 0.0)])
def test_join_timeout_is_read_from_the_component_table(value: float, seconds: float) -> None:
    main = parse_config(main_with(join_timeout=value), SOURCE).components["main"]
    assert main.join_timeout == seconds
    assert "join_timeout" not in main.component_kwargs()  # wampweb's, not Autobahn's


def test_join_timeout_defaults_to_ten_seconds_and_reaches_the_app() -> None:
    config = parse_config(
        {
            "server": {"listen": "tcp:0:interface=127.0.0.1"},
            "components": {
                "plain": {"realm": "realm1", "url": URL},
                "quick": {"realm": "realm1", "url": URL, "join_timeout": 1.5},
            },
        },
        SOURCE,
    )
    assert config.components["plain"].join_timeout == DEFAULT_JOIN_TIMEOUT == 10.0
    web = app_from_config(config, reactor=Clock())
    assert web["plain"].supervisor.join_deadline.timeout == 10.0
    assert web["quick"].supervisor.join_deadline.timeout == 1.5


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(-1, "must be at least 0, got -1", id="negative"),
        pytest.param(float("inf"), "must be a finite number", id="infinite"),
        pytest.param(float("nan"), "must be a finite number", id="nan"),
        pytest.param("10", "expected seconds, got a string ('10')", id="string"),
        pytest.param(True, "expected seconds, got a boolean", id="boolean"),
    ],
)
def test_a_bad_join_timeout_is_refused_with_file_key_and_reason(value: Any, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(main_with(join_timeout=value), SOURCE)
    assert (info.value.source, info.value.key) == (SOURCE, "components.main.join_timeout")
    assert reason in info.value.reason


def test_a_misspelt_join_timeout_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(main_with(joinTimeout=5), SOURCE)
    assert "did you mean 'join_timeout'" in info.value.reason


# -- against a real router, through a link that accepts TCP and says nothing ----------------


async def started_behind_a_black_hole(
    router: EmbeddedRouter, join_timeout: float
) -> tuple[CutProxy, WampWeb, Deferred[float], list[Any]]:
    """
    A WampWeb app whose component reaches the router's RawSocket through a
    proxy that was black-holed before it started. Returns the proxy, the app,
    a Deferred firing with the time of the first failed attempt, and the
    links Autobahn reported open.
    """
    from twisted.internet import reactor

    proxy = CutProxy(reactor, router.rawsocket_port)
    await proxy.listen()
    proxy.blackhole()
    data = {
        "server": {"listen": "tcp:0:interface=127.0.0.1"},
        "components": {
            "main": {
                "realm": "realm1",
                "join_timeout": join_timeout,
                "transports": [{"url": f"rs://127.0.0.1:{proxy.port}", "initial_retry_delay": 0.2}],
            }
        },
    }
    web = app_from_config(parse_config(data, SOURCE), reactor=reactor)
    component = web["main"].component
    failed: Deferred[float] = Deferred()

    def connect_failed(*_: object) -> None:
        if not failed.called:
            failed.callback(time.monotonic())

    component.on("connectfailure", connect_failed)
    opened: list[Any] = []
    component.on("connect", lambda session, link: opened.append(link))
    web.startService()
    return proxy, web, failed, opened


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_a_black_holed_rawsocket_attempt_is_dropped_after_join_timeout_then_joins_once_healed(
    router: EmbeddedRouter,
) -> None:
    started = time.monotonic()
    proxy, web, failed, opened = await started_behind_a_black_hole(router, join_timeout=1.0)
    backend = web["main"]
    try:
        failed_at = await within(failed, 3.0, "giving up the silent attempt")
        after = failed_at - started
        assert 0.9 <= after < 2.0, f"dropped after {after:.2f} s"
        assert proxy.accepted >= 1  # TCP was accepted...
        assert opened == []  # ...and the RawSocket handshake never answered
        assert not backend.tracker.joined
        assert backend.supervisor.join_deadline.expired >= 1
        proxy.heal()
        await within(backend.wait_for_session(5.0), 6, "joining once the link heals")
        assert proxy.accepted >= 2  # over a new connection: Autobahn's own retry
    finally:
        await web.stopService()
        await proxy.close()


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_without_the_join_deadline_the_same_attempt_waits_for_ever(
    router: EmbeddedRouter,
) -> None:
    proxy, web, failed, _ = await started_behind_a_black_hole(router, join_timeout=0)
    try:
        with pytest.raises(AssertionError, match="did not happen"):
            await within(failed, 2.0, "giving up the silent attempt")
        assert proxy.accepted == 1  # one attempt, still waiting: Autobahn has no handshake timeout
        backend = web["main"]
        assert not backend.tracker.joined
        proxy.heal()  # closes the swallowed link: that, TCP notices at once
        await within(backend.wait_for_session(5.0), 6, "joining once the link is closed")
    finally:
        await web.stopService()
        await proxy.close()


class Silent(Protocol):
    """A far end that accepts TCP and never says a word, noting when the client goes."""

    def __init__(self, gone: Deferred[None]) -> None:
        self.gone = gone

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.gone.called:
            self.gone.callback(None)


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_stopping_while_the_handshake_waits_closes_the_connection_and_joins_nothing() -> None:
    from twisted.internet import reactor

    connected: Deferred[None] = Deferred()
    gone: Deferred[None] = Deferred()
    accepted: list[Silent] = []

    def build(_: object) -> Silent:
        accepted.append(Silent(gone))
        if not connected.called:
            connected.callback(None)
        return accepted[-1]

    silent = Factory.forProtocol(Silent)
    silent.buildProtocol = build  # type: ignore[method-assign]
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(silent)
    data = {
        "server": {"listen": "tcp:0:interface=127.0.0.1"},
        "components": {
            "main": {
                "realm": "realm1",
                "join_timeout": 60,
                "transports": [{"url": f"rs://127.0.0.1:{port.getHost().port}"}],
            }
        },
    }
    web = app_from_config(parse_config(data, SOURCE), reactor=reactor)
    try:
        web.startService()
        await within(connected, 5, "the first connection")
        await within(web.stopService(), 2, "the stop")
        await within(gone, 1, "the connection closing")
        await within(deferLater(reactor, 0.5, lambda: None), 1, "a pause")
        assert len(accepted) == 1, "no new attempt after the stop"
        assert not web["main"].tracker.joined
    finally:
        await port.stopListening()
