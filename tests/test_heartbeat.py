"""
The RawSocket heartbeat: a WAMP call that any answer satisfies, so a
black-holed RawSocket link (no FIN, no RST, no ping in Autobahn) is dropped
within interval + timeout seconds instead of whenever TCP gives up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from autobahn.twisted.rawsocket import WampRawSocketClientProtocol
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SessionDetails
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel

from benchmarks.faults_net import CutProxy
from tests.logged import logged
from tests.waiting import within
from wampweb import SessionState, SessionTracker, WampWeb
from wampweb._app import ManagedComponent
from wampweb._config import parse_config
from wampweb._errors import ConfigError, SessionLostError
from wampweb._heartbeat import (
    DEFAULT_HEARTBEAT,
    HEARTBEAT_PROCEDURE,
    Heartbeat,
    HeartbeatSettings,
    settings_of,
)
from wampweb._router import EmbeddedRouter
from wampweb._supervisor import ComponentSupervisor
from wampweb.testing import FakeComponent, FakeSession

SOURCE = "wampweb.toml"
T0 = "components.main.transports[0]"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Every warning logged while the test runs, as text."""
    with logged(lambda event: event.get("log_level") is LogLevel.warn) as seen:
        yield seen


@attrs.define
class FakeLink:
    """Autobahn's protocol, as far as the heartbeat drops it."""

    aborts: int = 0

    def abort(self) -> None:
        self.aborts += 1


class CountingTransport(StringTransport):
    """A Twisted transport under a real RawSocket protocol, counting aborts."""

    aborts = 0

    def abortConnection(self) -> None:
        self.aborts += 1
        super().abortConnection()


@attrs.define(eq=False)
class RawSocketSession(FakeSession):
    """A fake session whose ``_transport`` is a real Autobahn RawSocket protocol."""

    _transport: Any = None


def rawsocket_session(session_id: int = 1) -> tuple[RawSocketSession, CountingTransport]:
    protocol = WampRawSocketClientProtocol()
    transport = CountingTransport()
    protocol.transport = transport  # connected, without the opening handshake
    return RawSocketSession(session_id=session_id, transport=protocol), transport


def heartbeats(session: FakeSession) -> list[Any]:
    return [r for r in session.of_kind("call") if r.uri == HEARTBEAT_PROCEDURE]


def beating(
    clock: Clock, settings: HeartbeatSettings = DEFAULT_HEARTBEAT
) -> tuple[Heartbeat, FakeSession, FakeLink]:
    session, link = FakeSession(), FakeLink()
    heartbeat = Heartbeat("backend", session, link, clock, settings)
    heartbeat.start()
    return heartbeat, session, link


# -- the heartbeat of one session --------------------------------------------------------


def test_a_heartbeat_is_a_call_every_interval_and_an_answer_keeps_the_link(
    clock: Clock,
) -> None:
    heartbeat, session, link = beating(clock)
    clock.advance(9.9)
    assert heartbeats(session) == []
    clock.advance(0.1)
    [first] = heartbeats(session)
    first.answer.callback(None)
    clock.advance(9.9)  # well past the timeout: answered, so nothing happens
    assert link.aborts == 0
    assert len(heartbeats(session)) == 1
    clock.advance(0.1)  # the next one, an interval after the answer
    assert len(heartbeats(session)) == 2
    assert (heartbeat.sent, heartbeat.answered, heartbeat.dropped) == (2, 1, False)


@pytest.mark.parametrize(
    "uri",
    ["wamp.error.no_such_procedure", "wamp.error.not_authorized", "com.example.oops"],
)
def test_an_error_answer_proves_the_link_alive_too(
    clock: Clock, uri: str, logged_failures: list[Any]
) -> None:
    heartbeat, session, link = beating(clock)
    clock.advance(10.0)
    heartbeats(session)[0].answer.errback(ApplicationError(uri, "no callee"))
    clock.advance(9.9)
    assert link.aborts == 0
    clock.advance(0.1)
    assert len(heartbeats(session)) == 2  # the next one, as after any answer
    assert heartbeat.answered == 1
    assert logged_failures == []  # the error is an answer, not an unhandled failure


def test_no_answer_within_the_timeout_drops_the_link_exactly_once(
    clock: Clock, warnings: list[str]
) -> None:
    heartbeat, session, link = beating(clock)
    clock.advance(10.0)
    [unanswered] = heartbeats(session)
    clock.advance(4.9)
    assert link.aborts == 0
    clock.advance(0.1)
    assert link.aborts == 1
    assert heartbeat.dropped
    assert not heartbeat.running
    clock.advance(120.0)
    unanswered.answer.callback(None)  # far too late
    clock.advance(120.0)
    assert link.aborts == 1
    assert len(heartbeats(session)) == 1
    [warning] = warnings
    assert "'backend'" in warning
    assert "no answer to the heartbeat within 5 s" in warning
    assert "dropping the RawSocket link" in warning


def test_only_one_heartbeat_is_in_flight_even_when_the_timeout_exceeds_the_interval(
    clock: Clock,
) -> None:
    _, session, link = beating(clock, HeartbeatSettings(interval=1.0, timeout=30.0))
    clock.advance(1.0)
    clock.pump([1.0] * 20)
    assert len(heartbeats(session)) == 1
    heartbeats(session)[0].answer.callback(None)
    clock.advance(1.0)
    assert len(heartbeats(session)) == 2
    assert link.aborts == 0


def test_stopping_ends_the_heartbeat_and_a_late_answer_starts_nothing(clock: Clock) -> None:
    heartbeat, session, link = beating(clock)
    clock.advance(10.0)
    [pending] = heartbeats(session)
    heartbeat.stop()
    assert not pending.cancelled  # Autobahn raises when a call on a lost transport is cancelled
    pending.answer.callback(None)
    clock.advance(600.0)
    assert len(heartbeats(session)) == 1
    assert link.aborts == 0
    assert clock.getDelayedCalls() == []


def test_a_heartbeat_that_cannot_be_sent_drops_the_link(clock: Clock) -> None:
    heartbeat, session, link = beating(clock)
    session.attached = False  # the fake raises TransportLost, as Autobahn does
    clock.advance(10.0)
    assert link.aborts == 1
    assert heartbeat.dropped


def test_an_interval_of_zero_means_no_heartbeat(clock: Clock) -> None:
    heartbeat, session, _ = beating(clock, HeartbeatSettings(interval=0.0))
    clock.advance(600.0)
    assert heartbeats(session) == []
    assert not heartbeat.running
    assert clock.getDelayedCalls() == []


# -- the supervisor runs one per RawSocket session ----------------------------------------


def supervise(component: Any, clock: Clock) -> tuple[ComponentSupervisor, Any]:
    supervisor = ComponentSupervisor("backend", component, SessionTracker("backend", clock), clock)
    supervisor.startService()
    return supervisor, component


def test_a_rawsocket_session_gets_the_default_heartbeat_and_a_dead_link_is_dropped(
    clock: Clock,
) -> None:
    supervisor, fake = supervise(FakeComponent(), clock)
    session, transport = rawsocket_session()
    fake.join(session)
    clock.advance(10.0)
    assert len(heartbeats(session)) == 1
    clock.advance(5.0)
    assert transport.aborts == 1  # Autobahn's abort(): connectionLost, leave, reconnect
    fake.leave()
    assert supervisor.tracker.state is SessionState.GONE


def test_a_websocket_session_gets_no_heartbeat_it_has_auto_ping(clock: Clock) -> None:
    _, fake = supervise(FakeComponent(), clock)
    session = fake.join()  # a FakeSession has no RawSocket transport
    clock.advance(60.0)
    assert heartbeats(session) == []


def test_the_heartbeat_stops_when_the_session_leaves(clock: Clock) -> None:
    _, fake = supervise(FakeComponent(), clock)
    session, transport = rawsocket_session()
    fake.join(session)
    clock.advance(10.0)
    [pending] = heartbeats(session)
    fake.leave()
    clock.advance(600.0)
    assert len(heartbeats(session)) == 1
    assert transport.aborts == 0
    assert not pending.cancelled


def test_a_late_answer_for_the_old_session_does_not_act_on_the_new_one(clock: Clock) -> None:
    _, fake = supervise(FakeComponent(), clock)
    old, old_transport = rawsocket_session(1)
    fake.join(old)
    clock.advance(10.0)
    [old_beat] = heartbeats(old)
    fake.leave()
    new, new_transport = rawsocket_session(2)
    fake.join(new)
    clock.advance(10.0)
    [new_beat] = heartbeats(new)
    old_beat.answer.callback(None)  # the old router's answer, late: proves nothing now
    clock.advance(5.0)
    assert new_transport.aborts == 1
    assert old_transport.aborts == 0
    assert not new_beat.answer.called


def test_a_late_leave_of_the_old_session_does_not_stop_the_new_heartbeat(clock: Clock) -> None:
    supervisor, fake = supervise(FakeComponent(), clock)
    old, _ = rawsocket_session(1)
    new, _ = rawsocket_session(2)
    fake.join(old)
    fake.join(new)
    supervisor._left(old, None)
    supervisor._disconnected(old, False)
    clock.advance(10.0)
    assert len(heartbeats(new)) == 1


def test_stopping_the_app_stops_the_heartbeat(clock: Clock) -> None:
    supervisor, fake = supervise(FakeComponent(), clock)
    session, transport = rawsocket_session()
    fake.join(session)
    supervisor.stopService()
    clock.advance(600.0)
    assert heartbeats(session) == []
    assert transport.aborts == 0


def config_component(*options: dict[str, Any]) -> Component:
    """A Component from a config with one rawsocket transport per table of options."""
    transports = [
        {"url": f"rs://127.0.0.1:{8081 + i}", "options": table} for i, table in enumerate(options)
    ]
    data = {"components": {"main": {"realm": "realm1", "transports": transports}}}
    return parse_config(data, SOURCE).components["main"].build_component()


def connecting_over(component: Component, index: int) -> None:
    """What Autobahn does before each attempt; the connection itself is left out."""
    component._connect_once(None, component._transports[index])


def join(component: Component, session: FakeSession) -> None:
    component.fire("join", session, SessionDetails(realm="realm1", session=session.session_id))


def test_the_settings_of_the_transport_connected_over_are_used(clock: Clock) -> None:
    component = config_component({"heartbeat_interval": 2.0, "heartbeat_timeout": 1.0}, {})
    component._connect_once = lambda reactor, transport: Deferred()  # type: ignore[method-assign]
    supervise(component, clock)

    connecting_over(component, 0)
    first, first_transport = rawsocket_session(1)
    join(component, first)
    clock.advance(2.0)
    assert len(heartbeats(first)) == 1
    clock.advance(1.0)
    assert first_transport.aborts == 1
    component.fire("leave", first, None)

    connecting_over(component, 1)
    second, second_transport = rawsocket_session(2)
    join(component, second)
    clock.advance(9.9)
    assert heartbeats(second) == []
    clock.advance(0.1)
    assert len(heartbeats(second)) == 1
    clock.advance(4.9)
    assert second_transport.aborts == 0
    clock.advance(0.1)
    assert second_transport.aborts == 1


def test_a_hand_built_component_gets_the_default_heartbeat(clock: Clock) -> None:
    component = Component(transports=[{"type": "rawsocket", "url": "rs://127.0.0.1:8081"}])
    component._connect_once = lambda reactor, transport: Deferred()  # type: ignore[method-assign]
    supervise(component, clock)
    connecting_over(component, 0)
    session, transport = rawsocket_session()
    join(component, session)
    clock.advance(10.0)
    assert len(heartbeats(session)) == 1
    clock.advance(5.0)
    assert transport.aborts == 1


def hand_built() -> Component:
    return Component(
        transports=[
            {"type": "rawsocket", "url": "rs://127.0.0.1:8081"},
            {"type": "rawsocket", "url": "rs://127.0.0.1:8082"},
        ]
    )


def test_add_component_sets_the_heartbeat_of_every_transport(clock: Clock) -> None:
    component = hand_built()
    WampWeb(reactor=clock).add_component(
        "main", component, heartbeat_interval=2, heartbeat_timeout=0.5
    )
    assert [settings_of(t) for t in component._transports] == [HeartbeatSettings(2.0, 0.5)] * 2


def test_add_component_takes_either_heartbeat_setting_alone(clock: Clock) -> None:
    component = hand_built()
    WampWeb(reactor=clock).add_component("main", component, heartbeat_interval=0)
    assert settings_of(component._transports[0]) == HeartbeatSettings(
        0.0, DEFAULT_HEARTBEAT.timeout
    )
    assert not settings_of(component._transports[0]).enabled


def test_add_component_without_heartbeat_settings_leaves_the_transports_as_they_are(
    clock: Clock,
) -> None:
    component = config_component({"heartbeat_interval": 3})
    WampWeb(reactor=clock).add_component("main", component)
    assert settings_of(component._transports[0]).interval == 3.0


@pytest.mark.parametrize(
    ("keyword", "value", "says"),
    [
        ("heartbeat_interval", -1, "heartbeat_interval must be at least 0"),
        ("heartbeat_interval", float("nan"), "heartbeat_interval must be a finite number"),
        ("heartbeat_interval", "10", "heartbeat_interval must be a finite number"),
        ("heartbeat_timeout", 0, "heartbeat_timeout must be above 0"),
        ("heartbeat_timeout", True, "heartbeat_timeout must be a finite number"),
        ("heartbeat_timeout", float("inf"), "heartbeat_timeout must be a finite number"),
    ],
)
def test_add_component_refuses_heartbeat_settings_that_cannot_be(
    clock: Clock, keyword: str, value: Any, says: str
) -> None:
    web = WampWeb(reactor=clock)
    with pytest.raises(ValueError, match=says):
        web.add_component("main", hand_built(), **{keyword: value})
    assert web.components == {}, "nothing half-added"


def test_heartbeat_interval_zero_in_the_config_turns_it_off(clock: Clock) -> None:
    component = config_component({"heartbeat_interval": 0})
    component._connect_once = lambda reactor, transport: Deferred()  # type: ignore[method-assign]
    supervise(component, clock)
    connecting_over(component, 0)
    session, _ = rawsocket_session()
    join(component, session)
    clock.advance(600.0)
    assert heartbeats(session) == []


# -- configuration --------------------------------------------------------------------------


def main_with(transport: dict[str, Any]) -> dict[str, Any]:
    return {"components": {"main": {"realm": "realm1", "transports": [transport]}}}


def test_rawsocket_transports_get_the_heartbeat_by_default() -> None:
    config = parse_config(
        {"components": {"main": {"realm": "realm1", "url": "rs://127.0.0.1:8081"}}}, SOURCE
    )
    [transport] = config.components["main"].transports
    assert transport.heartbeat == HeartbeatSettings(interval=10.0, timeout=5.0)
    [built] = config.components["main"].build_component()._transports
    assert settings_of(built) == DEFAULT_HEARTBEAT


def test_heartbeat_settings_are_read_and_kept_out_of_autobahns_options() -> None:
    options = {
        "heartbeat_interval": 2,
        "heartbeat_timeout": 0.5,
        "max_message_payload_size": 65536,
    }
    main = parse_config(
        main_with({"url": "rs://127.0.0.1:8081", "options": options}), SOURCE
    ).components["main"]
    [transport] = main.transports
    assert transport.heartbeat == HeartbeatSettings(interval=2.0, timeout=0.5)
    [given] = main.component_kwargs()["transports"]
    assert given["options"] == {"maxMessagePayloadSize": 65536}
    [built] = main.build_component()._transports
    assert built.options == {"maxMessagePayloadSize": 65536}
    assert settings_of(built) == HeartbeatSettings(interval=2.0, timeout=0.5)


def test_heartbeat_interval_zero_is_accepted_and_means_off() -> None:
    main = parse_config(
        main_with({"url": "rs://127.0.0.1:8081", "options": {"heartbeat_interval": 0}}), SOURCE
    ).components["main"]
    [transport] = main.transports
    assert transport.heartbeat is not None
    assert not transport.heartbeat.enabled


def test_websocket_transports_have_no_heartbeat_settings() -> None:
    main = parse_config(main_with({"url": "ws://127.0.0.1:8080/ws"}), SOURCE).components["main"]
    assert main.transports[0].heartbeat is None


@pytest.mark.parametrize(
    ("transport", "key", "reason"),
    [
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_interval": -1}},
            "heartbeat_interval",
            "must be at least 0, got -1",
            id="negative-interval",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_interval": "10"}},
            "heartbeat_interval",
            "expected seconds, got a string ('10')",
            id="interval-string",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_interval": True}},
            "heartbeat_interval",
            "expected seconds, got a boolean",
            id="interval-bool",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_timeout": 0}},
            "heartbeat_timeout",
            "must be greater than 0",
            id="zero-timeout",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_timeout": float("inf")}},
            "heartbeat_timeout",
            "must be a finite number",
            id="infinite-timeout",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_interval": 0, "heartbeat_timeout": 3}},
            "heartbeat_timeout",
            "has no effect while heartbeat_interval is 0",
            id="timeout-without-heartbeat",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeat_intervall": 3}},
            "heartbeat_intervall",
            "did you mean 'heartbeat_interval'",
            id="typo",
        ),
        pytest.param(
            {"url": "rs://h:1", "options": {"heartbeatInterval": 3}},
            "heartbeatInterval",
            "did you mean 'heartbeat_interval'",
            id="camel-case",
        ),
        pytest.param(
            {"url": "ws://h/ws", "options": {"heartbeat_interval": 3}},
            "heartbeat_interval",
            "is for rawsocket; websocket has auto_ping_* instead",
            id="websocket",
        ),
    ],
)
def test_bad_heartbeat_settings_are_refused_with_file_key_and_reason(
    transport: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(main_with(transport), SOURCE)
    assert (info.value.source, info.value.key) == (SOURCE, f"{T0}.options.{key}")
    assert reason in info.value.reason


# -- against a real router, through a link that goes silent ----------------------------------


def next_loss(backend: ManagedComponent) -> Deferred[str]:
    """Fires with the reason of the next session loss."""
    lost: Deferred[str] = Deferred()
    backend.tracker.when_lost(lambda _, reason: lost.called or lost.callback(reason))
    return lost


async def joined_through_a_proxy(
    router: EmbeddedRouter, options: dict[str, Any]
) -> tuple[CutProxy, WampWeb, ManagedComponent]:
    """A WampWeb app whose component reaches the router's RawSocket through a proxy."""
    from twisted.internet import reactor

    proxy = CutProxy(reactor, router.rawsocket_port)
    await proxy.listen()
    transport = {"url": f"rs://127.0.0.1:{proxy.port}", "options": options}
    main = parse_config(main_with(transport), SOURCE).components["main"]
    web = WampWeb(listen=None, reactor=reactor)
    backend = web.add_component("main", main.build_component())
    web.startService()
    await within(backend.wait_for_session(15.0), 16, "joining")
    return proxy, web, backend


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_a_black_holed_rawsocket_link_is_noticed_within_interval_plus_timeout(
    router: EmbeddedRouter,
) -> None:
    options = {"heartbeat_interval": 0.5, "heartbeat_timeout": 0.5}
    proxy, web, backend = await joined_through_a_proxy(router, options)
    try:
        await within(backend.publish("test.heartbeat.before"), 5, "a publish before the hole")
        lost = next_loss(backend)
        holed_at = time.monotonic()
        proxy.blackhole()
        in_flight = backend.publish("test.heartbeat.into_the_hole", timeout=30.0)
        reason = await within(lost, 3.0, "noticing the black hole")
        noticed_after = time.monotonic() - holed_at
        assert reason == "wamp.close.transport_lost"
        # At most interval + timeout (1 s), plus the moment it takes to hear of the abort.
        assert noticed_after < 2.0, f"noticed after {noticed_after:.2f} s"
        with pytest.raises(SessionLostError):  # a 502 now, not a 504 at its deadline
            await within(in_flight, 1.0, "the publish in flight failing")
        proxy.heal()
        await within(backend.wait_for_session(10.0), 11, "rejoining once the link heals")
    finally:
        await web.stopService()
        await proxy.close()


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_without_the_heartbeat_the_same_black_hole_goes_unnoticed(
    router: EmbeddedRouter,
) -> None:
    proxy, web, backend = await joined_through_a_proxy(router, {"heartbeat_interval": 0})
    try:
        lost = next_loss(backend)
        proxy.blackhole()
        with pytest.raises(AssertionError, match="did not happen"):
            await within(lost, 2.0, "noticing the black hole")
        assert backend.tracker.joined  # what the heartbeat is for
        closed = next_loss(backend)
        proxy.heal()  # closes the swallowed link: that, TCP notices at once
        await within(closed, 5.0, "noticing the closed link")
    finally:
        await web.stopService()
        await proxy.close()
