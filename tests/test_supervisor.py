"""ComponentSupervisor: keeping a Component connected for as long as the app runs."""

from __future__ import annotations

import pytest
from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from twisted.internet.task import Clock

from wampweb import ComponentFailedError, SessionState, SessionTracker, WampWeb
from wampweb._supervisor import ComponentSupervisor, enable_auto_ping
from wampweb.testing import FakeComponent


@pytest.fixture
def clock() -> Clock:
    return Clock()


def supervise(fake: FakeComponent, clock: Clock) -> tuple[ComponentSupervisor, SessionTracker]:
    tracker = SessionTracker("backend", clock)
    supervisor = ComponentSupervisor(
        "backend",
        fake,
        tracker,
        clock,
        stable_after=10.0,
        restart_delay=0.5,  # type: ignore[arg-type]
    )
    supervisor.startService()
    return supervisor, tracker


def test_a_normal_close_by_the_router_restarts_the_component(clock: Clock) -> None:
    fake = FakeComponent()
    supervisor, tracker = supervise(fake, clock)
    fake.join()
    fake.leave("wamp.close.normal")
    fake.end()
    assert fake.starts == 1
    clock.advance(0.5)
    assert fake.starts == 2
    assert supervisor.restarts == 1
    fake.join()
    assert tracker.state is SessionState.JOINED


def test_the_backoff_is_reset_once_a_session_has_lasted(clock: Clock) -> None:
    fake = FakeComponent(transports=2)
    supervise(fake, clock)
    fake.join()
    clock.advance(9.9)
    assert [t.resets for t in fake._transports] == [0, 0]
    clock.advance(0.1)
    assert [t.resets for t in fake._transports] == [1, 1]


def test_a_short_lived_session_does_not_reset_the_backoff(clock: Clock) -> None:
    fake = FakeComponent()
    supervise(fake, clock)
    fake.join()
    clock.advance(5.0)
    fake.leave()
    clock.advance(10.0)
    assert fake._transports[0].resets == 0


@pytest.mark.parametrize(
    "uri",
    ["wamp.error.no_such_realm", "wamp.error.not_authorized", "wamp.error.authentication_failed"],
)
def test_a_refusal_by_the_router_is_fatal_and_says_why(clock: Clock, uri: str) -> None:
    fake = FakeComponent()
    _, tracker = supervise(fake, clock)
    assert fake._is_fatal is not None
    assert fake._is_fatal(ApplicationError(uri, "no such realm 'nope'")) is True
    fake.fail(RuntimeError("Component failed: Exhausted all transport connect attempts"))
    assert tracker.state is SessionState.FAILED
    assert tracker.failure is not None
    assert uri in tracker.failure.reason
    with pytest.raises(ComponentFailedError, match="refused the session"):
        tracker.session_now()


def test_other_errors_are_not_fatal(clock: Clock) -> None:
    fake = FakeComponent()
    supervise(fake, clock)
    assert fake._is_fatal is not None
    assert fake._is_fatal(ApplicationError("wamp.close.system_shutdown")) is False
    assert fake._is_fatal(ConnectionRefusedError()) is False


def test_a_users_own_is_fatal_is_still_asked(clock: Clock) -> None:
    fake = FakeComponent()
    fake._is_fatal = lambda error: isinstance(error, KeyError)
    supervise(fake, clock)
    assert fake._is_fatal(KeyError("x")) is True


def test_a_component_failing_for_good_is_reported_by_the_app(clock: Clock) -> None:
    web = WampWeb(listen=None, reactor=clock)
    fake = FakeComponent()
    web.add_component("backend", fake)
    web.startService()
    fake.fail(RuntimeError("Exhausted all transport connect attempts"))
    error = web.failed.result
    assert isinstance(error, ComponentFailedError)
    assert "Exhausted" in error.reason


def test_auto_ping_is_turned_on_unless_set() -> None:
    component = Component(
        transports=[
            {"url": "ws://127.0.0.1:1/ws"},
            {"url": "ws://127.0.0.1:2/ws", "options": {"auto_ping_interval": 3.0}},
            {"type": "rawsocket", "url": "rs://127.0.0.1:3"},
        ]
    )
    enable_auto_ping(component)
    options = [t.options for t in component._transports]
    assert options[0] == {"auto_ping_interval": 10.0, "auto_ping_timeout": 5.0}
    assert options[1] == {"auto_ping_interval": 3.0}
    assert options[2] == {}


def test_stopping_leaves_with_goodbye_and_does_not_restart(clock: Clock) -> None:
    fake = FakeComponent()
    supervisor, tracker = supervise(fake, clock)
    session = fake.join()
    stopped = supervisor.stopService()
    assert session.left_with == "wamp.close.normal"
    clock.advance(0)  # the stop ends a turn after the leave: every listener has seen it
    assert stopped.called
    clock.advance(5.0)
    assert fake.starts == 1
    assert tracker.state is SessionState.STOPPED


def test_a_stopped_component_makes_no_new_connection_attempt(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import txaio
    from twisted.internet.defer import Deferred

    monkeypatch.setattr(txaio.config, "loop", clock)  # Autobahn's retry delays
    component = Component(transports="ws://127.0.0.1:1/ws", realm="realm1")
    attempts: list[Deferred[None]] = []

    def connect_once(reactor: object, transport: object) -> Deferred[None]:
        attempt: Deferred[None] = Deferred()
        attempts.append(attempt)
        return attempt

    component._connect_once = connect_once  # type: ignore[method-assign]
    supervisor = ComponentSupervisor("backend", component, SessionTracker("backend", clock), clock)
    supervisor.startService()
    clock.advance(10.0)
    assert len(attempts) == 1
    stopped = supervisor.stopService()
    clock.advance(0)
    assert stopped.called, "no session to leave: the stop takes one turn"
    # The attempt under way fails after the stop; Autobahn would schedule the next one.
    attempts[0].errback(ConnectionRefusedError())
    clock.advance(120.0)
    assert len(attempts) == 1
