"""
wampweb keeps its promises under faults: the short scale of each scenario of
``benchmarks/faults.py``, one test each, against a real ``wampweb run``
process and a real Crossbar.io router (docs/faults.rst says what each checks).

A failing scenario's assertion message is its summary line, with the counts
and the reason for the FAIL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from benchmarks import faults

ROOT = Path(__file__).resolve().parent.parent


async def run_short(name: str) -> faults.Result:
    from twisted.internet import reactor

    lab = faults.Lab(reactor)
    try:
        return await faults.run_scenario(lab, name, "short")
    finally:
        await lab.close()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_router_restarts_under_load_lose_no_acknowledged_publish() -> None:
    result = await run_short("router-restarts")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_calls_in_flight_when_the_router_dies_are_answered_within_a_second() -> None:
    result = await run_short("inflight-calls")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_a_cut_link_gets_fast_503s_and_rejoins_when_it_returns() -> None:
    result = await run_short("link-cut")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_a_black_holed_link_is_noticed_by_websocket_auto_ping() -> None:
    result = await run_short("link-blackhole")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_a_black_holed_rawsocket_link_is_noticed_by_the_wamp_heartbeat() -> None:
    result = await run_short("link-blackhole-rawsocket")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_sigterm_under_load_drains_says_goodbye_and_exits_0() -> None:
    result = await run_short("graceful-shutdown")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_oversized_uploads_are_refused_before_they_are_read() -> None:
    result = await run_short("oversized")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_slow_headers_are_cut_off_without_slowing_other_requests() -> None:
    result = await run_short("slow-headers")
    assert result.passed, result.line()


@pytest.mark.integration
@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_router_restarts_leak_no_memory_sessions_or_descriptors() -> None:
    result = await run_short("leaks")
    assert result.passed, result.line()


def test_every_scenario_has_a_test_and_both_scales() -> None:
    tested = {
        "router-restarts",
        "inflight-calls",
        "link-cut",
        "link-blackhole",
        "link-blackhole-rawsocket",
        "graceful-shutdown",
        "oversized",
        "slow-headers",
        "leaks",
    }
    assert set(faults.SCENARIOS) == tested
    for name in faults.SCENARIOS:
        assert set(faults.PARAMS[name]) == {"full", "short"}, name


def test_importing_the_scenarios_installs_no_reactor_and_starts_nothing() -> None:
    probe = (
        "import sys, threading, benchmarks.faults; "
        "assert 'twisted.internet.reactor' not in sys.modules; "
        "assert threading.active_count() == 1; print('clean')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "clean", done.stderr
