"""EmbeddedRouter: a real Crossbar.io started, waited for, crashed, restarted and stopped."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from tests.router_fixtures import fresh_router, router  # noqa: F401
from wampweb._errors import RouterStartError
from wampweb._router import EmbeddedRouter

#: Bound on every wait for a WAMP event in these tests.
EVENT_BOUND = 15.0


# -- helpers ---------------------------------------------------------------------------------


def live_processes_in_group(group: int) -> list[str]:
    """Processes of ``group`` that still run; zombies waiting for init to reap them run nothing."""
    listing = subprocess.run(
        ["ps", "-e", "-o", "pid=,pgid=,stat=,args="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    live = []
    for line in listing.splitlines():
        pid, pgid, stat, *args = line.split(maxsplit=3)
        if int(pgid) == group and not stat.startswith("Z"):
            live.append(f"{pid} {stat} {' '.join(args)}")
    return live


def port_is_free(port: int) -> bool:
    """Whether a new listener could bind the port, as Crossbar.io (SO_REUSEADDR) would."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def websocket(url: str) -> dict[str, Any]:
    return {"type": "websocket", "url": url, "serializers": ["cbor"], "max_retries": 0}


def rawsocket(url: str) -> dict[str, Any]:
    return {"type": "rawsocket", "url": url, "serializer": "msgpack", "max_retries": 0}


def bounded(d: Deferred[Any]) -> Deferred[Any]:
    return d.addTimeout(EVENT_BOUND, reactor)


async def join_and_call(transport: dict[str, Any]) -> str:
    """Join realm1, register and call a procedure through the router, leave; say what happened."""
    said: list[str] = []
    procedure = f"wampweb.test.ping.{uuid.uuid4().hex}"
    component = Component(transports=[transport], realm="realm1")

    async def on_join(session: Any, details: Any) -> None:
        await session.register(lambda: "pong", procedure)
        answer = await session.call(procedure)
        said.append(f"{details.realm} {answer}")
        await session.leave()

    component.on("join", on_join)
    # With max_retries=0 and no main, the Component is done once the session left (or it
    # could not connect, which fails this Deferred).
    await bounded(component.start(reactor))
    return said[0] if said else "never joined"


def fake_crossbar(tmp_path: Path, body: str) -> Path:
    """A stand-in ``crossbar`` script that reads the generated config and does ``body``."""
    script = tmp_path / "crossbar"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, subprocess, sys, time\n"
        "cbdir = sys.argv[sys.argv.index('--cbdir') + 1]\n"
        "with open(os.path.join(cbdir, 'config.json')) as f:\n"
        "    config = json.load(f)\n"
        "port = config['workers'][0]['transports'][0]['endpoint']['port']\n" + textwrap.dedent(body)
    )
    script.chmod(0o755)
    return script


# -- without Crossbar.io: configuration, failures, safety ------------------------------------


def test_importing_the_router_module_installs_no_reactor() -> None:
    code = (
        "import sys, wampweb._router, wampweb._ports\n"
        "assert 'twisted.internet.reactor' not in sys.modules, 'reactor installed'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_generated_config_opens_one_realm_on_loopback_with_both_transports() -> None:
    publisher = {"type": "publisher", "realm": "realm1", "role": "anonymous"}
    embedded = EmbeddedRouter(realm="test", extra_paths={"publish": publisher})
    config = embedded.crossbar_config()
    (worker,) = config["workers"]
    (realm,) = worker["realms"]
    assert realm["name"] == "test"
    assert realm["roles"][0]["name"] == "anonymous"
    web, raw = worker["transports"]
    assert web["endpoint"] == {"type": "tcp", "interface": "127.0.0.1", "port": embedded.port}
    assert web["paths"]["ws"]["type"] == "websocket"
    assert web["paths"]["publish"] == publisher
    assert raw["type"] == "rawsocket"
    assert raw["endpoint"]["interface"] == "127.0.0.1"
    assert embedded.url == f"ws://127.0.0.1:{embedded.port}/ws"
    assert embedded.rawsocket_url == f"rs://127.0.0.1:{raw['endpoint']['port']}"
    assert embedded.port != embedded.rawsocket_port


def test_extra_paths_may_not_replace_the_websocket_path() -> None:
    with pytest.raises(ValueError, match="'ws'"):
        EmbeddedRouter(extra_paths={"ws": {"type": "static"}})


def test_a_router_that_never_started_can_be_killed_stopped_and_closed_twice() -> None:
    embedded = EmbeddedRouter()
    embedded.kill()
    embedded.stop()
    embedded.close()
    embedded.close()
    assert not embedded.running
    assert embedded.pid is None
    with pytest.raises(RouterStartError, match="closed"):
        embedded.start()


def test_waiting_for_a_router_that_was_not_started_says_so() -> None:
    with pytest.raises(RouterStartError, match=r"call start\(\) first"):
        EmbeddedRouter().wait_ready_blocking(timeout=1)


def test_a_missing_crossbar_script_is_reported_with_the_install_hint(tmp_path: Path) -> None:
    bogus = tmp_path / "no-such-crossbar"
    embedded = EmbeddedRouter(executable=bogus)
    with pytest.raises(RouterStartError) as raised:
        embedded.start()
    embedded.close()
    assert str(bogus) in str(raised.value)
    assert "pip install 'wampweb[router]'" in str(raised.value)


def test_crossbar_not_installed_anywhere_is_reported_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RouterStartError, match=r"not installed.*pip install 'wampweb\[router\]'"):
        EmbeddedRouter().start()


def test_a_router_that_exits_early_fails_with_the_end_of_its_log(tmp_path: Path) -> None:
    script = fake_crossbar(
        tmp_path,
        """
        print("starting up")
        print("boom: this is not Crossbar.io")
        sys.exit(3)
        """,
    )
    # Entering the context manager starts and waits; on failure it closes before raising.
    with pytest.raises(RouterStartError) as raised, EmbeddedRouter(executable=script):
        pass
    message = str(raised.value)
    assert "exited with status 3" in message
    assert "boom: this is not Crossbar.io" in message
    assert "node.log" in message


def test_a_router_that_is_never_ready_times_out_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    # The stand-in has a child of its own, as Crossbar.io's controller has its worker.
    script = fake_crossbar(
        tmp_path,
        """
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("thinking", flush=True)
        time.sleep(60)
        """,
    )
    embedded = EmbeddedRouter(executable=script)
    try:
        embedded.start()
        group = embedded.pid
        assert group is not None
        with pytest.raises(RouterStartError, match=r"not ready within 0\.5 s"):
            embedded.wait_ready_blocking(timeout=0.5)
        assert live_processes_in_group(group) == []
        assert not embedded.running
    finally:
        embedded.close()


def test_an_address_in_use_on_picked_ports_is_retried_once_on_new_ports(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    script = fake_crossbar(
        tmp_path,
        f"""
        with open({str(attempts)!r}, "a") as f:
            f.write(f"{{port}}\\n")
        print(f"Couldn't listen on 127.0.0.1:{{port}}: [Errno 98] Address already in use.")
        sys.exit(1)
        """,
    )
    with pytest.raises(RouterStartError) as raised, EmbeddedRouter(executable=script):
        pass
    first, second = attempts.read_text().split()
    assert first != second
    assert "already in use" in str(raised.value)


def test_an_address_in_use_on_a_chosen_port_is_not_retried(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    script = fake_crossbar(
        tmp_path,
        f"""
        with open({str(attempts)!r}, "a") as f:
            f.write(f"{{port}}\\n")
        print(f"Couldn't listen on 127.0.0.1:{{port}}: [Errno 98] Address already in use.")
        sys.exit(1)
        """,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        chosen = probe.getsockname()[1]
    embedded = EmbeddedRouter(port=chosen, executable=script)
    try:
        embedded.start()
        with pytest.raises(RouterStartError, match=f"port {chosen} is already in use"):
            embedded.wait_ready_blocking(timeout=EVENT_BOUND)
    finally:
        embedded.close()
    assert attempts.read_text().split() == [str(chosen)]


def test_a_chosen_port_that_someone_listens_on_is_refused_before_spawning(
    tmp_path: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        embedded = EmbeddedRouter(port=taken, executable=tmp_path / "never-run")
        with pytest.raises(RouterStartError, match=f"127.0.0.1:{taken}"):
            embedded.start()
        embedded.close()


@pytest_twisted.ensureDeferred
async def test_waiting_inside_the_reactor_fails_the_deferred_when_the_router_exits(
    tmp_path: Path,
) -> None:
    script = fake_crossbar(tmp_path, 'print("bad config"); sys.exit(2)\n')
    embedded = EmbeddedRouter(executable=script)
    try:
        embedded.start()
        with pytest.raises(RouterStartError, match=r"(?s)exited with status 2.*bad config"):
            await embedded.wait_ready(reactor, timeout=EVENT_BOUND)
    finally:
        embedded.close()


# -- with Crossbar.io ------------------------------------------------------------------------


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_a_session_joins_and_calls_over_websocket(router: EmbeddedRouter) -> None:  # noqa: F811
    assert await join_and_call(websocket(router.url)) == "realm1 pong"


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_a_session_joins_and_calls_over_rawsocket(router: EmbeddedRouter) -> None:  # noqa: F811
    assert await join_and_call(rawsocket(router.rawsocket_url)) == "realm1 pong"


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_a_killed_router_leaves_nothing_behind_and_restarts_on_the_same_url(
    fresh_router: EmbeddedRouter,  # noqa: F811
) -> None:
    url, ports = fresh_router.url, (fresh_router.port, fresh_router.rawsocket_port)
    group = fresh_router.pid
    assert group is not None
    assert live_processes_in_group(group) != []

    # A session attached at the moment of the crash loses its transport, uncleanly.
    joined: Deferred[None] = Deferred()
    lost: Deferred[bool] = Deferred()
    component = Component(transports=[websocket(url)], realm="realm1")
    component.on("join", lambda session, details: joined.callback(None))
    component.on(
        "disconnect",
        lambda session, was_clean: lost.called or lost.callback(was_clean),
    )
    done = component.start(reactor)
    done.addErrback(lambda _: None)  # with max_retries=0 it gives up after the crash
    await bounded(joined)

    fresh_router.kill()
    assert fresh_router.exit_status == -9
    assert live_processes_in_group(group) == []
    assert all(port_is_free(port) for port in ports)
    assert await bounded(lost) is False
    await bounded(done)

    fresh_router.restart()
    await fresh_router.wait_ready(reactor, timeout=30)
    assert fresh_router.url == url
    assert await join_and_call(websocket(url)) == "realm1 pong"


@pytest.mark.integration
def test_a_second_router_runs_beside_the_first_and_stops_cleanly(
    router: EmbeddedRouter,  # noqa: F811
) -> None:
    publisher = {"type": "publisher", "realm": "realm1", "role": "anonymous"}
    with EmbeddedRouter(extra_paths={"publish": publisher}) as second:
        assert {second.port, second.rawsocket_port}.isdisjoint({router.port, router.rawsocket_port})
        # The extra path is served next to the WebSocket one (Crossbar.io's own HTTP bridge).
        request = urllib.request.Request(
            f"{second.http_url}/publish",
            data=json.dumps({"topic": "wampweb.test", "args": [1]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=EVENT_BOUND) as answer:
            assert answer.status == 200
            assert "id" in json.loads(answer.read())

        group, ports = second.pid, (second.port, second.rawsocket_port)
        assert group is not None
        second.stop(timeout=10)
        # It ended on its own rather than by our SIGKILL (Crossbar.io 26.10 exits with 1
        # even after a clean shutdown on SIGTERM).
        assert second.exit_status is not None
        assert second.exit_status >= 0
        assert not second.running
        assert live_processes_in_group(group) == []
        assert all(port_is_free(port) for port in ports)
        assert "Received SIGTERM" in (second.log_path.read_text() if second.log_path else "")
        second.stop()  # again: nothing to do
        cbdir = second.cbdir
    assert cbdir is not None
    assert not cbdir.exists()
    assert router.running
