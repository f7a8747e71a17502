"""
Fault scenarios: does wampweb keep its promises when things break?

Each scenario runs a real ``wampweb run`` process (a generated TOML config,
REST-mode ``/publish`` and ``/call`` mounts) against a real Crossbar.io router
(:class:`wampweb._router.EmbeddedRouter`), drives HTTP at it from this
script's own Twisted reactor (every request with a client-side timeout, so a
hang is counted, not waited for), breaks something on purpose, and prints one
summary line with the counts and PASS or FAIL::

    python benchmarks/faults.py --scenario all --scale short
    python benchmarks/faults.py --scenario router-restarts --scale full

Scenarios (``docs/faults.rst`` says what each checks and what was measured):

- ``router-restarts``: acknowledged publishes at a steady rate while the
  router is SIGKILLed and restarted; every request accounted for.
- ``inflight-calls``: calls held by a slow callee when the router dies.
- ``link-cut``: a proxy between wampweb and the router closes every link
  and refuses new ones, then lets them through again.
- ``link-blackhole``: the proxy stops forwarding but keeps the sockets open
  (noticed only by WebSocket auto-ping).
- ``link-blackhole-rawsocket``: the same over RawSocket, which has no ping
  (noticed only by wampweb's WAMP heartbeat).
- ``graceful-shutdown``: SIGTERM under load.
- ``oversized``: 100 concurrent 100 MB uploads, with and without
  ``Expect: 100-continue``.
- ``slow-headers``: 500 connections sending their headers a byte at a time.
- ``leaks``: many router restarts; RSS, file descriptors and live sessions.

Everything listens and connects on 127.0.0.1 only. Importing this module has
no side effects; :func:`run_scenario` runs one scenario in a running reactor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `wampweb` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredList,
    gatherResults,
)
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.web.client import Agent, HTTPConnectionPool

from benchmarks.faults_net import CutProxy, SlowHeaders, Upload, open_connection
from benchmarks.faults_peers import CountingSubscriber, MetaWatcher, SlowCallee
from wampweb._ports import free_port
from wampweb._router import EmbeddedRouter

ROOT = Path(__file__).resolve().parent.parent
TOPIC = "faults.topic"
SLOW = "faults.slow"
ECHO = "faults.echo"

SCENARIOS = (
    "router-restarts",
    "inflight-calls",
    "link-cut",
    "link-blackhole",
    "link-blackhole-rawsocket",
    "graceful-shutdown",
    "oversized",
    "slow-headers",
    "leaks",
)

#: The issue's numbers (full) and the scaled-down ones (short: all together ≤ 4 minutes).
PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "router-restarts": {
        "full": {"requests": 20_000, "rate": 200.0, "kills": 10, "sniff": 1},
        "short": {"requests": 4_000, "rate": 125.0, "kills": 3, "sniff": 1},
    },
    "inflight-calls": {
        "full": {"calls": 1_000, "rate": 500.0, "backlog": 0},
        "short": {"calls": 200, "rate": 200.0, "backlog": 0},
    },
    "link-cut": {
        "full": {"cuts": 30, "down": 1.0, "up": 1.0, "rate": 100.0},
        "short": {"cuts": 5, "down": 1.0, "up": 1.0, "rate": 100.0},
    },
    "link-blackhole": {
        "full": {"holes": 5, "ping": 1.0, "rate": 50.0, "detect_wait": 30.0, "rawsocket": 0},
        "short": {"holes": 2, "ping": 1.0, "rate": 50.0, "detect_wait": 30.0, "rawsocket": 0},
    },
    "link-blackhole-rawsocket": {
        "full": {"holes": 5, "ping": 1.0, "rate": 50.0, "detect_wait": 30.0, "rawsocket": 1},
        "short": {"holes": 2, "ping": 1.0, "rate": 50.0, "detect_wait": 30.0, "rawsocket": 1},
    },
    "graceful-shutdown": {
        "full": {"rate": 200.0, "call_rate": 20.0, "before": 5.0, "after": 1.0, "delay": 1.0},
        "short": {"rate": 100.0, "call_rate": 10.0, "before": 2.0, "after": 1.0, "delay": 1.0},
    },
    "oversized": {
        "full": {"uploads": 100, "length": 100 * 2**20},
        "short": {"uploads": 100, "length": 100 * 2**20},
    },
    "slow-headers": {
        "full": {"slow": 500, "duration": 10.0, "interval": 0.5, "baseline": 300},
        "short": {"slow": 500, "duration": 4.0, "interval": 0.5, "baseline": 150},
    },
    "leaks": {
        "full": {"restarts": 100, "publishes": 20, "calls": 5},
        "short": {"restarts": 6, "publishes": 20, "calls": 5},
    },
}

#: The answers the issue holds wampweb to.
IN_FLIGHT_ANSWER_BOUND = 1.0  # s after the router's loss
CUT_503_P99_BOUND = 0.050  # s
REJOIN_BOUND = 3.0  # s after the link (or the router) is back
LATENCY_FACTOR = 2.0  # slow headers may at most double a normal request's latency
RSS_GROWTH_BOUND = 0.10  # leaks: RSS may grow by 10 % over the restarts
OVERSIZED_RSS_BOUND = 32 * 2**20  # bytes: "flat" while 10 GB are announced


# -- small tools --------------------------------------------------------------------------


def sleep(reactor: Any, seconds: float) -> Deferred[None]:
    return deferLater(reactor, max(0.0, seconds), lambda: None)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def say(message: str) -> None:
    """Progress goes to stderr; the summary lines alone go to stdout."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@attrs.define
class Outcome:
    """What became of one HTTP request."""

    sent: float
    done: float = 0.0
    status: int | None = None
    #: Why no answer: "hung" (client timeout), or the exception's name(s).
    error: str | None = None
    retry_after: bool = False
    body: bytes = b""

    @property
    def latency(self) -> float:
        return self.done - self.sent

    @property
    def kind(self) -> str:
        if self.error == "hung":
            return "hung"
        if self.status is None:
            return "error"
        if 200 <= self.status < 300:
            return "2xx"
        if self.status in (502, 503, 504):
            return str(self.status)
        return "other"

    @property
    def refused(self) -> bool:
        return self.error is not None and "ConnectionRefused" in self.error


def tally(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """The counts every summary line carries (transport errors count as "other")."""
    kinds = Counter(o.kind for o in outcomes)
    return {
        "2xx": kinds["2xx"],
        "503": kinds["503"],
        "502": kinds["502"],
        "504": kinds["504"],
        "other": kinds["other"] + kinds["error"],
        "hung": kinds["hung"],
        "503_without_retry_after": sum(
            1 for o in outcomes if o.status == 503 and not o.retry_after
        ),
    }


def describe_errors(outcomes: Sequence[Outcome]) -> str:
    kinds = Counter(o.error if o.status is None else f"HTTP {o.status}" for o in outcomes)
    return ", ".join(f"{k}: {n}" for k, n in kinds.most_common(5))


def odd_answers(outcomes: Sequence[Outcome]) -> str:
    return describe_errors([o for o in outcomes if o.kind in ("other", "error")])


def _failure_name(error: BaseException) -> str:
    name = type(error).__name__
    reasons = getattr(error, "reasons", None)
    if reasons:
        inner = ",".join(sorted({type(r.value).__name__ for r in reasons}))
        name += f"[{inner}]"
    return name


class Http:
    """A treq client with a connection pool, every request bounded by ``timeout``."""

    def __init__(self, reactor: Any, port: int, *, timeout: float, pool_size: int = 32) -> None:
        from treq.client import HTTPClient

        self.reactor = reactor
        self.base = f"http://127.0.0.1:{port}"
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = pool_size
        self.pool.retryAutomatically = False
        self.client = HTTPClient(Agent(reactor, pool=self.pool, connectTimeout=5))

    def request(
        self, method: str, path: str, body: object = None, *, timeout: float | None = None
    ) -> Deferred[Outcome]:
        """Never fails: a timeout or a transport error is an Outcome too."""
        outcome = Outcome(sent=time.monotonic())
        running = Deferred.fromCoroutine(self._request(method, path, body, outcome))
        timer = self.reactor.callLater(timeout or self.timeout, running.cancel)

        def settle(result: object) -> Outcome:
            if timer.active():
                timer.cancel()
            if outcome.done == 0.0:
                outcome.done = time.monotonic()
            if outcome.status is None and outcome.error is None:
                outcome.error = "hung"
            return outcome

        running.addErrback(lambda f: f.trap(CancelledError))
        return running.addBoth(settle)

    async def _request(self, method: str, path: str, body: object, outcome: Outcome) -> None:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": ["application/json"]} if data is not None else {}
        try:
            response = await self.client.request(
                method, self.base + path, data=data, headers=headers
            )
            content = await response.content()
        except CancelledError:
            raise
        except Exception as error:
            outcome.done = time.monotonic()
            outcome.error = _failure_name(error)
            return
        outcome.done = time.monotonic()
        outcome.status = response.code
        outcome.retry_after = bool(response.headers.getRawHeaders("retry-after"))
        outcome.body = content

    def post(self, path: str, body: object, *, timeout: float | None = None) -> Deferred[Outcome]:
        return self.request("POST", path, body, timeout=timeout)

    async def get_json(self, path: str, timeout: float = 5.0) -> tuple[int | None, Any]:
        outcome = await self.request("GET", path, timeout=timeout)
        try:
            return outcome.status, json.loads(outcome.body) if outcome.body else None
        except ValueError:
            return outcome.status, None

    async def close(self) -> None:
        await self.pool.closeCachedConnections()


async def steady(
    reactor: Any,
    rate: float,
    fire: Callable[[int], Deferred[Any]],
    *,
    count: int | None = None,
    until: Callable[[], bool] | None = None,
) -> int:
    """
    Fire requests at ``rate`` per second (open loop: a slow answer does not slow
    the sender) until ``count`` are out or ``until()``; wait for every answer.
    """
    started = time.monotonic()
    issued = 0
    out: list[Deferred[Any]] = []
    while (count is None or issued < count) and not (until is not None and until()):
        due = int((time.monotonic() - started) * rate) + 1
        if count is not None:
            due = min(due, count)
        while issued < due:
            out.append(fire(issued))
            issued += 1
        await sleep(reactor, 0.005)
    await DeferredList(out, consumeErrors=True)
    return issued


# -- the processes ---------------------------------------------------------------------


def wampweb_config(
    port: int,
    url: str,
    *,
    server: dict[str, float] | None = None,
    transport: dict[str, Any] | None = None,
    listen_backlog: float = 0,
) -> str:
    """A TOML config: REST-mode /publish and /call for one component on ``url``."""
    backlog = f":backlog={int(listen_backlog)}" if listen_backlog else ""
    lines = ["[server]", f'listen = "tcp:{port}:interface=127.0.0.1{backlog}"']
    lines += [f"{key} = {value!r}" for key, value in (server or {}).items()]
    lines += ["", "[components.default]", 'realm = "realm1"']
    if transport:
        lines += ["", "[[components.default.transports]]", f'url = "{url}"']
        for key, value in transport.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {v!r}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {value!r}")
    else:
        lines.append(f'url = "{url}"')
    for path, kind in (("/publish", "publisher"), ("/call", "caller")):
        lines += ["", "[[bridge]]", f'path = "{path}"', f'type = "{kind}"', 'mode = "rest"']
    return "\n".join(lines) + "\n"


class WampWebProcess:
    """One ``wampweb run --config FILE`` child process, its log in the lab's folder."""

    def __init__(self, workdir: Path, name: str, config: str, app: str | None = None) -> None:
        self.name = name
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config)
        self.log_path = workdir / f"{name}.log"
        self.app = app
        match = re.search(r"tcp:(\d+):", config)
        assert match is not None
        self.port = int(match.group(1))
        self.process: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def start(self) -> None:
        argv = [sys.executable, "-m", "wampweb", "run", "--config", str(self.config_path)]
        argv += ["--log-level", "info"]
        if self.app:
            argv += ["--app", self.app]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        self.pid = self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    async def wait_ready(self, reactor: Any, http: Http, timeout: float = 30.0) -> float:
        """Poll ``GET /ready`` until 200; the seconds it took. Raises if it never is."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if not self.alive:
                raise RuntimeError(f"wampweb exited ({self.returncode}); see {self.log_path}")
            outcome = await http.request("GET", "/ready", timeout=2.0)
            if outcome.status == 200:
                return time.monotonic() - started
            await sleep(reactor, 0.02)
        raise RuntimeError(f"wampweb was not ready within {timeout:g} s; see {self.log_path}")

    async def health(self, http: Http) -> dict[str, Any]:
        _, body = await http.get_json("/health")
        if not isinstance(body, dict):
            return {}
        component: dict[str, Any] = body.get("components", {}).get("default", {})
        return component

    def rss(self) -> int:
        """Resident memory in bytes, from /proc (what psutil reads, without needing it)."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def wait_exit(self, reactor: Any, timeout: float) -> int | None:
        started = time.monotonic()
        while self.alive and time.monotonic() - started < timeout:
            await sleep(reactor, 0.01)
        return self.returncode

    async def stop(self, reactor: Any) -> None:
        if self.process is None or not self.alive:
            return
        self.process.send_signal(signal.SIGTERM)
        if await self.wait_exit(reactor, 15.0) is None:
            self.process.kill()
            self.process.wait()


@attrs.define
class Result:
    """One scenario's figures, its verdict, and what it noticed on the way."""

    name: str
    fields: dict[str, object] = attrs.field(factory=dict)
    failures: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self, ok: bool, why: str) -> None:
        if not ok:
            self.failures.append(why)

    def line(self) -> str:
        figures = " ".join(f"{key}={value}" for key, value in self.fields.items())
        verdict = "PASS" if self.passed else "FAIL (" + "; ".join(self.failures) + ")"
        return f"{self.name}: {figures} {verdict}"


class Lab:
    """
    What the scenarios share: one router (started once, restarted when a
    scenario leaves it dead), a folder for configs and logs, and cleanup.
    """

    def __init__(self, reactor: Any, workdir: Path | None = None) -> None:
        self.reactor = reactor
        self.own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="wampweb-faults-"))
        self.router = EmbeddedRouter()
        self._processes: list[WampWebProcess] = []
        self._cleanups: list[Callable[[], Awaitable[object]]] = []

    async def router_up(self) -> EmbeddedRouter:
        if not self.router.running:
            self.router.start()
            await self.router.wait_ready(self.reactor, timeout=60.0)
        return self.router

    def wampweb(self, name: str, config: str, app: str | None = None) -> WampWebProcess:
        process = WampWebProcess(self.workdir, name, config, app)
        self._processes.append(process)
        process.start()
        return process

    def on_cleanup(self, action: Callable[[], Awaitable[object]]) -> None:
        self._cleanups.append(action)

    async def end_scenario(self) -> None:
        """Stop what the scenario started (peers, proxies, clients, wampweb)."""
        cleanups, self._cleanups = self._cleanups, []
        for action in reversed(cleanups):
            try:
                await action()
            except Exception as error:  # cleanup must go on
                say(f"cleanup failed: {error!r}")
        processes, self._processes = self._processes, []
        for process in processes:
            await process.stop(self.reactor)

    async def close(self) -> None:
        await self.end_scenario()
        self.router.close()
        if self.own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


async def _started(lab: Lab, peer: Any, timeout: float = 30.0) -> Any:
    peer.start()
    lab.on_cleanup(peer.stop)
    await peer.until_ready(timeout)
    return peer


def _http(lab: Lab, port: int, *, timeout: float, pool_size: int = 32) -> Http:
    http = Http(lab.reactor, port, timeout=timeout, pool_size=pool_size)
    lab.on_cleanup(http.close)
    return http


@attrs.define(eq=False)
class _PublishStream:
    """
    Publishes at a steady rate through ``http`` until :meth:`finish`, every
    answer kept in ``outcomes``; ``probe``, a client of its own, polls
    ``/ready`` meanwhile so that probing never queues behind the publishes.
    """

    http: Http
    probe: Http
    outcomes: list[Outcome]
    _streaming: Deferred[Any] | None = None
    _done: bool = False

    @classmethod
    async def start(
        cls, lab: Lab, web: WampWebProcess, rate: float, deadline: float
    ) -> _PublishStream:
        stream = cls(
            _http(lab, web.port, timeout=deadline + 1.0),
            _http(lab, web.port, timeout=2.0, pool_size=2),
            [],
        )
        await web.wait_ready(lab.reactor, stream.http)

        def fire(i: int) -> Deferred[Any]:
            sent = stream.http.post("/publish", {"topic": TOPIC, "args": [i]})
            return sent.addCallback(stream.outcomes.append)

        stream._streaming = Deferred.fromCoroutine(
            steady(lab.reactor, rate, fire, until=lambda: stream._done)
        )
        return stream

    async def finish(self) -> None:
        self._done = True
        assert self._streaming is not None
        await self._streaming


# -- the scenarios -------------------------------------------------------------------------


async def router_restarts(lab: Lab, p: dict[str, Any]) -> Result:
    """
    Acknowledged publishes at a steady rate while the router is SIGKILLed and
    restarted; every request is accounted for, and every acknowledged publish
    reached a subscriber that was subscribed all along.
    """
    reactor = lab.reactor
    result = Result("router-restarts")
    router = await lab.router_up()
    deadline = 5.0
    # With --set sniff=1 the subscriber's link goes through a proxy that notes
    # every EVENT the router sent: a loss then shows on which side it happened.
    watch: CutProxy | None = None
    subscriber_port = router.rawsocket_port
    if p.get("sniff"):
        watch = CutProxy(reactor, router.rawsocket_port, sniff=True)
        subscriber_port = await watch.listen()
        lab.on_cleanup(watch.close)
    subscriber = await _started(lab, CountingSubscriber(reactor, subscriber_port, TOPIC))
    web = lab.wampweb(
        "router-restarts",
        wampweb_config(free_port(), router.rawsocket_url, server={"call_timeout": deadline}),
    )
    http = _http(lab, web.port, timeout=deadline + 1.0)
    await web.wait_ready(reactor, http)
    pid = web.pid

    records: list[tuple[int, int | None, Outcome, int | None]] = []

    def fire(seq: int) -> Deferred[Any]:
        epoch = subscriber.current_epoch()
        sent = http.post("/publish", {"topic": TOPIC, "args": [seq]})

        def note(outcome: Outcome) -> None:
            records.append((seq, epoch, outcome, subscriber.current_epoch()))

        return sent.addCallback(note)

    duration = p["requests"] / p["rate"]
    streaming = Deferred.fromCoroutine(steady(reactor, p["rate"], fire, count=p["requests"]))
    kills: list[dict[str, float]] = []
    reaping: list[float] = []

    async def killer() -> None:
        started = time.monotonic()
        spacing = (0.8 * duration - 2.0) / p["kills"]
        last_back = started
        for i in range(p["kills"]):
            planned = max(started + 2.0 + i * spacing, last_back + 1.0)
            await sleep(reactor, planned - time.monotonic())
            if streaming.called:
                break
            killed_at, reaped = await kill_router(reactor, router)
            reaping.append(reaped)
            router.start()
            await router.wait_ready(reactor, timeout=60.0)
            router_back = time.monotonic()
            await web.wait_ready(reactor, http, timeout=30.0)
            last_back = time.monotonic()
            await subscriber.until_ready(30.0)
            kills.append(
                {
                    "at": killed_at,
                    "outage": last_back - killed_at,
                    "rejoin": last_back - router_back,
                }
            )
            say(
                f"router-restarts: kill {i + 1}/{p['kills']}: router back after "
                f"{router_back - killed_at:.1f} s, "
                f"wampweb ready {last_back - router_back:.2f} s later"
            )

    await gatherResults([streaming, Deferred.fromCoroutine(killer())])

    # Acknowledged while the subscriber held one and the same subscription: it must have it.
    expected = {
        seq
        for seq, epoch, outcome, epoch_after in records
        if outcome.kind == "2xx" and epoch is not None and epoch == epoch_after
    }
    waited = time.monotonic()
    while not expected <= subscriber.seen and time.monotonic() - waited < 5.0:
        await sleep(reactor, 0.1)
    lost = sorted(expected - subscriber.seen)
    health = await web.health(http)
    outcomes = [r[2] for r in records]
    counts = tally(outcomes)
    restarts = (0 if web.alive and web.pid == pid else 1) + int(health.get("restarts") or 0)
    result.fields.update({"requests": len(outcomes), **counts})
    # Crossbar sends PUBLISHED before it dispatches the EVENTs: a SIGKILL in
    # between loses an acknowledged event in the router itself. The proxy on
    # the subscriber's link tells those apart from losses after the router.
    unsent = [seq for seq in lost if watch is not None and seq not in watch.events]
    result.fields["acked_lost"] = len(lost)
    if watch is not None:
        result.fields["acked_lost_in_router"] = len(unsent)
    result.fields["wampweb_restarts"] = restarts
    result.fields["kills"] = len(kills)
    result.fields["rejoin_max_s"] = f"{max((k['rejoin'] for k in kills), default=0):.2f}"
    result.fields["max_latency_ms"] = ms(max((o.latency for o in outcomes), default=0))
    result.notes.append(
        "seconds to reap each killed router (in a thread): "
        + ", ".join(f"{r:.2f}" for r in reaping)
    )
    slow = [o for o in outcomes if o.latency > 1.0]
    if slow:
        result.notes.append(
            f"{len(slow)} answer(s) took over 1 s: "
            + ", ".join(
                f"{o.kind} in {o.latency:.2f} s, sent "
                f"{min((o.sent - k['at'] for k in kills), key=abs, default=0):+.2f} s from a kill"
                for o in slow[:5]
            )
        )
    result.notes.append(
        f"acknowledged with the subscriber in place: {len(expected)}; events seen: "
        f"{subscriber.events}; 2xx while it was away: {counts['2xx'] - len(expected)}"
    )
    if lost:
        by_seq = {seq: outcome for seq, _, outcome, _ in records}
        result.notes.append(
            "lost: "
            + ", ".join(
                f"#{seq} sent {_from_kill(by_seq[seq].sent, kills)}, "
                f"acknowledged {_from_kill(by_seq[seq].done, kills)}"
                + (
                    ""
                    if watch is None
                    else f", {'sent' if seq in watch.events else 'never sent'} by the router"
                )
                for seq in lost[:10]
            )
        )
    result.check(len(outcomes) == p["requests"], "not every request was accounted for")
    result.check(counts["hung"] == 0, f"{counts['hung']} request(s) hung past their deadline")
    result.check(counts["503_without_retry_after"] == 0, "a 503 came without Retry-After")
    result.check(counts["other"] == 0, f"unexpected answers: {odd_answers(outcomes)}")
    result.check(
        len(lost) == len(unsent) if watch is not None else not lost,
        f"{len(lost) - len(unsent)} acknowledged publish(es) sent by the router never "
        "reached the subscriber"
        if watch is not None
        else f"{len(lost)} acknowledged publish(es) never reached the subscriber",
    )
    if unsent:
        result.notes.append(
            f"{len(unsent)} acknowledged publish(es) lost inside the router: it acknowledged "
            "them and was SIGKILLed before it sent their events (Crossbar acknowledges first)"
        )
    result.check(restarts == 0, "wampweb restarted")
    result.check(len(kills) == p["kills"], f"only {len(kills)} of {p['kills']} kills happened")
    return result


def _from_kill(moment: float, kills: Sequence[dict[str, float]]) -> str:
    """``moment`` relative to the nearest router kill, e.g. "-3.1 ms from kill 2"."""
    if not kills:
        return "(no kill)"
    index, kill = min(enumerate(kills), key=lambda k: abs(moment - k[1]["at"]))
    return f"{ms(moment - kill['at'])} ms from kill {index + 1}"


async def kill_router(reactor: Any, router: EmbeddedRouter) -> tuple[float, float]:
    """
    SIGKILL the router's whole process group now, and reap it in a thread:
    reaping waits for every process of the group to be gone, which can take a
    while, and this reactor must go on timing answers meanwhile. Returns when
    the kill was sent and how long reaping took.
    """
    killed_at = time.monotonic()
    if router.pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(router.pid, signal.SIGKILL)
    await deferToThreadPool(reactor, reactor.getThreadPool(), router.kill)
    return killed_at, time.monotonic() - killed_at


async def inflight_calls(lab: Lab, p: dict[str, Any]) -> Result:
    """Calls held by a slow callee when the router is SIGKILLed: each answered within 1 s."""
    reactor = lab.reactor
    result = Result("inflight-calls")
    router = await lab.router_up()
    callee = await _started(lab, SlowCallee(reactor, router.rawsocket_port, SLOW, None))
    lab.on_cleanup(_async(callee.forget_held))
    web = lab.wampweb(
        "inflight-calls",
        wampweb_config(
            free_port(),
            router.rawsocket_url,
            server={"call_timeout": 30.0},
            listen_backlog=p.get("backlog", 0),
        ),
    )
    client_bound = 10.0
    http = _http(lab, web.port, timeout=client_bound, pool_size=64)
    await web.wait_ready(reactor, http)

    outcomes: list[Outcome] = []

    def fire(i: int) -> Deferred[Any]:
        return http.post("/call", {"procedure": SLOW, "args": [i]}).addCallback(outcomes.append)

    streaming = Deferred.fromCoroutine(steady(reactor, p["rate"], fire, count=p["calls"]))
    reached = callee.when_invoked(p["calls"] // 2)
    timer = reactor.callLater(30.0, reached.cancel)
    try:
        await reached
    except CancelledError:
        result.failures.append(f"the callee saw only {callee.invocations} calls; no kill")
    if timer.active():
        timer.cancel()
    at_callee = callee.invocations
    killed_at, reaped = await kill_router(reactor, router)
    await streaming
    late = [o for o in outcomes if o.done - max(killed_at, o.sent) > IN_FLIGHT_ANSWER_BOUND]
    worst = max((o.done - max(killed_at, o.sent) for o in outcomes), default=0.0)
    health = await web.health(http)
    pending = health.get("in_flight")
    counts = tally(outcomes)
    result.fields.update({"calls": len(outcomes), "at_callee_when_killed": at_callee})
    result.fields.update(counts)
    result.fields["answered_late"] = len(late)
    result.fields["max_after_loss_ms"] = ms(worst)
    result.fields["pending_after"] = pending
    result.notes.append(f"the killed router took {reaped:.2f} s to reap (in a thread)")
    for status in (502, 503):
        after = [o.done - max(killed_at, o.sent) for o in outcomes if o.status == status]
        result.notes.append(
            f"{status}s answered after the loss (or their sending): p50 "
            f"{ms(percentile(after, 0.5))} ms, p99 {ms(percentile(after, 0.99))} ms, "
            f"max {ms(max(after, default=0))} ms"
        )
    result.check(len(outcomes) == p["calls"], "not every call was accounted for")
    result.check(counts["2xx"] == 0, "a call to a callee that never answers succeeded")
    result.check(counts["hung"] == 0, f"{counts['hung']} call(s) hung")
    result.check(counts["other"] == 0, f"unexpected answers: {odd_answers(outcomes)}")
    result.check(not late, f"{len(late)} call(s) answered more than 1 s after the loss")
    result.check(pending == 0, f"{pending} operation(s) still pending inside wampweb")
    result.check(counts["503_without_retry_after"] == 0, "a 503 came without Retry-After")
    return result


def _async(action: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def run() -> object:
        return action()

    return run


async def _wait_state(
    reactor: Any, http: Http, ready: bool, timeout: float, interval: float = 0.02
) -> float | None:
    """Seconds until ``GET /ready`` says 200 (``ready``) or not; None after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        outcome = await http.request("GET", "/ready", timeout=2.0)
        if (outcome.status == 200) == ready and outcome.status is not None:
            return time.monotonic() - started
        await sleep(reactor, interval)
    return None


async def link_cut(lab: Lab, p: dict[str, Any]) -> Result:
    """A proxy cuts every link (both sockets closed, new ones refused), then restores it."""
    reactor = lab.reactor
    result = Result("link-cut")
    router = await lab.router_up()
    proxy = CutProxy(reactor, router.rawsocket_port)
    await proxy.listen()
    lab.on_cleanup(proxy.close)
    deadline = 5.0
    web = lab.wampweb(
        "link-cut",
        wampweb_config(
            free_port(), f"rs://127.0.0.1:{proxy.port}", server={"call_timeout": deadline}
        ),
    )
    stream = await _PublishStream.start(lab, web, p["rate"], deadline)
    http, probe, outcomes = stream.http, stream.probe, stream.outcomes
    windows: list[tuple[float, float]] = []
    rejoins: list[float | None] = []
    for i in range(p["cuts"]):
        await sleep(reactor, p["up"])
        cut_at = time.monotonic()
        await proxy.cut()
        await sleep(reactor, p["down"])
        restored_at = time.monotonic()
        await proxy.restore()
        windows.append((cut_at, restored_at))
        rejoin = await _wait_state(reactor, probe, True, timeout=15.0)
        rejoins.append(rejoin)
        if (i + 1) % 5 == 0 or i + 1 == p["cuts"]:
            say(f"link-cut: {i + 1}/{p['cuts']} cuts, last rejoin {rejoin}")
    await sleep(reactor, 0.5)
    await stream.finish()
    health = await web.health(http)

    during = [o for o in outcomes if any(a <= o.sent < b for a, b in windows)]
    during_503 = [o for o in during if o.status == 503]
    p99 = percentile([o.latency for o in during], 0.99)
    counts = tally(outcomes)
    made = [r for r in rejoins if r is not None]
    result.fields.update({"requests": len(outcomes), **counts})
    result.fields.update(
        {
            "cuts": len(windows),
            "rejoins": len(made),
            "during_cut": len(during),
            "during_cut_503": len(during_503),
            "during_cut_p99_ms": ms(p99),
            "rejoin_max_s": f"{max(made, default=0):.2f}",
            "rejoin_p50_s": f"{statistics.median(made) if made else 0:.2f}",
            "joins": health.get("joins"),
        }
    )
    result.check(counts["hung"] == 0, f"{counts['hung']} request(s) hung")
    result.check(counts["other"] == 0, f"unexpected answers: {odd_answers(outcomes)}")
    result.check(counts["503_without_retry_after"] == 0, "a 503 came without Retry-After")
    result.check(
        all(o.status in (502, 503) for o in during),
        "requests during a cut answered otherwise: "
        + describe_errors([o for o in during if o.status not in (502, 503)]),
    )
    result.check(p99 <= CUT_503_P99_BOUND, f"p99 during the cut {ms(p99)} ms > 50 ms")
    result.check(len(made) == p["cuts"], f"only {len(made)} of {p['cuts']} rejoins")
    result.check(
        max(made, default=0) <= REJOIN_BOUND,
        f"{sum(1 for r in made if r > REJOIN_BOUND)} rejoin(s) took over {REJOIN_BOUND:g} s "
        f"(max {max(made, default=0):.2f} s)",
    )
    result.check(health.get("joins") == p["cuts"] + 1, f"joins={health.get('joins')}")
    return result


async def link_blackhole(lab: Lab, p: dict[str, Any]) -> Result:
    """
    The proxy stops forwarding (sockets stay open). Only a ping can notice:
    WebSocket auto-ping, or over RawSocket (``rawsocket``), which has none,
    wampweb's WAMP heartbeat. The config sets a short interval and timeout
    (``ping``; 0 turns the RawSocket heartbeat off). How long does it take?
    """
    reactor = lab.reactor
    rawsocket = bool(p.get("rawsocket"))
    name = "link-blackhole-rawsocket" if rawsocket else "link-blackhole"
    result = Result(name)
    router = await lab.router_up()
    proxy = CutProxy(reactor, router.rawsocket_port if rawsocket else router.port)
    await proxy.listen()
    lab.on_cleanup(proxy.close)
    deadline = 5.0
    ping = p["ping"]
    if rawsocket:
        heartbeat = (
            {"heartbeat_interval": ping, "heartbeat_timeout": ping}
            if ping
            else {"heartbeat_interval": 0}
        )
        config = wampweb_config(
            free_port(),
            f"rs://127.0.0.1:{proxy.port}",
            server={"call_timeout": deadline},
            transport={"options": heartbeat},
        )
    else:
        config = wampweb_config(
            free_port(),
            f"ws://127.0.0.1:{proxy.port}/ws",
            server={"call_timeout": deadline},
            transport={
                "serializers": ["msgpack"],
                "options": {"auto_ping_interval": ping, "auto_ping_timeout": ping},
            },
        )
    web = lab.wampweb(name, config)
    stream = await _PublishStream.start(lab, web, p["rate"], deadline)
    probe, outcomes = stream.probe, stream.outcomes
    detections: list[float | None] = []
    rejoins: list[float | None] = []
    windows: list[tuple[float, float]] = []
    for _ in range(p["holes"]):
        await sleep(reactor, 1.0)
        holed_at = time.monotonic()
        proxy.blackhole()
        detected = await _wait_state(reactor, probe, False, timeout=p["detect_wait"])
        detections.append(detected)
        windows.append((holed_at, holed_at + (detected or p["detect_wait"])))
        await sleep(reactor, 0.5)
        proxy.heal()
        rejoins.append(await _wait_state(reactor, probe, True, timeout=15.0))
        say(f"{name}: detected after {detected} s, rejoined {rejoins[-1]} s after healing")
    await sleep(reactor, 0.5)
    await stream.finish()

    counts = tally(outcomes)
    unnoticed = [o for o in outcomes if any(a <= o.sent < b for a, b in windows)]
    found = [d for d in detections if d is not None]
    back = [r for r in rejoins if r is not None]
    bound = 2 * ping + 1.0
    result.fields.update({"requests": len(outcomes), **counts})
    result.fields.update(
        {
            "holes": len(windows),
            "ping_s": f"{ping:g}+{ping:g}" if ping else "none",
            "detect_max_s": f"{max(found, default=0):.2f}",
            "detect_p50_s": f"{statistics.median(found) if found else 0:.2f}",
            "sent_while_unnoticed": len(unnoticed),
            "of_those_502": sum(1 for o in unnoticed if o.status == 502),
            "of_those_504": sum(1 for o in unnoticed if o.status == 504),
            "rejoin_max_s": f"{max(back, default=0):.2f}",
        }
    )
    result.check(counts["hung"] == 0, f"{counts['hung']} request(s) hung")
    result.check(counts["other"] == 0, f"unexpected answers: {odd_answers(outcomes)}")
    result.check(counts["503_without_retry_after"] == 0, "a 503 came without Retry-After")
    result.check(len(found) == p["holes"], "a black hole was never noticed")
    result.check(max(found, default=0) <= bound, f"detection took over {bound:g} s")
    result.check(len(back) == p["holes"], "no rejoin after a black hole")
    result.check(max(back, default=0) <= REJOIN_BOUND, f"a rejoin took over {REJOIN_BOUND:g} s")
    return result


async def graceful_shutdown(lab: Lab, p: dict[str, Any]) -> Result:
    """SIGTERM under load: answers for what was accepted, a bounded drain, a GOODBYE, exit 0."""
    reactor = lab.reactor
    result = Result("graceful-shutdown")
    router = await lab.router_up()
    proxy = CutProxy(reactor, router.rawsocket_port, sniff=True)
    await proxy.listen()
    lab.on_cleanup(proxy.close)
    meta = await _started(lab, MetaWatcher(reactor, router.rawsocket_port))
    await _started(lab, SlowCallee(reactor, router.rawsocket_port, SLOW, p["delay"]))
    drain_timeout = 10.0
    leave_bound = 5.0  # the supervisor's bound on leaving with a GOODBYE
    web = lab.wampweb(
        "graceful-shutdown",
        wampweb_config(
            free_port(),
            f"rs://127.0.0.1:{proxy.port}",
            server={"call_timeout": 10.0, "drain_timeout": drain_timeout},
        ),
    )
    http = _http(lab, web.port, timeout=15.0, pool_size=64)
    await web.wait_ready(reactor, http)

    outcomes: list[Outcome] = []
    stop = [False]

    def publish(i: int) -> Deferred[Any]:
        return http.post("/publish", {"topic": TOPIC, "args": [i]}).addCallback(outcomes.append)

    def call(i: int) -> Deferred[Any]:
        return http.post("/call", {"procedure": SLOW, "args": [i]}).addCallback(outcomes.append)

    streams = [
        Deferred.fromCoroutine(steady(reactor, p["rate"], publish, until=lambda: stop[0])),
        Deferred.fromCoroutine(steady(reactor, p["call_rate"], call, until=lambda: stop[0])),
    ]
    await sleep(reactor, p["before"])
    signalled_at = time.monotonic()
    assert web.process is not None
    web.process.send_signal(signal.SIGTERM)
    await sleep(reactor, p["after"])
    stop[0] = True
    exit_code = await web.wait_exit(reactor, drain_timeout + leave_bound + 10.0)
    exited_after = time.monotonic() - signalled_at
    await gatherResults(streams)

    before = [o for o in outcomes if o.sent < signalled_at]
    after = [o for o in outcomes if o.sent >= signalled_at]
    broken = [o for o in before if o.status is None]
    welcomes = proxy.messages("WELCOME", "down")
    session_id = welcomes[-1].message[1] if welcomes else None
    goodbye_up = proxy.messages("GOODBYE", "up")
    goodbye_down = proxy.messages("GOODBYE", "down")
    reason = goodbye_up[0].message[2] if goodbye_up and len(goodbye_up[0].message) > 2 else None
    waited = time.monotonic()
    while session_id not in meta.left and time.monotonic() - waited < 3.0:
        await sleep(reactor, 0.05)
    drained = re.search(r"draining (\d+) request", web.log_text())
    after_kinds = Counter(
        "refused" if o.refused else ("reset" if o.status is None and o.error != "hung" else o.kind)
        for o in after
    )
    result.fields.update(
        {
            "requests": len(outcomes),
            "before_signal": len(before),
            "before_2xx": sum(1 for o in before if o.kind == "2xx"),
            "before_503": sum(1 for o in before if o.status == 503),
            "before_reset": len(broken),
            "after_signal": len(after),
            "after": "/".join(f"{k}:{n}" for k, n in sorted(after_kinds.items())) or "none",
            "in_flight_at_signal": drained.group(1) if drained else 0,
            "exit_code": exit_code,
            "exit_after_s": f"{exited_after:.2f}",
            "goodbye_sent": len(goodbye_up),
            "goodbye_reply": len(goodbye_down),
            "router_on_leave": int(session_id in meta.left),
        }
    )
    if reason:
        result.notes.append(f"wampweb's GOODBYE reason: {reason}")
    hung = [o for o in outcomes if o.kind == "hung"]
    result.check(
        not broken,
        f"{len(broken)} request(s) sent before the signal got no answer: {describe_errors(broken)}",
    )
    result.check(not hung, f"{len(hung)} request(s) hung")
    result.check(exit_code == 0, f"exit code {exit_code}")
    result.check(
        exited_after <= drain_timeout + leave_bound + 1.0,
        f"exit took {exited_after:.2f} s (drain bound {drain_timeout:g} s)",
    )
    result.check(bool(goodbye_up), "wampweb sent no GOODBYE")
    result.check(session_id in meta.left, "the router published no on_leave for wampweb's session")
    result.check(
        all(o.status == 503 and o.retry_after for o in before if o.status and o.status >= 500),
        "an error before the signal other than 503 + Retry-After",
    )
    return result


async def _sequential_publishes(http: Http, until: Callable[[], bool]) -> list[Outcome]:
    out: list[Outcome] = []
    while not until():
        out.append(await http.post("/publish", {"topic": TOPIC, "args": [len(out)]}))
    return out


async def oversized(lab: Lab, p: dict[str, Any]) -> Result:
    """100 concurrent uploads announcing 100 MB: refused from Content-Length, memory flat."""
    reactor = lab.reactor
    result = Result("oversized")
    router = await lab.router_up()
    web = lab.wampweb("oversized", wampweb_config(free_port(), router.rawsocket_url))
    http = _http(lab, web.port, timeout=10.0)
    await web.wait_ready(reactor, http)
    await sleep(reactor, 0.5)
    baseline = web.rss()
    peak = [baseline]
    sampling = [True]

    async def sample() -> None:
        while sampling[0] and web.alive:
            peak[0] = max(peak[0], web.rss())
            await sleep(reactor, 0.02)

    sampler = Deferred.fromCoroutine(sample())
    phases: dict[str, list[Upload]] = {}
    normal: Deferred[list[Outcome]] | None = None
    timings: dict[str, float] = {}
    for phase, expect in (("plain", False), ("expect", True)):
        uploads = [
            Upload("/publish", p["length"], expect=expect, clock=time.monotonic)
            for _ in range(p["uploads"])
        ]
        opened = []
        for upload in uploads:
            opened.append(Deferred.fromCoroutine(open_connection(reactor, web.port, upload)))
            await sleep(reactor, 0.002)
        await DeferredList(opened, consumeErrors=True)
        # All connected: every upload starts in the same moment.
        started = time.monotonic()
        for upload in uploads:
            upload.go()
        if not expect:
            # How a normal client fares while wampweb discards what the uploads push.
            normal = Deferred.fromCoroutine(
                _sequential_publishes(http, lambda end=started + 2.0: time.monotonic() > end)
            )
        finished = DeferredList([u.done for u in uploads], consumeErrors=True)
        timer = reactor.callLater(30.0, finished.cancel)
        with contextlib.suppress(CancelledError):
            await finished
        if timer.active():
            timer.cancel()
        for upload in uploads:
            if upload.closed_at is None and upload.transport is not None:
                upload.transport.abortConnection()
        timings[phase] = time.monotonic() - started
        phases[phase] = uploads
    sampling[0] = False
    await sampler
    during = await normal if normal is not None else []
    after = await http.post("/publish", {"topic": TOPIC, "args": [0]})

    plain, expect = phases["plain"], phases["expect"]
    growth = peak[0] - baseline
    sent_at_answer = [u.sent_at_answer or 0 for u in plain if u.status == 413]
    result.fields.update(
        {
            "uploads": len(plain) + len(expect),
            "announced_gb": f"{(len(plain) + len(expect)) * p['length'] / 2**30:.1f}",
            "plain_413": sum(1 for u in plain if u.status == 413),
            "expect_413": sum(1 for u in expect if u.status == 413),
            "expect_100_continue": sum(1 for u in expect if u.got_continue),
            "expect_body_sent": sum(u.sent_body for u in expect),
            "plain_sent_before_413_max_kb": f"{max(sent_at_answer, default=0) / 1024:.0f}",
            "plain_discarded_mb": f"{sum(u.sent_body for u in plain) / 2**20:.0f}",
            "answer_p99_ms": ms(
                percentile([u.answered_at - u.started for u in plain if u.answered_at], 0.99)
            ),
            "rss_base_mb": f"{baseline / 2**20:.1f}",
            "rss_peak_mb": f"{peak[0] / 2**20:.1f}",
            "rss_growth_mb": f"{growth / 2**20:.1f}",
            "after_2xx": int(after.kind == "2xx"),
            "normal_during": f"{sum(1 for o in during if o.kind == '2xx')}/{len(during)}",
            "normal_p50_ms": ms(percentile([o.latency for o in during], 0.5)),
        }
    )
    result.notes.append(f"phase seconds: {timings}")
    result.check(all(u.status == 413 for u in plain), "a plain upload was not answered 413")
    result.check(all(u.status == 413 for u in expect), "an Expect upload was not answered 413")
    result.check(not any(u.got_continue for u in expect), "wampweb invited a body it refuses")
    result.check(all(u.sent_body == 0 for u in expect), "an Expect upload sent body bytes")
    result.check(growth <= OVERSIZED_RSS_BOUND, f"RSS grew by {growth / 2**20:.1f} MB")
    result.check(after.kind == "2xx", "wampweb did not serve a normal publish afterwards")
    return result


async def slow_headers(lab: Lab, p: dict[str, Any]) -> Result:
    """500 connections trickling headers: closed by the header deadline; others unharmed."""
    reactor = lab.reactor
    result = Result("slow-headers")
    router = await lab.router_up()
    header_timeout = 2.0
    web = lab.wampweb(
        "slow-headers",
        wampweb_config(
            free_port(), router.rawsocket_url, server={"header_timeout": header_timeout}
        ),
    )
    http = _http(lab, web.port, timeout=10.0, pool_size=4)
    await web.wait_ready(reactor, http)

    async def normal_requests(until: Callable[[], bool], count: int | None) -> list[Outcome]:
        out = []
        while not until() and (count is None or len(out) < count):
            out.append(await http.post("/publish", {"topic": TOPIC, "args": [len(out)]}))
        return out

    for_warmup = await normal_requests(lambda: False, 30)
    baseline = await normal_requests(lambda: False, p["baseline"])
    slow: list[SlowHeaders] = []
    running = [True]

    async def keep_one(delay: float) -> None:
        await sleep(reactor, delay)
        while running[0]:
            conn = SlowHeaders(reactor, "/publish", p["interval"])
            slow.append(conn)
            try:
                await open_connection(reactor, web.port, conn)
            except Exception:
                conn.closed_at = time.monotonic()
                await sleep(reactor, 0.1)
                continue
            await conn.done

    keepers = [Deferred.fromCoroutine(keep_one(i * 0.001)) for i in range(p["slow"])]
    await sleep(reactor, 0.5)  # all opened
    started = time.monotonic()
    during = await normal_requests(lambda: time.monotonic() - started > p["duration"], None)
    running[0] = False
    finished = DeferredList(keepers, consumeErrors=True)
    timer = reactor.callLater(header_timeout + 5.0, finished.cancel)
    with contextlib.suppress(CancelledError):
        await finished
    if timer.active():
        timer.cancel()
    for conn in slow:
        conn.abandon()

    bound = header_timeout + 1.0
    closed_408 = [c for c in slow if c.status == 408]
    in_time = [c for c in closed_408 if c.closed_at and c.closed_at - c.opened_at <= bound]
    lifetimes = [c.closed_at - c.opened_at for c in slow if c.closed_at and c.opened_at]
    base_p50 = percentile([o.latency for o in baseline], 0.5)
    during_p50 = percentile([o.latency for o in during], 0.5)
    base_p90 = percentile([o.latency for o in baseline], 0.9)
    during_p90 = percentile([o.latency for o in during], 0.9)
    failed_normal = [o for o in baseline + during + for_warmup if o.kind != "2xx"]
    result.fields.update(
        {
            "slow_connections": len(slow),
            "closed_408": len(closed_408),
            "closed_in_time": len(in_time),
            "lifetime_p50_s": f"{percentile(lifetimes, 0.5):.2f}",
            "lifetime_max_s": f"{max(lifetimes, default=0):.2f}",
            "normal": len(during),
            "normal_failed": len(failed_normal),
            "p50_ms": f"{ms(base_p50)}->{ms(during_p50)}",
            "p90_ms": f"{ms(base_p90)}->{ms(during_p90)}",
            "p99_ms": f"{ms(percentile([o.latency for o in baseline], 0.99))}->"
            f"{ms(percentile([o.latency for o in during], 0.99))}",
        }
    )
    result.check(
        len(in_time) == len(slow),
        f"{len(slow) - len(in_time)} slow connection(s) not closed with 408 within {bound:g} s",
    )
    result.check(not failed_normal, f"normal requests failed: {describe_errors(failed_normal)}")
    result.check(
        during_p50 <= LATENCY_FACTOR * base_p50,
        f"normal p50 went from {ms(base_p50)} to {ms(during_p50)} ms (over 2x)",
    )
    return result


async def leaks(lab: Lab, p: dict[str, Any]) -> Result:
    """Many router restarts: RSS, file descriptors and live sessions must not grow."""
    reactor = lab.reactor
    result = Result("leaks")
    router = await lab.router_up()
    callee = await _started(lab, SlowCallee(reactor, router.rawsocket_port, ECHO, 0.0))
    web = lab.wampweb(
        "leaks",
        wampweb_config(free_port(), router.rawsocket_url, server={"call_timeout": 5.0}),
        app="benchmarks.faults_app:setup",
    )
    http = _http(lab, web.port, timeout=6.0, pool_size=1)
    await web.wait_ready(reactor, http)
    pid = web.pid
    samples: list[dict[str, Any]] = []
    failed_traffic: list[Outcome] = []

    async def exercise() -> None:
        await callee.until_ready(30.0)
        # Right after a rejoin the callee may not have re-registered: that 503 is no leak.
        for i in range(p["publishes"]):
            outcome = await http.post("/publish", {"topic": TOPIC, "args": [i]})
            if outcome.kind != "2xx":
                failed_traffic.append(outcome)
        for i in range(p["calls"]):
            outcome = await http.post("/call", {"procedure": ECHO, "args": [i]})
            if outcome.kind != "2xx" and outcome.status != 503:
                failed_traffic.append(outcome)

    async def measure(round_: int) -> dict[str, Any]:
        _, objects = await http.get_json("/faults/objects", timeout=10.0)
        sample = {"round": round_, "rss": web.rss(), "fds": web.fds(), **(objects or {})}
        samples.append(sample)
        return sample

    await exercise()
    await measure(0)
    for i in range(1, p["restarts"] + 1):
        await kill_router(reactor, router)
        router.start()
        await router.wait_ready(reactor, timeout=60.0)
        await web.wait_ready(reactor, http, timeout=30.0)
        await exercise()
        sample = await measure(i)
        if i % 10 == 0 or i == p["restarts"]:
            say(
                f"leaks: {i}/{p['restarts']} restarts, rss {sample['rss'] / 2**20:.1f} MB, "
                f"fds {sample['fds']}, sessions {sample.get('sessions')}"
            )
    health = await web.health(http)

    # The first restarts allocate what every later one reuses: measure from the second.
    base = samples[min(2, len(samples) - 1)]
    last = samples[-1]
    growth = (last["rss"] - base["rss"]) / base["rss"]
    result.fields.update(
        {
            "restarts": len(samples) - 1,
            "joins": health.get("joins"),
            "rss_mb": f"{samples[0]['rss'] / 2**20:.1f}/{base['rss'] / 2**20:.1f}->"
            f"{last['rss'] / 2**20:.1f}",
            "rss_growth_pct": f"{growth * 100:.1f}",
            "fds": f"{base['fds']}->{last['fds']}",
            "sessions": f"{base.get('sessions')}->{last.get('sessions')}",
            "protocols": f"{base.get('protocols')}->{last.get('protocols')}",
            "pending_deferreds": f"{base.get('pending_deferreds')}->"
            f"{last.get('pending_deferreds')}",
            "delayed_calls": f"{base.get('delayed_calls')}->{last.get('delayed_calls')}",
            "traffic_failed": len(failed_traffic),
            "wampweb_restarts": 0 if web.alive and web.pid == pid else 1,
        }
    )
    result.check(growth <= RSS_GROWTH_BOUND, f"RSS grew by {growth * 100:.1f} %")
    result.check(last["fds"] <= base["fds"], f"fds grew from {base['fds']} to {last['fds']}")
    result.check(
        (last.get("sessions") or 0) <= (base.get("sessions") or 0),
        f"live sessions grew from {base.get('sessions')} to {last.get('sessions')}",
    )
    result.check(
        not failed_traffic, f"traffic between restarts failed: {describe_errors(failed_traffic)}"
    )
    result.check(web.alive and web.pid == pid, "wampweb restarted")
    result.check(health.get("joins") == p["restarts"] + 1, f"joins={health.get('joins')}")
    return result


RUNNERS: dict[str, Callable[[Lab, dict[str, Any]], Awaitable[Result]]] = {
    "router-restarts": router_restarts,
    "inflight-calls": inflight_calls,
    "link-cut": link_cut,
    "link-blackhole": link_blackhole,
    "link-blackhole-rawsocket": link_blackhole,
    "graceful-shutdown": graceful_shutdown,
    "oversized": oversized,
    "slow-headers": slow_headers,
    "leaks": leaks,
}


async def run_scenario(
    lab: Lab, name: str, scale: str = "short", overrides: dict[str, float] | None = None
) -> Result:
    """Run one scenario in ``lab`` (whose reactor must be running) and clean up after it."""
    started = time.monotonic()
    params = dict(PARAMS[name][scale])
    for key, value in (overrides or {}).items():
        if key in params:
            params[key] = type(params[key])(value)
    say(f"{name} ({scale}): starting with {params}")
    try:
        result = await RUNNERS[name](lab, params)
    except Exception as error:
        result = Result(name)
        result.failures.append(f"the scenario itself failed: {error!r}")
    finally:
        await lab.end_scenario()
    result.fields["seconds"] = f"{time.monotonic() - started:.0f}"
    for note in result.notes:
        say(f"{name}: {note}")
    return result


# -- the command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", default="all", choices=[*SCENARIOS, "all"])
    parser.add_argument("--scale", default="short", choices=["short", "full"])
    parser.add_argument("--keep", action="store_true", help="keep the folder of configs and logs")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one of the scale's numbers (e.g. --set kills=5), for experiments",
    )
    return parser


async def _main(reactor: Any, options: argparse.Namespace) -> int:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    workdir = Path(tempfile.mkdtemp(prefix="wampweb-faults-"))
    log = (workdir / "faults.log").open("a")
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(log), [predicate])], redirectStandardIO=False
    )
    say(f"configs and logs in {workdir}")
    names = SCENARIOS if options.scenario == "all" else (options.scenario,)
    overrides = {
        key: float(value) for key, _, value in (item.partition("=") for item in options.set)
    }
    lab = Lab(reactor, workdir)
    results = []
    started = time.monotonic()
    try:
        for name in names:
            result = await run_scenario(lab, name, options.scale, overrides)
            results.append(result)
            sys.stdout.write(result.line() + "\n")
            sys.stdout.flush()
    finally:
        await lab.close()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"{len(results)} scenario(s) in {time.monotonic() - started:.0f} s")
    return 0 if all(r.passed for r in results) else 1


def main(argv: Sequence[str] | None = None) -> None:
    from twisted.internet import task

    options = _parser().parse_args(argv)

    async def run(reactor: Any) -> None:
        code = await _main(reactor, options)
        if code:
            raise SystemExit(code)  # react() exits with it

    task.react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
