"""wampweb against a real Crossbar.io router: the lifecycle promises, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import treq
from autobahn.twisted.component import Component
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater

from tests.waiting import within
from wampweb import SessionState, WampWeb
from wampweb._bridge import mount_bridge
from wampweb._ports import free_port
from wampweb._router import EmbeddedRouter

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def component(router: EmbeddedRouter) -> Component:
    return Component(
        transports=[{"url": router.url, "initial_retry_delay": 0.2, "max_retry_delay": 1.0}],
        realm="realm1",
    )


@pytest_twisted.ensureDeferred
async def test_a_client_that_hangs_up_cancels_its_call_at_the_callee(
    router: EmbeddedRouter, logged_failures: list[Any]
) -> None:
    web = WampWeb(listen="tcp:0:interface=127.0.0.1", reactor=reactor)
    backend = web.add_component("default", component(router))
    mount_bridge(web)
    reached: Deferred[None] = Deferred()
    interrupted: Deferred[None] = Deferred()

    @backend.register("test.hangup.slow")
    def slow() -> Deferred[None]:
        def cancelled(_: Deferred[None]) -> None:
            interrupted.callback(None)

        reached.callback(None)
        return Deferred(cancelled)

    web.startService()
    try:
        await within(backend.wait_for_session(15.0), 16, "joining")
        while not backend.ready:  # the registration is made right after the join
            await deferLater(reactor, 0.02, lambda: None)
        port = web.port.getHost().port  # type: ignore[union-attr]
        request = treq.post(
            f"http://127.0.0.1:{port}/call",
            data=json.dumps({"procedure": "test.hangup.slow"}).encode(),
            headers={"Content-Type": "application/json"},
            persistent=False,
        )
        request.addErrback(lambda f: f.trap(CancelledError))
        await within(reached, 5, "the call reaching the callee")
        request.cancel()  # the HTTP client hangs up
        await within(interrupted, 5, "the callee being interrupted")
        await deferLater(reactor, 0.1, lambda: None)
        assert backend.operations.in_flight == 0
    finally:
        await web.stopService()
    assert [e for e in logged_failures if "Unhandled" in str(e.get("log_format", ""))] == []


@pytest_twisted.ensureDeferred
async def test_a_session_the_router_closes_normally_is_restarted(router: EmbeddedRouter) -> None:
    web = WampWeb(listen=None, reactor=reactor)
    backend = web.add_component("default", component(router))
    admin = web.add_component("admin", component(router))
    web.startService()
    try:
        session = await within(backend.wait_for_session(15.0), 16, "joining")
        await within(admin.wait_for_session(15.0), 16, "the admin joining")
        # wamp.session.kill with no reason makes the router leave with wamp.close.normal,
        # which ends an Autobahn Component for good unless someone restarts it.
        lost: Deferred[str] = Deferred()
        backend.tracker.when_lost(lambda _, reason: lost.called or lost.callback(reason))
        await admin.call("wamp.session.kill", [session.session_id])
        await within(lost, 5, "the session being killed")
        rejoined = await within(backend.wait_for_session(5.0), 6, "rejoining after the kill")
        assert rejoined is not session
        assert backend.supervisor.restarts == 1
        assert backend.tracker.last_leave_reason == "wamp.close.normal"
        assert backend.state in (SessionState.JOINED, SessionState.READY)
    finally:
        await web.stopService()


def test_the_tac_file_runs_under_twistd(router: EmbeddedRouter, tmp_path: Path) -> None:
    port = free_port()
    twistd = Path(sys.executable).parent / "twistd"
    env = {
        **os.environ,
        "WAMPWEB_ROUTER": router.url,
        "WAMPWEB_LISTEN": f"tcp:{port}:interface=127.0.0.1",
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [
            str(twistd),
            "--nodaemon",
            "--pidfile=",
            "--logfile=-",
            "-y",
            str(REPO / "examples" / "wampweb.tac"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                    state = json.loads(answer.read())["components"]["default"]["state"]
                    break
            except OSError:
                time.sleep(0.1)
        assert state == "ready", (
            process.stdout.read().decode() if process.poll() is not None else ""
        )
        process.send_signal(signal.SIGTERM)
        # twistd re-raises the signal that stopped it once it has shut down, by convention.
        assert process.wait(timeout=20) == -signal.SIGTERM
        log = process.stdout.read().decode()
        assert "session leaving 'wamp.close.normal'" in log, "the session left with a GOODBYE"
        assert "Main loop terminated" in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
