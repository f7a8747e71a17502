"""SessionTracker: the current session of a named Component, or none."""

from __future__ import annotations

import pytest
from autobahn.wamp.types import CloseDetails
from twisted.internet.task import Clock

from wampweb import ComponentFailedError, NoSessionError, SessionState, SessionTracker
from wampweb.testing import FakeSession


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(clock: Clock) -> SessionTracker:
    return SessionTracker("backend", clock, retry_after=3.0)


def test_a_new_tracker_has_no_session_and_says_so(tracker: SessionTracker) -> None:
    assert tracker.state is SessionState.CONNECTING
    with pytest.raises(NoSessionError) as raised:
        tracker.session_now()
    assert raised.value.retry_after == 3.0
    assert "not joined yet" in str(raised.value)


def test_join_adopts_the_session_and_leave_clears_it(tracker: SessionTracker) -> None:
    first = FakeSession(session_id=1)
    tracker.on_join(first)
    assert tracker.session_now() is first
    assert tracker.state is SessionState.JOINED

    tracker.on_leave(first, CloseDetails(reason="wamp.close.transport_lost"))
    assert tracker.session is None
    assert tracker.state is SessionState.GONE
    assert tracker.last_leave_reason == "wamp.close.transport_lost"
    with pytest.raises(NoSessionError, match=r"reconnecting after wamp\.close\.transport_lost"):
        tracker.session_now()


def test_every_reconnect_swaps_in_the_new_session(tracker: SessionTracker) -> None:
    sessions = [FakeSession(session_id=n) for n in range(3)]
    for session in sessions:
        tracker.on_join(session)
        assert tracker.session_now() is session
        tracker.on_leave(session)
    assert (tracker.join_count, tracker.leave_count) == (3, 3)


def test_a_late_leave_of_an_old_session_does_not_drop_the_new_one(
    tracker: SessionTracker,
) -> None:
    old, new = FakeSession(session_id=1), FakeSession(session_id=2)
    tracker.on_join(old)
    tracker.on_leave(old)
    tracker.on_join(new)
    tracker.on_disconnect(old)
    assert tracker.session_now() is new
    assert tracker.leave_count == 1


def test_leave_then_disconnect_counts_one_loss(tracker: SessionTracker) -> None:
    session = FakeSession()
    tracker.on_join(session)
    tracker.on_leave(session)
    tracker.on_disconnect(session)
    assert tracker.leave_count == 1


def test_a_detached_session_is_not_handed_out(tracker: SessionTracker) -> None:
    session = FakeSession()
    tracker.on_join(session)
    session.attached = False
    with pytest.raises(NoSessionError):
        tracker.session_now()


def test_waiting_for_a_session_fires_when_one_joins(tracker: SessionTracker, clock: Clock) -> None:
    waited = tracker.wait_for_session(5.0)
    assert not waited.called
    clock.advance(4.9)
    session = FakeSession()
    tracker.on_join(session)
    assert waited.result is session
    assert not clock.getDelayedCalls(), "the wait's timer is cancelled"


def test_waiting_for_a_session_gives_up_at_its_bound(tracker: SessionTracker, clock: Clock) -> None:
    waited = tracker.wait_for_session(2.0)
    clock.advance(2.0)
    failure = waited.result
    waited.addErrback(lambda _: None)
    assert failure.check(NoSessionError)
    assert "none joined within 2 s" in str(failure.value)


def test_a_zero_wait_answers_at_once(tracker: SessionTracker) -> None:
    waited = tracker.wait_for_session(0)
    assert waited.called
    waited.addErrback(lambda f: f.trap(NoSessionError))


def test_cancelling_a_wait_forgets_it(tracker: SessionTracker, clock: Clock) -> None:
    waited = tracker.wait_for_session(5.0)
    waited.cancel()
    waited.addErrback(lambda _: None)
    tracker.on_join(FakeSession())
    assert not clock.getDelayedCalls()


def test_a_failed_component_fails_waiters_and_later_requests(
    tracker: SessionTracker,
) -> None:
    waited = tracker.wait_for_session(5.0)
    error = ComponentFailedError("backend", "the router refused the session: no_such_realm")
    tracker.mark_failed(error)
    assert waited.result.value is error
    waited.addErrback(lambda _: None)
    with pytest.raises(ComponentFailedError):
        tracker.session_now()


def test_listeners_hear_of_every_lost_session(tracker: SessionTracker) -> None:
    heard: list[str] = []
    tracker.when_lost(lambda session, reason: heard.append(reason))
    session = FakeSession()
    tracker.on_join(session)
    tracker.on_leave(session, CloseDetails(reason="wamp.close.system_shutdown"))
    assert heard == ["wamp.close.system_shutdown"]
