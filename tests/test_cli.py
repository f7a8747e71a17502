"""The wampweb command, run as a user would run it."""

from __future__ import annotations

import json
import os
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from wampweb._ports import free_port
from wampweb._router import EmbeddedRouter

WAMPWEB = [sys.executable, "-m", "wampweb"]


class Running:
    """A wampweb process whose output is read line by line, each wait bounded."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*WAMPWEB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._partial = {"stdout": b"", "stderr": b""}

    def read_until(self, marker: str, timeout: float = 30.0, stream: str = "stdout") -> list[str]:
        pipe = getattr(self.process, stream)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(pipe, selectors.EVENT_READ)
            while not any(marker in line for line in self.lines[stream]):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {marker!r} within {timeout} s in {self.lines}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"{stream} ended before {marker!r}: {self.lines}")
                *complete, self._partial[stream] = (self._partial[stream] + chunk).split(b"\n")
                self.lines[stream] += [line.decode() for line in complete]
        return self.lines[stream]

    def stderr(self) -> str:
        """Everything on stderr, once the process has ended."""
        self.process.wait(timeout=30)
        rest = self.process.stderr.read() if self.process.stderr else b""
        return "\n".join(self.lines["stderr"]) + (self._partial["stderr"] + rest).decode()

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for process in started:
        process.stop(signal.SIGKILL)


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    config = tmp_path / "wampweb.toml"
    config.write_text('[components.default]\nrealm = "realm1"\nurl = "ws://127.0.0.1:8080/ws"\n')
    result = subprocess.run([*WAMPWEB, "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "OK (1 component(s): default)" in result.stdout


def test_check_config_names_the_file_the_key_and_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "wampweb.toml"
    config.write_text(
        '[components.default]\nrealm = "realm1"\nurl = "ws://127.0.0.1:8080/ws"\n'
        "[server]\ndrain_timeout = -1\n"
    )
    result = subprocess.run([*WAMPWEB, "check-config", str(config)], capture_output=True, text=True)
    assert result.returncode == 1
    assert str(config) in result.stderr
    assert "server.drain_timeout" in result.stderr


def test_run_refuses_a_bad_config_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "wampweb.toml"
    config.write_text('[components.default]\nrealm = "realm1"\nurl = "http://nope"\n')
    result = subprocess.run(
        [*WAMPWEB, "run", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "components.default.url" in result.stderr


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_wampweb_run_alone_serves_the_bridge_with_its_own_router(
    running: list[Running],
) -> None:
    """The README's first command: what it prints works, and a subscriber gets the event."""
    port = free_port()
    app = Running("run", "--listen", f"tcp:{port}:interface=127.0.0.1")
    running.append(app)
    lines = app.read_until("Stop with Ctrl-C.", timeout=60)
    tail_line = next(line for line in lines if "wampweb tail" in line)
    router_url = tail_line.split("--router ")[1].strip()
    curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
    assert len(curls) == 4

    tail_args = shlex.split(tail_line.strip())[1:]
    tail = Running(*tail_args, "--count", "1")
    running.append(tail)
    tail.read_until("listening on", stream="stderr")

    publish, call, webhook, ready = (
        subprocess.run(shlex.split(c), capture_output=True, text=True) for c in curls
    )
    assert json.loads(publish.stdout).keys() == {"id"}
    assert json.loads(call.stdout)["args"][0] >= 1
    assert webhook.stdout == "OK"
    assert json.loads(ready.stdout)["components"]["default"]["state"] == "ready"

    event = json.loads(tail.read_until("Hello from HTTP", timeout=10)[-1])
    assert event == {"args": ["Hello from HTTP"], "kwargs": {}}
    assert tail.process.wait(timeout=10) == 0, "tail --count 1 exits after one event"

    assert app.stop(signal.SIGINT) == 0
    router_port = int(router_url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", router_port), timeout=1).close()


@pytest.mark.integration
def test_run_against_a_router_exits_cleanly_on_sigterm(
    router: EmbeddedRouter, running: list[Running]
) -> None:
    port = free_port()
    app = Running(
        "run",
        "--router",
        router.url,
        "--realm",
        "realm1",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
    )
    running.append(app)
    lines = app.read_until("Stop with Ctrl-C.")
    assert not any("wampweb tail" in line for line in lines), "no local router was started"
    app.read_until("component 'default' joined", stream="stderr")
    assert app.stop(signal.SIGTERM) == 0
    stderr = app.stderr()
    assert "the session of component 'default' closed: wamp.close.normal" in stderr, stderr
    assert "transport_lost" not in stderr


@pytest.mark.integration
def test_a_second_stop_signal_is_acknowledged_not_a_crash(
    router: EmbeddedRouter, running: list[Running]
) -> None:
    # Ctrl-C pressed twice, or a process manager's SIGTERM after a terminal's
    # SIGINT: Twisted's own handlers log the second as a critical traceback.
    app = Running(
        "run", "--router", router.url, "--listen", f"tcp:{free_port()}:interface=127.0.0.1"
    )
    running.append(app)
    app.read_until("Stop with Ctrl-C.")
    app.process.send_signal(signal.SIGINT)
    app.process.send_signal(signal.SIGTERM)
    assert app.process.wait(timeout=20) == 0
    stderr = app.stderr()
    assert "Traceback" not in stderr
    assert "critical" not in stderr
    assert "already stopping" in stderr


@pytest.mark.integration
def test_tail_stopped_with_ctrl_c_leaves_with_a_goodbye(
    router: EmbeddedRouter, running: list[Running]
) -> None:
    tail = Running("tail", "com.example.hello", "--router", router.url, "--log-level", "info")
    running.append(tail)
    tail.read_until("listening on", stream="stderr")
    assert tail.stop(signal.SIGINT) == 0
    stderr = tail.stderr()
    assert "session leaving 'wamp.close.normal'" in stderr, stderr
    assert "transport_lost" not in stderr
    assert "error" not in stderr


@pytest.mark.integration
def test_a_realm_the_router_refuses_ends_the_run_with_an_error(
    router: EmbeddedRouter, running: list[Running]
) -> None:
    port = free_port()
    app = Running(
        "run",
        "--router",
        router.url,
        "--realm",
        "no.such.realm",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
    )
    running.append(app)
    code = app.process.wait(timeout=30)
    assert code == 1
    assert "no.such.realm" in app.stderr() or "no_such_realm" in app.stderr()


@pytest.mark.integration
def test_run_with_a_port_in_use_exits_with_an_error(router: EmbeddedRouter) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                *WAMPWEB,
                "run",
                "--router",
                router.url,
                "--listen",
                f"tcp:{port}:interface=127.0.0.1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "could not listen" in result.stderr


@pytest.mark.integration
def test_workers_share_one_port_each_with_its_own_session(
    router: EmbeddedRouter, running: list[Running]
) -> None:
    port = free_port()
    app = Running(
        "run",
        "--router",
        router.url,
        "--workers",
        "2",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
    )
    running.append(app)
    app.read_until("Stop with Ctrl-C.")
    assert "with 2 worker processes" in app.lines["stdout"][0]
    import psutil

    workers = psutil.Process(app.process.pid).children()
    assert len(workers) == 2
    assert all("--listen-fd" in worker.cmdline() for worker in workers)
    # Each new connection may land on either worker: once both have joined,
    # every answer is ready.
    deadline = time.monotonic() + 30
    in_a_row = 0
    while in_a_row < 10 and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5):
                in_a_row += 1
        except urllib.error.HTTPError as error:
            if error.code != 503:  # 503: that worker is still joining
                raise
            in_a_row = 0
            time.sleep(0.1)
    assert in_a_row == 10
    assert app.stop(signal.SIGTERM) == 0
    assert not any(worker.is_running() and worker.status() != "zombie" for worker in workers)


def test_workers_need_a_plain_tcp_listener() -> None:
    result = subprocess.run(
        [
            *WAMPWEB,
            "run",
            "--router",
            "ws://127.0.0.1:1/ws",
            "--workers",
            "2",
            "--listen",
            "unix:/tmp/x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "plain TCP listener" in result.stderr


def test_a_worker_stopped_while_still_starting_is_not_a_failure() -> None:
    # SIGTERM can reach a worker before its reactor has taken the signal over
    # (it is still importing); it then dies of the signal, as it was asked to.
    from wampweb._workers import bind, supervise

    sock = bind("127.0.0.1", 0)

    def stop_at_once() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # supervise() forwards it to the worker

    code = supervise(1, ["--router", "ws://127.0.0.1:1/ws"], sock, on_ready=stop_at_once)
    assert code == 0
