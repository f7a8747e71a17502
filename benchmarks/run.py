"""
HTTP → WAMP bridge benchmark: wampweb against Crossbar.io's own HTTP bridge and
a JSON-only ceiling, all on loopback, all in one run.

Started as separate processes:

- a Crossbar.io router (``wampweb.EmbeddedRouter``) that also serves its own
  HTTP bridge (``/publish`` and ``/call`` path services);
- a callee (``bench.echo``) and a counting subscriber (``bench.topic``), plain
  Autobahn Components over RawSocket + msgpack (``benchmarks/peers.py``);
- wampweb, as ``wampweb run --router rs://... --listen tcp:PORT:interface=127.0.0.1``
  with its default settings (RawSocket + msgpack, as ``wampweb run`` reaches the
  router it starts itself), and in variants (transport and serializer from a
  generated TOML config with ``[[bridge]]`` mounts, access log, log level,
  workers, or another wampweb source tree to measure an optimisation against);
- the ceilings: a plain ``twisted.web`` resource and a Klein route that parse
  the same JSON and answer ``{"id": 1}``, with no WAMP (``benchmarks/ceiling.py``).

For each repetition, scenario and target (targets interleaved, their order
rotated between repetitions): a warm-up, then ``wrk`` with a Lua POST script
for a fixed duration. Reported: requests/s (median of the repetitions), p50 and
p99 latency, errors (socket errors, non-2xx answers and bodies holding an
``"error"``), CPU and RSS of the server and of the router, and the ratios to
Crossbar's bridge and to the Klein ceiling measured in the same run. A publish
repetition counts only if the subscriber received every acknowledged event.

    python benchmarks/run.py --duration 10 --repeat 3 --connections 50
    python benchmarks/run.py --quick
    python benchmarks/run.py --targets crossbar,wampweb,'wampweb[rs+msgpack]'

See ``docs/benchmarks.rst`` for what is measured and how to read the table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
REALM = "realm1"
TOPIC = "bench.topic"
PROCEDURE = "bench.echo"

BODIES = {
    "publish": {"topic": TOPIC, "args": [1, "hello", {"k": True}]},
    "call": {"procedure": PROCEDURE, "args": [1]},
}

#: Targets of a full run, in this order in the table: the baselines, the
#: default, then one change each (transport, serializer, access log, workers).
DEFAULT_TARGETS = (
    "crossbar",
    "ceiling-web",
    "ceiling-klein",
    "wampweb",
    "wampweb[ws]",
    "wampweb[ws+msgpack]",
    "wampweb[rs+json]",
    "wampweb[access]",
    "wampweb[w2]",
)
#: Targets of ``--quick``: the baselines, the default and the fastest documented variant.
QUICK_TARGETS = (
    "crossbar",
    "ceiling-web",
    "ceiling-klein",
    "wampweb",
    "wampweb[ws]",
)
CROSSBAR = "crossbar"
CEILING = "ceiling-klein"
DEFAULT_WAMPWEB = "wampweb"
WEBSOCKET_WAMPWEB = "wampweb[ws]"

_TARGET = re.compile(r"wampweb(?:@(?P<source>[A-Za-z0-9_.-]+))?(?:\[(?P<options>[^\]]*)\])?")
#: ``ceiling-klein@LABEL``: the ceiling run by the interpreter given as ``--source LABEL=PYTHON``,
#: so that idle memory can be compared inside another environment (one without Crossbar).
_CEILING = re.compile(r"ceiling-(?P<kind>web|klein)(?:@(?P<source>[A-Za-z0-9_.-]+))?")


class BenchError(Exception):
    """Something kept the benchmark from running; the message says what."""


def _progress(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# -- processes -----------------------------------------------------------------------------


@dataclass
class Child:
    """A process we started (in a session of its own), with its output in files."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        text = ""
        for path in (self.out, self.err):
            with contextlib.suppress(OSError):
                text += "".join(path.read_text(errors="replace").splitlines(True)[-lines:])
        return text or "(no output)"

    def check_alive(self) -> None:
        status = self.popen.poll()
        if status is not None:
            raise BenchError(f"{self.name} exited with status {status}:\n{self.tail()}")


class Supervisor:
    """Starts every process of the run and stops all of them, whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []
        self.routers: list[Any] = []

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)
        out, err = self.workdir / f"{safe}.out", self.workdir / f"{safe}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,
                close_fds=True,
            )
        child = Child(name, popen, out, err)
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for child in self.children:
            if child.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        for child in self.children:
            # The whole group: worker processes must not outlive their parent.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(timeout=5)
        for router in self.routers:
            router.close()


def wait_for_line(child: Child, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        with contextlib.suppress(OSError):
            if text in child.out.read_text(errors="replace"):
                return
        time.sleep(0.05)
    raise BenchError(f"{child.name} did not print {text!r} within {timeout:g} s:\n{child.tail()}")


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def http_post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(check: Callable[[], bool], what: str, timeout: float, child: Child | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None:
            child.check_alive()
        with contextlib.suppress(OSError, ConnectionError):
            if check():
                return
        time.sleep(0.1)
    tail = f":\n{child.tail()}" if child is not None else ""
    raise BenchError(f"{what} not within {timeout:g} s{tail}")


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def rss_bytes(processes: Sequence[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on the machine (all cores), from /proc/stat."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


# -- targets --------------------------------------------------------------------------------


@dataclass
class Target:
    """One HTTP server under test."""

    name: str
    base_url: str
    #: The processes whose CPU and RSS are the server's (resolved when asked: workers).
    server_pids: Callable[[], list[psutil.Process]]
    child: Child | None = None
    idle_rss: int = 0
    notes: str = ""


@dataclass
class Environment:
    """What every target shares: the router, its peers, where files go."""

    supervisor: Supervisor
    router: Any
    subscriber_url: str
    peers: list[Child]
    sources: dict[str, Path]
    python: str
    wampweb_script: str
    workers_supported: bool

    def router_processes(self) -> list[psutil.Process]:
        return process_tree(self.router.pid)


def start_router(supervisor: Supervisor) -> Any:
    from wampweb import EmbeddedRouter

    service = {"realm": REALM, "role": "anonymous"}
    router = EmbeddedRouter(
        realm=REALM,
        extra_paths={
            "publish": {"type": "publisher", **service},
            "call": {"type": "caller", **service},
        },
    )
    supervisor.routers.append(router)
    router.start()
    router.wait_ready_blocking(timeout=60)
    return router


def start_peers(supervisor: Supervisor, router: Any, python: str) -> tuple[list[Child], str]:
    port = free_port()
    common = ["--router", router.rawsocket_url, "--realm", REALM]
    callee = supervisor.spawn("callee", [python, str(HERE / "peers.py"), "callee", *common])
    subscriber = supervisor.spawn(
        "subscriber",
        [python, str(HERE / "peers.py"), "subscriber", *common, "--port", str(port)],
    )
    for child in (callee, subscriber):
        wait_for_line(child, "READY", 30)
    return [callee, subscriber], f"http://{LOOPBACK}:{port}/count"


def start_crossbar_target(env: Environment) -> Target:
    return Target(
        CROSSBAR,
        env.router.http_url,
        env.router_processes,
    )


def start_ceiling(env: Environment, name: str) -> Target:
    match = _CEILING.fullmatch(name)
    assert match is not None
    python = env.python
    if match["source"] is not None:
        source = env.sources.get(match["source"])
        if source is None or source.is_dir():
            raise BenchError(f"{name}: needs --source {match['source']}=PYTHON (an interpreter)")
        python = str(source)
    port = free_port()
    child = env.supervisor.spawn(
        name, [python, str(HERE / "ceiling.py"), match["kind"], "--port", str(port)]
    )
    wait_for_line(child, "READY", 30)
    return Target(name, f"http://{LOOPBACK}:{port}", lambda: process_tree(child.pid), child)


@dataclass(frozen=True)
class WampwebVariant:
    """What a ``wampweb[...]`` target name asks for."""

    source: str | None = None
    transport: str | None = None  # None: the CLI's default (--router rs://...)
    serializer: str | None = None
    quiet: bool = False
    workers: int | None = None
    access_log: bool = False


def parse_wampweb_target(name: str) -> WampwebVariant:
    match = _TARGET.fullmatch(name)
    if match is None:
        raise BenchError(f"unknown target {name!r}")
    transport = serializer = None
    quiet = access_log = False
    workers = None
    for option in filter(None, (match["options"] or "").split("+")):
        if option in ("ws", "rs"):
            transport = option
        elif option in ("cbor", "msgpack", "json"):
            serializer = option
        elif option == "quiet":
            quiet = True
        elif option == "access":
            access_log = True
        elif re.fullmatch(r"w\d+", option):
            workers = int(option[1:])
        else:
            raise BenchError(
                f"unknown option {option!r} in {name!r} "
                "(ws, rs, cbor, msgpack, json, quiet, access, wN)"
            )
    if serializer is not None and transport is None:
        transport = "ws"
    if transport is not None and serializer is None:
        serializer = "cbor" if transport == "ws" else "msgpack"
    return WampwebVariant(match["source"], transport, serializer, quiet, workers, access_log)


def wampweb_config(variant: WampwebVariant, router: Any, port: int) -> str:
    if variant.transport == "ws":
        transport = (
            f'{{ type = "websocket", url = "{router.url}", '
            f'serializers = ["{variant.serializer}"] }}'
        )
    else:
        transport = (
            f'{{ type = "rawsocket", url = "{router.rawsocket_url}", '
            f'serializer = "{variant.serializer}" }}'
        )
    return (
        "# Generated by benchmarks/run.py\n"
        "[server]\n"
        f'listen = "tcp:{port}:interface={LOOPBACK}"\n\n'
        "[components.default]\n"
        f'realm = "{REALM}"\n'
        f"transports = [{transport}]\n\n"
        '[[bridge]]\npath = "/publish"\ntype = "publisher"\n\n'
        '[[bridge]]\npath = "/call"\ntype = "caller"\n'
    )


def start_wampweb(env: Environment, name: str) -> Target:
    variant = parse_wampweb_target(name)
    port = free_port()
    listen = f"tcp:{port}:interface={LOOPBACK}"
    extra_env: dict[str, str] = {}
    if variant.source is None:
        command = [env.wampweb_script, "run"]
    else:
        if variant.source not in env.sources:
            raise BenchError(f"{name}: no --source {variant.source}=PATH given")
        source = env.sources[variant.source]
        # -P: `python -m` would put the working folder (this checkout) first
        # on sys.path, ahead of PYTHONPATH, and run this wampweb instead.
        if source.is_dir():
            extra_env["PYTHONPATH"] = str(source)
            command = [env.python, "-P", "-m", "wampweb", "run"]
        else:  # another interpreter (a virtualenv's python) with wampweb installed
            command = [str(source), "-P", "-m", "wampweb", "run"]
    if variant.transport is None:
        command += ["--router", env.router.rawsocket_url, "--listen", listen]
    else:
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)
        config = env.supervisor.workdir / f"{safe}.toml"
        config.write_text(wampweb_config(variant, env.router, port))
        command += ["--config", str(config)]
    if variant.quiet:
        command += ["--log-level", "warn"]
    if variant.access_log:
        command += ["--access-log", "-"]
    if variant.workers is not None:
        if not env.workers_supported:
            raise BenchError(f"{name}: this wampweb has no `run --workers`")
        command += ["--workers", str(variant.workers)]
    child = env.supervisor.spawn(name, command, extra_env)
    base = f"http://{LOOPBACK}:{port}"
    wait_until(lambda: http_get(f"{base}/ready")[0] == 200, f"{name} ready", 60, child)
    return Target(name, base, lambda: process_tree(child.pid), child)


def start_target(env: Environment, name: str) -> Target:
    if name == CROSSBAR:
        return start_crossbar_target(env)
    if _CEILING.fullmatch(name):
        return start_ceiling(env, name)
    return start_wampweb(env, name)


def check_target(target: Target, subscriber_url: str) -> None:
    """One publish and one call by hand: the answers must be what the scenario expects."""
    before = int(http_get(subscriber_url)[1])
    for scenario, body in BODIES.items():
        status, answer = http_post(f"{target.base_url}/{scenario}", body)
        if status != 200 or b'"error"' in answer:
            raise BenchError(f"{target.name}: POST /{scenario} answered {status} {answer!r}")
    if not target.name.startswith("ceiling"):
        wait_until(
            lambda: int(http_get(subscriber_url)[1]) > before,
            f"the event published through {target.name}",
            10,
            None,
        )


# -- wrk --------------------------------------------------------------------------------------

_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end

ok = 0
bad = 0
function response(status, headers, body)
  if status >= 200 and status < 300 and not string.find(body, '"error"', 1, true) then
    ok = ok + 1
  else
    bad = bad + 1
  end
end
{delay}
function done(summary, latency, requests)
  local ok_total, bad_total = 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH {{\\"requests\\": %d, \\"duration_us\\": %d, \\"ok\\": %d, \\"bad\\": %d, "
    .. "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"status\\": %d, \\"timeout\\": %d, "
    .. "\\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d, "
    .. "\\"mean_us\\": %.1f}}\\n",
    summary.requests, summary.duration, ok_total, bad_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


def lua_script(workdir: Path, scenario: str, delay_ms: float | None) -> Path:
    body = json.dumps(json.dumps(BODIES[scenario], separators=(",", ":")))
    # A random pause (mean ``delay_ms``) keeps the connections out of step: a fixed one
    # would have all of them send at once, a burst every ``delay_ms``.
    delay = (
        ""
        if delay_ms is None
        else f"function delay()\n  return math.random() * {2 * delay_ms:.3f}\nend\n"
    )
    path = workdir / f"{scenario}{'' if delay_ms is None else '-paced'}.lua"
    path.write_text(_LUA.format(body=body, delay=delay))
    return path


@dataclass
class WrkResult:
    requests: int
    seconds: float
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    wrk_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(url: str, script: Path, duration: float, connections: int, threads: int) -> WrkResult:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH ") :])
    socket_errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        ok=data["ok"],
        errors=socket_errors + data["bad"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        wrk_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Sample:
    """One repetition of one scenario against one target."""

    target: str
    scenario: str
    repetition: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    ok: int
    server_cpu: float  # percent of one core
    server_rss: int
    router_cpu: float
    peers_cpu: float
    wrk_cpu: float
    other_cpu: float  # everything else on the machine (not ours): noise
    events: int | None = None
    valid: bool = True
    why_invalid: str = ""


def subscriber_count(url: str) -> int:
    return int(http_get(url)[1])


def settled_count(url: str, at_least: int, timeout: float = 15.0) -> int:
    """The subscriber's count once it has reached ``at_least`` and stopped moving."""
    deadline = time.monotonic() + timeout
    last = subscriber_count(url)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = subscriber_count(url)
        if now == last and now >= at_least:
            return now
        last = now
    return last


@dataclass
class Settings:
    duration: float
    warmup: float
    connections: int
    threads: int
    repeat: int
    paced_rate: float
    paced_targets: tuple[str, ...]


def measure(
    env: Environment,
    target: Target,
    scenario: str,
    repetition: int,
    settings: Settings,
    scripts: dict[str, Path],
    every_pid: Callable[[], list[psutil.Process]],
) -> Sample:
    kind = scenario.split("@")[0]
    script = scripts[scenario]
    url = f"{target.base_url}/{kind}"
    publishing = kind == "publish" and not target.name.startswith("ceiling")
    run_wrk(url, script, settings.warmup, settings.connections, settings.threads)
    baseline = settled_count(env.subscriber_url, 0) if publishing else 0

    server = target.server_pids()
    router = [] if target.name == CROSSBAR else env.router_processes()
    peers = [p for child in env.peers for p in process_tree(child.pid)]
    ours = every_pid()
    cpu_before = [cpu_seconds(group) for group in (server, router, peers, ours)]
    busy_before = machine_busy_seconds()
    started = time.monotonic()
    result = run_wrk(url, script, settings.duration, settings.connections, settings.threads)
    wall = time.monotonic() - started
    busy = machine_busy_seconds() - busy_before
    cpu_after = [cpu_seconds(group) for group in (server, router, peers, ours)]
    used = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    rss = rss_bytes(server)

    sample = Sample(
        target=target.name,
        scenario=scenario,
        repetition=repetition,
        rate=result.rate,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        errors=result.errors,
        ok=result.ok,
        server_cpu=100 * used[0] / wall,
        server_rss=rss,
        router_cpu=100 * used[1] / wall,
        peers_cpu=100 * used[2] / wall,
        wrk_cpu=100 * result.wrk_cpu / wall,
        other_cpu=max(0.0, 100 * (busy - used[3] - result.wrk_cpu) / wall),
    )
    if publishing:
        # Requests cut off when wrk stops may still be published: at most one per connection.
        events = settled_count(env.subscriber_url, baseline + result.ok) - baseline
        sample.events = events
        if events < result.ok:
            sample.valid = False
            sample.why_invalid = f"{result.ok} publishes acknowledged, {events} events received"
        elif events > result.ok + settings.connections:
            sample.valid = False
            sample.why_invalid = f"{events} events for {result.ok} acknowledged publishes"
    if result.requests == 0:
        sample.valid = False
        sample.why_invalid = "no request completed"
    return sample


def wait_quiet(
    every_pid: Callable[[], list[psutil.Process]], max_other: float, timeout: float
) -> None:
    """Wait (bounded) until processes not ours use at most ``max_other`` % of one core."""
    deadline = time.monotonic() + timeout
    other = 0.0
    while time.monotonic() < deadline:
        ours = every_pid()
        busy, mine, started = machine_busy_seconds(), cpu_seconds(ours), time.monotonic()
        time.sleep(1.0)
        wall = time.monotonic() - started
        other = 100 * ((machine_busy_seconds() - busy) - (cpu_seconds(ours) - mine)) / wall
        if other <= max_other:
            return
    if timeout > 0:
        _progress(f"  other processes still use {other:.0f}% CPU; measuring anyway")


# -- reporting ---------------------------------------------------------------------------------


@dataclass
class Row:
    target: str
    scenario: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def valid(self) -> list[Sample]:
        return [s for s in self.samples if s.valid]

    def median(self, attribute: str) -> float:
        values = [getattr(s, attribute) for s in self.valid]
        return statistics.median(values) if values else float("nan")

    @property
    def rate(self) -> float:
        return self.median("rate")


def _mb(value: float) -> str:
    return f"{value / 2**20:.0f}" if value == value else "-"


def _ratio(value: float, base: float) -> str:
    if not (value == value and base == base) or base == 0:
        return "-"
    return f"{value / base:.2f}x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    left = {0, 1}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def report(
    rows: dict[tuple[str, str], Row],
    targets: list[Target],
    env: Environment,
    settings: Settings,
    context: dict[str, str],
) -> str:
    out: list[str] = []
    out.append(
        f"wampweb benchmark, {context['date']}, {context['machine']}\n"
        f"wrk {settings.connections} connections, {settings.threads} thread(s), "
        f"{settings.duration:g} s after {settings.warmup:g} s warm-up, "
        f"{settings.repeat} repetition(s), targets interleaved; "
        f"wampweb {context['wampweb']}; {context['versions']}"
    )
    out.append("")
    header = [
        "target",
        "scenario",
        "req/s",
        "min-max",
        "p50 ms",
        "p99 ms",
        "errors",
        "srv CPU%",
        "srv RSS MB",
        "rtr CPU%",
        "other CPU%",
        "vs crossbar",
        "vs ceiling",
    ]
    lines = []
    for (name, scenario), row in rows.items():
        if "@" in scenario:
            continue
        rates = [s.rate for s in row.valid]
        crossbar = rows.get((CROSSBAR, scenario))
        ceiling = rows.get((CEILING, scenario))
        invalid = len(row.samples) - len(row.valid)
        lines.append(
            [
                name,
                scenario,
                f"{row.rate:.0f}" if rates else "INVALID",
                f"{min(rates):.0f}-{max(rates):.0f}" if rates else "-",
                f"{row.median('p50_ms'):.1f}",
                f"{row.median('p99_ms'):.1f}",
                str(sum(s.errors for s in row.samples)) + (f" ({invalid} inv)" if invalid else ""),
                f"{row.median('server_cpu'):.0f}",
                _mb(max((s.server_rss for s in row.valid), default=float("nan"))),
                "-" if name == CROSSBAR else f"{row.median('router_cpu'):.0f}",
                f"{row.median('other_cpu'):.0f}",
                _ratio(row.rate, crossbar.rate) if crossbar and name != CROSSBAR else "",
                _ratio(row.rate, ceiling.rate) if ceiling and name != CEILING else "",
            ]
        )
    out.append(_table(header, lines))

    paced = [(k, r) for k, r in rows.items() if "@" in k[1]]
    if paced:
        out.append("")
        out.append(
            f"Latency at the same offered load (at most {settings.paced_rate:g} req/s: each of "
            f"the {settings.connections} connections waits a random 0 to "
            f"{2 * settings.connections * 1000 / settings.paced_rate:g} ms between requests)"
        )
        header = ["target", "scenario", "req/s", "p50 ms", "p99 ms", "errors", "srv CPU%"]
        header += ["rtr CPU%", "p99 vs crossbar"]
        lines = []
        for (name, scenario), row in paced:
            crossbar = rows.get((CROSSBAR, scenario))
            lines.append(
                [
                    name,
                    scenario,
                    f"{row.rate:.0f}" if row.valid else "INVALID",
                    f"{row.median('p50_ms'):.1f}",
                    f"{row.median('p99_ms'):.1f}",
                    str(sum(s.errors for s in row.samples)),
                    f"{row.median('server_cpu'):.0f}",
                    "-" if name == CROSSBAR else f"{row.median('router_cpu'):.0f}",
                    _ratio(row.median("p99_ms"), crossbar.median("p99_ms"))
                    if crossbar and name != CROSSBAR
                    else "",
                ]
            )
        out.append(_table(header, lines))

    out.append("")
    out.append("Idle RSS (MB, before any load):")
    out.extend(f"  {t.name}: {_mb(t.idle_rss)}{t.notes}" for t in targets)

    invalid = [s for row in rows.values() for s in row.samples if not s.valid]
    if invalid:
        out.append("")
        out.append("Invalid repetitions (left out of the medians):")
        out.extend(
            f"  {s.target} {s.scenario} #{s.repetition + 1}: {s.why_invalid}" for s in invalid
        )
    out.append("")
    out.extend(goals(rows, targets))
    return "\n".join(out)


def goals(rows: dict[tuple[str, str], Row], targets: list[Target]) -> list[str]:
    """The issue's targets for wampweb with its default settings, checked on this run."""
    by_name = {t.name: t for t in targets}
    if DEFAULT_WAMPWEB not in by_name or CROSSBAR not in by_name:
        return []
    lines = [f"Targets for `{DEFAULT_WAMPWEB}` (default settings, one process):"]

    def check(what: str, value: float, limit: float, higher_is_better: bool = True) -> None:
        if not (value == value and limit == limit):
            lines.append(f"  [ n/a ] {what}")
            return
        passed = value >= limit if higher_is_better else value <= limit
        lines.append(f"  [{'PASS' if passed else 'FAIL'}] {what}: {value:.2f} (goal {limit:g})")

    def rate(name: str, scenario: str) -> float:
        row = rows.get((name, scenario))
        return row.rate if row else float("nan")

    def p99(name: str, scenario: str) -> float:
        row = rows.get((name, scenario))
        return row.median("p99_ms") if row else float("nan")

    def throughput(name: str) -> None:
        for scenario, goal in (("publish", 1.25), ("call", 1.15)):
            check(
                f"{scenario} throughput / Crossbar's bridge",
                rate(name, scenario) / rate(CROSSBAR, scenario),
                goal,
            )

    throughput(DEFAULT_WAMPWEB)
    # The latency target is "at the same load": the paced runs. Saturated,
    # each server answers as many as it can, so the loads differ.
    for scenario in sorted({k[1] for k in rows if "@" in k[1]}):
        check(
            f"{scenario} p99 / Crossbar's p99 (same offered load)",
            p99(DEFAULT_WAMPWEB, scenario) / p99(CROSSBAR, scenario),
            1.0,
            higher_is_better=False,
        )
    check(
        "publish throughput / JSON-only Klein ceiling",
        rate(DEFAULT_WAMPWEB, "publish") / rate(CEILING, "publish"),
        0.65,
    )
    if CEILING in by_name:
        check(
            "idle RSS / the Klein ceiling's idle RSS",
            by_name[DEFAULT_WAMPWEB].idle_rss / by_name[CEILING].idle_rss,
            1.0,
            higher_is_better=False,
        )
    for name, target in by_name.items():
        # Not a target: the same comparison inside another environment, e.g.
        # the app's own, where Crossbar (and the NumPy it brings) is not installed.
        label = name.partition("@")[2]
        ceiling = by_name.get(f"{CEILING}@{label}")
        if name.startswith(f"{DEFAULT_WAMPWEB}@") and ceiling is not None:
            lines.append(
                f"  (not a target) idle RSS / the Klein ceiling's, both run by --source {label}: "
                f"{target.idle_rss / ceiling.idle_rss:.2f}x "
                f"({_mb(target.idle_rss)} / {_mb(ceiling.idle_rss)} MB)"
            )
    saturated = [
        f"{scenario} {p99(DEFAULT_WAMPWEB, scenario) / p99(CROSSBAR, scenario):.2f}x "
        f"at {rate(DEFAULT_WAMPWEB, scenario) / rate(CROSSBAR, scenario):.2f}x the requests/s"
        for scenario in ("publish", "call")
        if (DEFAULT_WAMPWEB, scenario) in rows and (CROSSBAR, scenario) in rows
    ]
    if saturated:
        lines.append("  (not a target) p99 / Crossbar's p99, saturated: " + "; ".join(saturated))
    if WEBSOCKET_WAMPWEB in by_name:
        # Not a target: what a router reachable only over WebSocket gets.
        lines.append(f"Same targets for `{WEBSOCKET_WAMPWEB}` (WebSocket + CBOR to the router):")
        throughput(WEBSOCKET_WAMPWEB)
    return lines


def run_context(python: str) -> dict[str, str]:
    def version(module: str) -> str:
        probe = [python, "-c", f"import importlib.metadata as m; print(m.version({module!r}))"]
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        return done.stdout.strip() or "?"

    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).split("Copyright")[0].strip()
    repo = HERE.parent
    git = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count() or 0
    versions = ", ".join(
        f"{name} {version(name)}" for name in ("crossbar", "autobahn", "twisted", "klein")
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cores} cores ({cpu}), Python {platform.python_version()}",
        "versions": f"{versions}, {wrk_version}",
        "wampweb": git.stdout.strip() or "?",
    }


# -- the run -------------------------------------------------------------------------------------


def schedule(
    targets: list[Target], scenarios: list[str], settings: Settings
) -> Iterator[tuple[int, str, Target]]:
    """Every repetition runs every scenario against every target; the order rotates."""
    for repetition in range(settings.repeat):
        for scenario in scenarios:
            eligible = [
                t for t in targets if "@" not in scenario or t.name in settings.paced_targets
            ]
            shift = repetition % len(eligible) if eligible else 0
            for target in eligible[shift:] + eligible[:shift]:
                yield repetition, scenario, target


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default 3, quick 1)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--targets",
        default=None,
        help="comma-separated: crossbar, ceiling-web, ceiling-klein, wampweb, "
        "wampweb[OPTS] with OPTS among ws|rs, cbor|msgpack|json, quiet (--log-level warn), "
        "access (--access-log -), wN (--workers N), wampweb@LABEL[...] for a --source, and "
        "ceiling-klein@LABEL (or ceiling-web@LABEL) for a --source interpreter",
    )
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="for wampweb@LABEL targets: a wampweb source tree (the folder holding wampweb/) "
        "or a Python interpreter (e.g. another virtualenv's) with wampweb installed",
    )
    parser.add_argument(
        "--paced-rate",
        type=float,
        default=None,
        help="offered load (req/s) of the same-load latency runs; 0: none (default 1000)",
    )
    parser.add_argument(
        "--paced-targets",
        default=f"{CROSSBAR},{DEFAULT_WAMPWEB}",
        help="targets of the same-load runs (default: crossbar,wampweb)",
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=25.0,
        help="a run during which other processes used more CPU than this (percent of one "
        "core) is measured again, up to --retries times (default 25)",
    )
    parser.add_argument(
        "--retries", type=int, default=None, help="see --max-other (default 2, quick 0)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each run, wait up to this many seconds for other processes to use "
        "less CPU than --max-other (default 60, quick 0)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every sample as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the logs and configs")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 s per target, 1 repetition, no pacing"
    )
    options = parser.parse_args(argv)
    if options.quick:
        options.duration = min(options.duration, 2.0)
        options.repeat = 1
        options.warmup = 1.0 if options.warmup is None else options.warmup
        options.paced_rate = 0.0 if options.paced_rate is None else options.paced_rate
        options.targets = options.targets or ",".join(QUICK_TARGETS)
        options.retries = 0 if options.retries is None else options.retries
        options.quiet_wait = 0.0 if options.quiet_wait is None else options.quiet_wait
    options.retries = 2 if options.retries is None else options.retries
    options.quiet_wait = 60.0 if options.quiet_wait is None else options.quiet_wait
    options.warmup = 3.0 if options.warmup is None else options.warmup
    options.paced_rate = 1000.0 if options.paced_rate is None else options.paced_rate
    options.default_targets = options.targets is None
    options.targets = options.targets or ",".join(DEFAULT_TARGETS)
    return options


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if shutil.which("wrk") is None:
        sys.stderr.write("benchmarks/run.py needs wrk: apt-get install wrk\n")
        return 2
    names = [n.strip() for n in options.targets.split(",") if n.strip()]
    for name in names:
        if name != CROSSBAR and not _CEILING.fullmatch(name):
            parse_wampweb_target(name)  # refuse a typo before starting anything
    if len(set(names)) != len(names):
        raise BenchError("a target is named twice")
    sources = {}
    for item in options.source:
        label, _, path = item.partition("=")
        tree = (Path(path) / "wampweb" / "__init__.py").is_file()
        if not label or not (tree or (Path(path).is_file() and os.access(path, os.X_OK))):
            raise BenchError(
                f"--source {item!r}: expected LABEL=PATH, PATH a folder holding wampweb/ "
                "or a Python interpreter with wampweb installed"
            )
        sources[label] = Path(path).absolute()
    settings = Settings(
        duration=options.duration,
        warmup=options.warmup,
        connections=options.connections,
        threads=options.threads,
        repeat=options.repeat,
        paced_rate=options.paced_rate,
        paced_targets=tuple(n.strip() for n in options.paced_targets.split(",")),
    )
    # Ctrl-C and SIGTERM end the run through `finally`, even when started in the background.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    python = sys.executable
    script = Path(python).parent / "wampweb"
    wampweb_script = str(script) if script.exists() else (shutil.which("wampweb") or "")
    if not wampweb_script:
        raise BenchError("no `wampweb` script next to this Python nor on PATH")
    helptext = subprocess.run(
        [wampweb_script, "run", "--help"], capture_output=True, text=True, check=False
    ).stdout
    workdir = Path(tempfile.mkdtemp(prefix="wampweb-bench-"))
    supervisor = Supervisor(workdir)
    try:
        context = run_context(python)
        _progress(f"starting the router (files in {workdir})")
        router = start_router(supervisor)
        peers, subscriber_url = start_peers(supervisor, router, python)
        env = Environment(
            supervisor,
            router,
            subscriber_url,
            peers,
            sources,
            python,
            wampweb_script,
            "--workers" in helptext,
        )
        if options.default_targets and not env.workers_supported:
            names = [n for n in names if not re.search(r"[\[+]w\d+[+\]]", n)]
        targets = []
        for name in names:
            _progress(f"starting {name}")
            targets.append(start_target(env, name))
        for target in targets:
            check_target(target, subscriber_url)
        time.sleep(1.0)  # let start-up settle before measuring idle memory
        for target in targets:
            processes = target.server_pids()
            target.idle_rss = rss_bytes(processes)
            if len(processes) > 1:
                parts = " + ".join(_mb(rss_bytes([p])) for p in processes)
                target.notes = f" ({len(processes)} processes: {parts})"

        scenarios = ["publish", "call"]
        if settings.paced_rate > 0:
            scenarios += [f"publish@{settings.paced_rate:g}", f"call@{settings.paced_rate:g}"]
        delay = settings.connections * 1000 / settings.paced_rate if settings.paced_rate else None
        scripts = {
            s: lua_script(workdir, s.split("@")[0], delay if "@" in s else None) for s in scenarios
        }

        def every_pid() -> list[psutil.Process]:
            found = env.router_processes()
            for child in supervisor.children:
                found += process_tree(child.pid)
            return found

        rows: dict[tuple[str, str], Row] = {}
        for scenario in scenarios:
            for target in targets:
                if "@" not in scenario or target.name in settings.paced_targets:
                    rows[(target.name, scenario)] = Row(target.name, scenario)
        plan = list(schedule(targets, scenarios, settings))
        per_run = settings.warmup + settings.duration + 1.5
        _progress(f"{len(plan)} runs, about {len(plan) * per_run / 60:.0f} min")
        for index, (repetition, scenario, target) in enumerate(plan, 1):
            for child in [*peers, *(t.child for t in targets if t.child is not None)]:
                child.check_alive()
            wait_quiet(every_pid, options.max_other, options.quiet_wait)
            sample = measure(env, target, scenario, repetition, settings, scripts, every_pid)
            for _ in range(options.retries):
                if sample.other_cpu <= options.max_other:
                    break
                # Someone else's work shared the machine: the numbers say more about them.
                _progress(f"  {sample.other_cpu:.0f}% CPU used by other processes; measuring again")
                wait_quiet(every_pid, options.max_other, options.quiet_wait)
                sample = measure(env, target, scenario, repetition, settings, scripts, every_pid)
            rows[(target.name, scenario)].samples.append(sample)
            flag = "" if sample.valid else f"  INVALID: {sample.why_invalid}"
            _progress(
                f"{index}/{len(plan)} rep {repetition + 1} {scenario:<14} {target.name:<28} "
                f"{sample.rate:7.0f} req/s  p99 {sample.p99_ms:6.1f} ms  "
                f"srv {sample.server_cpu:3.0f}% rtr {sample.router_cpu:3.0f}% "
                f"other {sample.other_cpu:3.0f}%{flag}"
            )
        text = report(rows, targets, env, settings, context)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        if options.json:
            dump = {
                "context": context,
                "settings": settings.__dict__,
                "idle_rss": {t.name: t.idle_rss for t in targets},
                "samples": [s.__dict__ for row in rows.values() for s in row.samples],
            }
            Path(options.json).write_text(json.dumps(dump, indent=2))
        return 0
    except BenchError as error:
        sys.stderr.write(f"benchmark failed: {error}\n")
        return 1
    finally:
        _progress("stopping every process")
        supervisor.stop_all()
        if options.keep:
            _progress(f"logs and configs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        sys.stderr.write(f"benchmark failed: {error}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
