"""A repeated stop signal is acknowledged once the reactor is already stopping."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from types import FrameType

import pytest

from wampweb._ports import free_port
from wampweb._signals import _StopOnce, stop_once_on_signals


class FakeReactor:
    """Records what Twisted's own signal handlers and shutdown triggers would have been asked."""

    def __init__(self) -> None:
        self.stops: list[str] = []
        self.before_shutdown: list[Callable[[], None]] = []

    def sigInt(self, number: int, frame: FrameType | None = None) -> None:
        self.stops.append("SIGINT")

    def sigTerm(self, number: int, frame: FrameType | None = None) -> None:
        self.stops.append("SIGTERM")

    def addSystemEventTrigger(self, phase: str, event: str, trigger: Callable[[], None]) -> None:
        assert (phase, event) == ("before", "shutdown")
        self.before_shutdown.append(trigger)


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_the_first_signal_stops_and_repeats_do_not() -> None:
    reactor = FakeReactor()
    handler = _StopOnce(reactor)
    handler(signal.SIGINT, None)
    handler(signal.SIGINT, None)
    handler(signal.SIGTERM, None)
    assert reactor.stops == ["SIGINT"]


def test_sigterm_first_is_passed_on_as_sigterm() -> None:
    reactor = FakeReactor()
    handler = _StopOnce(reactor)
    handler(signal.SIGTERM, None)
    assert reactor.stops == ["SIGTERM"]


def test_a_stop_from_elsewhere_makes_a_later_signal_a_repeat() -> None:
    reactor = FakeReactor()
    handler = _StopOnce(reactor)
    for trigger in reactor.before_shutdown:
        trigger()
    handler(signal.SIGTERM, None)
    assert reactor.stops == []


@pytest.mark.usefixtures("restored_handlers")
def test_both_signals_are_taken_over() -> None:
    reactor = FakeReactor()
    stop_once_on_signals(reactor)
    interrupt, terminate = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert isinstance(interrupt, _StopOnce)
    assert interrupt is terminate


@pytest.mark.usefixtures("restored_handlers")
def test_a_reactor_without_signal_handling_is_left_alone() -> None:
    before = signal.getsignal(signal.SIGINT)
    stop_once_on_signals(object())
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.usefixtures("restored_handlers")
def test_taking_over_twice_keeps_the_first_handler() -> None:
    reactor = FakeReactor()
    stop_once_on_signals(reactor)
    first = signal.getsignal(signal.SIGINT)
    stop_once_on_signals(reactor)
    assert signal.getsignal(signal.SIGINT) is first
    assert len(reactor.before_shutdown) == 1


_LIBRARY_APP = """
import sys
from autobahn.twisted.component import Component
from twisted.internet.task import react
from wampweb import WampWeb

def main(reactor):
    web = WampWeb(listen="tcp:0:interface=127.0.0.1", reactor=reactor)
    web.add_component("default", Component(transports=sys.argv[1], realm="realm1"))
    reactor.callWhenRunning(lambda: print("running", flush=True))
    return web.run_until_stopped(reactor)

react(main)
"""


@pytest.mark.integration
def test_an_app_run_until_stopped_takes_a_second_signal_calmly() -> None:
    # The README's way to run an app of your own: react(web.run_until_stopped).
    process = subprocess.Popen(
        [sys.executable, "-c", _LIBRARY_APP, f"ws://127.0.0.1:{free_port()}/ws"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "running"
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "ReactorNotRunning" not in stderr
    assert "Traceback" not in stderr
