"""Operations: calls and publishes for HTTP requests, which can never hang."""

from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock

from wampweb import (
    BadRequestError,
    DeadlineError,
    NoSessionError,
    Operations,
    SessionLostError,
    SessionTracker,
)
from wampweb.testing import FakeSession


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(clock: Clock) -> SessionTracker:
    return SessionTracker("backend", clock)


@pytest.fixture
def ops(tracker: SessionTracker, clock: Clock) -> Operations:
    return Operations(tracker, clock, default_timeout=10.0)


@pytest.fixture
def session(tracker: SessionTracker) -> FakeSession:
    session = FakeSession()
    tracker.on_join(session)
    return session


def test_a_call_fires_with_the_callees_result(ops: Operations, session: FakeSession) -> None:
    answered = ops.call("com.example.add", [1, 2], {"round": True})
    (call,) = session.of_kind("call")
    assert (call.uri, call.args, call.kwargs) == ("com.example.add", (1, 2), {"round": True})
    call.answer.callback(3)
    assert answered.result == 3
    assert ops.in_flight == 0


def test_a_publish_is_always_acknowledged(ops: Operations, session: FakeSession) -> None:
    answered = ops.publish("com.example.topic", ["hi"], options={"exclude_me": False})
    (publish,) = session.of_kind("publish")
    assert publish.options.acknowledge is True
    assert publish.options.exclude_me is False
    assert answered.result.id == 1


def test_unknown_publish_options_are_refused_before_anything_is_sent(
    ops: Operations, session: FakeSession
) -> None:
    with pytest.raises(BadRequestError, match="acknowledge"):
        ops.publish("com.example.topic", options={"acknowledge": False})
    assert session.records == []


def test_a_kwarg_named_options_is_refused(ops: Operations, session: FakeSession) -> None:
    with pytest.raises(BadRequestError, match="'options'"):
        ops.call("com.example.f", [], {"options": 1})


def test_string_args_are_refused(ops: Operations, session: FakeSession) -> None:
    with pytest.raises(BadRequestError, match="args must be a list"):
        ops.call("com.example.f", "abc")  # type: ignore[arg-type]


def test_when_the_session_leaves_everything_outstanding_fails_at_once(
    ops: Operations, tracker: SessionTracker, session: FakeSession, logged_failures: list
) -> None:
    calls = [ops.call("com.example.slow", [n]) for n in range(3)]
    assert ops.in_flight == 3
    tracker.on_leave(session)
    for answered in calls:
        assert answered.result.check(SessionLostError)
        answered.addErrback(lambda _: None)
    assert ops.in_flight == 0
    # Autobahn's Deferreds may still fire later: nobody is told, nothing is logged.
    for call in session.of_kind("call"):
        call.answer.errback(ApplicationError("wamp.error.canceled"))
    assert logged_failures == []


def test_an_operation_past_its_deadline_is_cancelled_and_answered_504(
    ops: Operations, session: FakeSession, clock: Clock, logged_failures: list
) -> None:
    answered = ops.call("com.example.slow", timeout=2.5)
    clock.advance(2.4)
    assert not answered.called
    clock.advance(0.1)
    assert answered.result.check(DeadlineError)
    assert "within 2.5 s" in str(answered.result.value)
    answered.addErrback(lambda _: None)
    (call,) = session.of_kind("call")
    assert call.cancelled, "a CANCEL was sent to the router"
    assert logged_failures == []


def test_an_answer_in_time_stops_the_deadline_timer(
    ops: Operations, session: FakeSession, clock: Clock
) -> None:
    ops.call("com.example.f")
    session.of_kind("call")[0].answer.callback(None)
    assert clock.getDelayedCalls() == []


def test_a_client_that_goes_away_cancels_the_call(
    ops: Operations, session: FakeSession, clock: Clock, logged_failures: list
) -> None:
    answered = ops.call("com.example.slow")
    answered.cancel()
    assert answered.result.check(CancelledError)
    answered.addErrback(lambda _: None)
    assert session.of_kind("call")[0].cancelled
    assert clock.getDelayedCalls() == []
    assert logged_failures == []


def test_a_cancel_is_not_forwarded_once_the_session_is_detached(
    ops: Operations, session: FakeSession
) -> None:
    answered = ops.call("com.example.slow")
    session.attached = False
    answered.cancel()
    answered.addErrback(lambda _: None)
    assert not session.of_kind("call")[0].cancelled


def test_transport_lost_at_send_time_means_the_request_was_never_sent(
    ops: Operations, session: FakeSession, tracker: SessionTracker
) -> None:
    session.attached = False  # the transport is gone, the leave not yet seen
    tracker._session = session  # as Autobahn leaves it for a moment
    answered = ops.call("com.example.f")
    answered.addErrback(lambda f: f.trap(NoSessionError))


def test_with_no_session_an_operation_fails_at_once(ops: Operations) -> None:
    answered = ops.publish("com.example.topic")
    assert answered.result.check(NoSessionError)
    answered.addErrback(lambda _: None)


def test_an_operation_can_wait_for_the_session_to_come_back(
    ops: Operations, tracker: SessionTracker, clock: Clock
) -> None:
    answered = ops.publish("com.example.topic", session_wait=3.0)
    clock.advance(1.0)
    tracker.on_join(FakeSession())
    assert answered.result.id == 1


def test_operations_on_an_old_session_do_not_fail_with_the_new_one(
    ops: Operations, tracker: SessionTracker, session: FakeSession
) -> None:
    first = ops.call("com.example.slow")
    tracker.on_leave(session)
    first.addErrback(lambda f: f.trap(SessionLostError))
    newer = FakeSession(session_id=2)
    tracker.on_join(newer)
    second = ops.call("com.example.slow")
    assert ops.in_flight == 1
    newer.of_kind("call")[0].answer.callback("ok")
    assert second.result == "ok"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exclude": "x"}, "'exclude' must be a list of session IDs"),
        ({"exclude": [True]}, "'exclude' must be a list of session IDs"),
        ({"eligible_authid": [1]}, "'eligible_authid' must be a list of strings"),
        ({"exclude_me": "yes"}, "'exclude_me' must be a boolean"),
        ({"forward_for": [{"session": 1}]}, "'forward_for' must be a list of"),
        ({"acknowledge": False}, "unknown publish option 'acknowledge'"),
    ],
)
def test_publish_options_of_the_wrong_type_are_a_bad_request(
    ops: Operations, session: FakeSession, options: dict, message: str
) -> None:
    with pytest.raises(BadRequestError, match=message):
        ops.publish("com.example.topic", options=options)
    assert session.records == []


def test_call_options_the_client_may_not_set_are_refused_with_a_reason(
    ops: Operations, session: FakeSession
) -> None:
    with pytest.raises(BadRequestError, match="progressive results are not supported"):
        ops.call("com.example.f", options={"receive_progress": True})
    with pytest.raises(BadRequestError, match="role configuration"):
        ops.call("com.example.f", options={"disclose_me": True})
    assert session.records == []


def test_a_transport_that_is_going_away_means_the_request_was_never_sent(
    ops: Operations, tracker: SessionTracker
) -> None:
    from autobahn.exception import Disconnected

    class Closing(FakeSession):
        """Auto-ping gave up: the WebSocket refuses to send; the leave is still to come."""

        def publish(self, topic: str, *args: object, **kwargs: object) -> None:
            raise Disconnected("Attempt to send on a closed protocol")

    tracker.on_join(Closing())
    answered = ops.publish("com.example.topic")
    assert answered.result.check(NoSessionError)
    answered.addErrback(lambda _: None)


def test_each_message_is_pushed_to_the_router_as_it_is_made(
    ops: Operations, session: FakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Left to the reactor's next turn, a turn's messages would reach the router
    # together and the router would wait for wampweb to finish the turn.
    flushed: list[object] = []
    monkeypatch.setattr("wampweb._operations.flush_now", flushed.append)
    ops.publish("com.example.topic", [1])
    ops.call("com.example.proc", [2])
    assert len(flushed) == 2, "one push per message, each right after it was made"
    assert len(session.records) == 2
