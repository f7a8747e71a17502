"""
An unreachable router is logged once per outage, not once per attempt, and
its end is logged with how long it lasted.
"""

from __future__ import annotations

import ast
import inspect
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import autobahn.wamp.component
import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet.error import ConnectionRefusedError, TimeoutError
from twisted.internet.task import Clock
from twisted.logger import LogEvent, LogLevel

from tests.logged import logged
from wampweb import SessionTracker, WampWeb
from wampweb._outage import _RETRY_CHATTER, OutageLog, is_retry_chatter
from wampweb._ports import free_port
from wampweb._supervisor import ComponentSupervisor
from wampweb.testing import FakeComponent

URL = "rs://127.0.0.1:8081"
AUTOBAHN_NAMESPACE = "autobahn.twisted.component.Component"


@pytest.fixture
def said() -> Iterator[list[str]]:
    """What the outage log said while the test ran."""
    with logged(lambda event: event.get("log_namespace") == "wampweb.outage") as seen:
        yield seen


def test_the_first_failure_is_said_with_where_and_why(said: list[str]) -> None:
    OutageLog("backend", Clock()).failed(URL, ConnectionRefusedError())
    assert len(said) == 1
    assert "component 'backend' cannot reach rs://127.0.0.1:8081" in said[0]
    assert "Connection was refused by other side" in said[0]
    assert "503" in said[0]


def test_the_same_failure_again_is_not_news(said: list[str]) -> None:
    clock = Clock()
    outage = OutageLog("backend", clock)
    for _ in range(20):
        outage.failed(URL, ConnectionRefusedError())
        clock.advance(2.9)
    assert len(said) == 1
    assert outage.failures == 20


def test_a_new_reason_is_said_at_once_with_the_count_so_far(said: list[str]) -> None:
    clock = Clock()
    outage = OutageLog("backend", clock)
    outage.failed(URL, ConnectionRefusedError())
    clock.advance(3)
    outage.failed(URL, ConnectionRefusedError())
    clock.advance(3)
    outage.failed(URL, TimeoutError())
    assert len(said) == 2
    assert "still cannot reach rs://127.0.0.1:8081 (3 attempts in 6 s)" in said[1]
    assert "User timeout caused connection failure" in said[1]


def test_a_lasting_outage_is_recalled_every_reminder_interval(said: list[str]) -> None:
    clock = Clock()
    outage = OutageLog("backend", clock, reminder_interval=60.0)
    for _ in range(41):  # 120 s, an attempt every 3 s
        outage.failed(URL, ConnectionRefusedError())
        clock.advance(3.0)
    assert len(said) == 3
    assert "(21 attempts in 60 s)" in said[1]
    assert "(41 attempts in 120 s)" in said[2]


def test_the_end_of_an_outage_says_how_long_it_lasted(said: list[str]) -> None:
    clock = Clock()
    outage = OutageLog("backend", clock)
    outage.failed(URL, ConnectionRefusedError())
    clock.advance(7.25)
    outage.failed(URL, ConnectionRefusedError())
    outage.joined()
    assert said[-1] == (
        "component 'backend' reached the router again after 7.2 s (2 attempts failed)"
    )
    assert outage.failures == 0


def test_after_a_join_the_next_outage_is_said_afresh(said: list[str]) -> None:
    outage = OutageLog("backend", Clock())
    outage.failed(URL, ConnectionRefusedError())
    outage.joined()
    outage.failed(URL, ConnectionRefusedError())
    assert len(said) == 3
    assert "cannot reach" in said[2]
    assert "still" not in said[2]


def test_a_join_without_an_outage_says_nothing(said: list[str]) -> None:
    OutageLog("backend", Clock()).joined()
    assert said == []


# -- wired into the supervisor --------------------------------------------------------


def supervised(clock: Clock) -> tuple[FakeComponent, ComponentSupervisor]:
    component = FakeComponent()
    tracker = SessionTracker("backend", clock)
    supervisor = ComponentSupervisor("backend", component, tracker, clock)
    supervisor.startService()
    return component, supervisor


def test_the_supervisor_reports_failed_attempts_and_the_join_that_ends_them(
    said: list[str],
) -> None:
    clock = Clock()
    component, supervisor = supervised(clock)
    component.connect_failed(ConnectionRefusedError())
    component.connect_failed(ConnectionRefusedError())
    assert supervisor.outage.failures == 2
    component.join()
    assert supervisor.outage.failures == 0
    assert "reached the router again" in said[-1]


def test_the_end_of_a_joined_session_is_not_a_failure_to_reach_the_router(
    said: list[str],
) -> None:
    # Autobahn reports a joined session's loss as its attempt's connectfailure.
    clock = Clock()
    component, _ = supervised(clock)
    component.join()
    component.leave()
    component.connect_failed(ApplicationError("wamp.close.transport_lost"))
    assert said == []
    clock.advance(2.0)
    component.connect_failed(ConnectionRefusedError())  # the next attempt: Autobahn's loop
    assert len(said) == 1
    assert "cannot reach" in said[0]
    assert "transport_lost" not in said[0]
    clock.advance(1.5)
    component.join()
    assert said[-1].endswith("again after 3.5 s (1 attempt failed)")


def test_health_shows_the_failed_attempts_and_why_until_a_join() -> None:
    clock = Clock()
    web = WampWeb(reactor=clock, listen=None)
    component = FakeComponent()
    backend = web.add_component("backend", component)
    web.startService()
    component.connect_failed(ConnectionRefusedError())
    component.connect_failed(ConnectionRefusedError())
    status = backend.status()
    assert status["failed_attempts"] == 2
    assert status["last_connect_error"].startswith("Connection was refused by other side")
    component.join()
    status = backend.status()
    assert (status["failed_attempts"], status["last_connect_error"]) == (0, None)


def test_failures_after_a_stop_are_not_an_outage(said: list[str]) -> None:
    clock = Clock()
    component, supervisor = supervised(clock)
    supervisor.stopService()
    component.connect_failed(ConnectionRefusedError())
    assert said == []


# -- Autobahn's own lines --------------------------------------------------------------


#: Every string literal of Autobahn's Component module (adjacent literals joined, as Python does).
AUTOBAHNS_STRINGS = {
    node.value
    for node in ast.walk(ast.parse(inspect.getsource(autobahn.wamp.component)))
    if isinstance(node, ast.Constant) and isinstance(node.value, str)
}


def autobahn_event(log_format: str, namespace: str = AUTOBAHN_NAMESPACE) -> LogEvent:
    return {"log_format": log_format, "log_namespace": namespace, "log_level": LogLevel.warn}


@pytest.mark.parametrize("log_format", sorted(_RETRY_CHATTER))
def test_autobahns_per_attempt_lines_are_recognised_as_autobahn_writes_them(
    log_format: str,
) -> None:
    # Should Autobahn reword one, this fails rather than the filter silently letting it through.
    assert log_format in AUTOBAHNS_STRINGS
    assert is_retry_chatter(autobahn_event(log_format))


def test_other_lines_are_kept() -> None:
    assert not is_retry_chatter(autobahn_event("TLS failure: {reason}"))
    assert not is_retry_chatter(autobahn_event("session leaving '{details.reason}'"))
    assert not is_retry_chatter(autobahn_event("Connection failed: {error}", namespace="myapp"))


# -- wampweb run, against a router that is not there ----------------------------------


def run_for_a_while(*extra: str) -> str:
    """``wampweb run`` against a closed port for 3 s; its stderr."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wampweb",
            "run",
            "--router",
            f"rs://127.0.0.1:{free_port()}",
            "--listen",
            f"tcp:{free_port()}:interface=127.0.0.1",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = process.communicate(timeout=3.0)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        _, stderr = process.communicate(timeout=20)
        # Nothing to drain and no session to leave: the stop is quick and quiet.
        assert time.monotonic() - signalled < 3.0
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.integration
def test_wampweb_run_says_once_that_the_router_is_unreachable() -> None:
    stderr = run_for_a_while()
    assert stderr.count("cannot reach rs://127.0.0.1:") == 1, stderr
    assert "Connection failed" not in stderr
    assert "trying transport" not in stderr


@pytest.mark.integration
def test_at_debug_level_autobahns_own_lines_are_there_too() -> None:
    stderr = run_for_a_while("--log-level", "debug")
    assert stderr.count("trying transport") >= 2, stderr
    assert stderr.count("cannot reach rs://127.0.0.1:") == 1
