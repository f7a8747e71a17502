"""
A real Crossbar.io router, run as a child process, for ``wampweb run`` and for tests.

wampweb does not ship a router of its own: behaviour seen against the embedded router is the
behaviour users get from a production Crossbar.io. The price is a child process tree that must
never outlive us and never hold a port after we are done with it:

- ``crossbar start`` runs a node controller which spawns a router worker. Both are put in a
  session (and process group) of their own, and every signal goes to the whole group: killing
  only the controller would leave the worker listening on the port.
- Ports are picked on 127.0.0.1 by the kernel and kept across restarts, so clients configured
  with :attr:`EmbeddedRouter.url` reconnect to the restarted router.
- The child's output goes to a log file in the router's own directory, never to the user's
  terminal; the end of that log is put into :class:`~wampweb._errors.RouterStartError` when the
  router fails to start.

Importing this module installs no reactor: the one asynchronous method takes it as an argument.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NoReturn, Self

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger

from wampweb._errors import RouterStartError
from wampweb._ports import LOOPBACK, free_ports

__all__ = ["EmbeddedRouter"]

_log = Logger(namespace="wampweb.router")

#: How often readiness is probed: Crossbar.io takes seconds to start, so 50 ms costs nothing.
_POLL_INTERVAL: Final = 0.05
#: How long one probe may wait for a TCP handshake on loopback before it counts as "not yet".
_PROBE_TIMEOUT: Final = 1.0
#: How long to wait for the processes of a signalled group to disappear.
_GROUP_EXIT_BOUND: Final = 5.0
#: How much of the child's output a RouterStartError carries.
_LOG_TAIL_LINES: Final = 40
#: The most of the log read back for an error message, so a huge log is never read whole.
_LOG_TAIL_BYTES: Final = 256 * 1024
_INSTALL_HINT: Final = "install it with: pip install 'wampweb[router]'"
_SERIALIZERS: Final = ("cbor", "msgpack", "json")
_WEBSOCKET_PATH: Final = "ws"
_LOG_NAME: Final = "node.log"

# Twisted says: "Couldn't listen on 127.0.0.1:18088: [Errno 98] Address already in use."
_CANNOT_LISTEN: Final = re.compile(
    r"listen on [^\s:]*:(?P<port>\d+)\b[^\n]*address already in use", re.IGNORECASE
)
_ADDRESS_IN_USE: Final = re.compile(r"address already in use", re.IGNORECASE)


def _validate_extra_paths(
    _instance: object, _attribute: attrs.Attribute[dict[str, dict[str, Any]]], value: object
) -> None:
    if not isinstance(value, dict):
        raise TypeError(f"extra_paths must be a dict of path -> Crossbar.io service, got {value!r}")
    for path, service in value.items():
        if not isinstance(path, str) or not isinstance(service, dict):
            raise TypeError(
                f"extra_paths maps a path (str) to a Crossbar.io web service (dict), "
                f"got {path!r}: {service!r}"
            )
        if path == _WEBSOCKET_PATH:
            raise ValueError(
                f"extra_paths may not replace {_WEBSOCKET_PATH!r}: it is the WAMP WebSocket "
                f"endpoint that EmbeddedRouter.url points at"
            )


@attrs.define
class EmbeddedRouter:
    """
    One Crossbar.io node on loopback: a single realm open to anonymous clients, reachable over
    WebSocket (:attr:`url`) and RawSocket (:attr:`rawsocket_url`).

    The first :meth:`start` picks the ports (unless given) and a directory of its own; both are
    kept until :meth:`close`, so restarts come back on the same URLs. Every method that ends the
    router is idempotent and safe on a router that never started.
    """

    #: The realm anonymous clients may join, with every action allowed.
    realm: str = "realm1"
    #: WebSocket (web transport) port; ``None`` picks a free one on first use.
    _port: int | None = attrs.field(default=None, alias="port")
    #: Further Crossbar.io web services mounted next to ``ws`` on the web transport,
    #: e.g. ``{"publish": {"type": "publisher", "realm": "realm1", "role": "anonymous"}}``.
    extra_paths: dict[str, dict[str, Any]] = attrs.field(
        factory=dict, validator=_validate_extra_paths
    )
    #: RawSocket transport port; ``None`` picks a free one on first use.
    _rawsocket_port: int | None = attrs.field(default=None, alias="rawsocket_port")
    #: The ``crossbar`` script to run; ``None`` looks next to ``sys.executable``, then on PATH.
    executable: str | os.PathLike[str] | None = None
    #: Crossbar.io's ``--loglevel`` for the log file.
    loglevel: str = "info"

    _process: subprocess.Popen[bytes] | None = attrs.field(default=None, init=False, repr=False)
    _cbdir: Path | None = attrs.field(default=None, init=False, repr=False)
    _picked: set[str] = attrs.field(factory=set, init=False, repr=False)
    _ever_ready: bool = attrs.field(default=False, init=False, repr=False)
    _retry_allowed: bool = attrs.field(default=False, init=False, repr=False)
    _log_offset: int = attrs.field(default=0, init=False, repr=False)
    _closed: bool = attrs.field(default=False, init=False, repr=False)
    _exit_status: int | None = attrs.field(default=None, init=False, repr=False)

    # -- where to find it ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The WebSocket port; asking for it before the first start already fixes it."""
        if self._port is None:
            self._pick_ports()
        assert self._port is not None
        return self._port

    @property
    def rawsocket_port(self) -> int:
        """The RawSocket port; asking for it before the first start already fixes it."""
        if self._rawsocket_port is None:
            self._pick_ports()
        assert self._rawsocket_port is not None
        return self._rawsocket_port

    @property
    def url(self) -> str:
        """The WAMP-over-WebSocket URL clients connect to."""
        return f"ws://{LOOPBACK}:{self.port}/{_WEBSOCKET_PATH}"

    @property
    def http_url(self) -> str:
        """The base URL of the web transport, under which :attr:`extra_paths` are mounted."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def rawsocket_url(self) -> str:
        """The WAMP-over-RawSocket URL clients connect to."""
        return f"rs://{LOOPBACK}:{self.rawsocket_port}"

    @property
    def running(self) -> bool:
        """Whether the node controller is alive (not whether it is ready yet)."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The node controller's pid, which is also the process group of the whole node."""
        return self._process.pid if self._process is not None else None

    @property
    def exit_status(self) -> int | None:
        """
        How the last node controller ended (negative: killed by that signal), so a caller
        can tell a clean stop from a crash; None while running or before the first start.
        """
        return self._exit_status

    @property
    def cbdir(self) -> Path | None:
        """The Crossbar.io node directory, created by the first start, removed by close()."""
        return self._cbdir

    @property
    def log_path(self) -> Path | None:
        """Where the child's output goes; it accumulates across restarts until close()."""
        return self._cbdir / _LOG_NAME if self._cbdir is not None else None

    def crossbar_config(self) -> dict[str, Any]:
        """The ``config.json`` the next start writes (picking the ports if not done yet)."""
        everything = {"call": True, "register": True, "publish": True, "subscribe": True}
        role = {
            "name": "anonymous",
            "permissions": [
                {
                    "uri": "",
                    "match": "prefix",
                    "allow": everything,
                    "disclose": {"caller": True, "publisher": True},
                    "cache": True,
                }
            ],
        }
        paths: dict[str, Any] = {
            _WEBSOCKET_PATH: {"type": "websocket", "serializers": list(_SERIALIZERS)},
            **self.extra_paths,
        }
        # Crossbar.io starts transports in this order, each web path right after its
        # transport listens: RawSocket accepting connections means everything is up.
        transports = [
            {
                "type": "web",
                "endpoint": {"type": "tcp", "interface": LOOPBACK, "port": self.port},
                "paths": paths,
            },
            {
                "type": "rawsocket",
                "endpoint": {"type": "tcp", "interface": LOOPBACK, "port": self.rawsocket_port},
                "serializers": list(_SERIALIZERS),
            },
        ]
        return {
            "version": 2,
            "controller": {},
            "workers": [
                {
                    "type": "router",
                    "realms": [{"name": self.realm, "roles": [role]}],
                    "transports": transports,
                }
            ],
        }

    # -- starting --------------------------------------------------------------------------

    def start(self) -> None:
        """
        Spawn the node and return at once; wait with :meth:`wait_ready_blocking` or
        :meth:`wait_ready`. Does nothing if the node is already running.
        """
        if self._closed:
            raise RouterStartError("this EmbeddedRouter was closed; create a new one")
        if self.running:
            return
        if self._process is not None:
            # It died on its own (or was killed outside our control): collect what is left.
            self._end(signal.SIGKILL, timeout=0.0)
        executable = self._find_executable()
        self._pick_ports()
        self._check_ports_unused()
        # Retrying on other ports is only honest while nobody has seen a ready router on
        # these ones; after that, clients expect the restart on the same URL.
        self._retry_allowed = bool(self._picked) and not self._ever_ready
        self._spawn(executable)

    def wait_ready_blocking(self, timeout: float = 30.0) -> None:
        """
        Block until the router accepts connections, for fixtures and scripts that run before
        any reactor does. Never call it from inside a running reactor: use :meth:`wait_ready`.

        :raises RouterStartError: the node exited or was not ready within ``timeout``
            seconds; it is killed first, and the error carries the end of its log.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if all(_accepts_blocking(port) for port in self._probe_ports()):
                self._ever_ready = True
                return
            if time.monotonic() >= deadline:
                self._give_up(f"was not ready within {timeout:g} s")
            time.sleep(_POLL_INTERVAL)

    def wait_ready(self, reactor: IReactorTime, timeout: float = 30.0) -> Deferred[None]:
        """
        Like :meth:`wait_ready_blocking`, for code running inside the reactor: the probes are
        non-blocking TCP connects scheduled with ``reactor`` (which must also provide
        ``IReactorTCP``). The Deferred fails with :class:`RouterStartError`.
        """
        return Deferred.fromCoroutine(self._wait_ready(reactor, timeout))

    async def _wait_ready(self, reactor: IReactorTime, timeout: float) -> None:
        deadline = reactor.seconds() + timeout
        while True:
            self._check_alive()
            ready = True
            for port in self._probe_ports():
                if not await _accepts(reactor, port):
                    ready = False
                    break
            if ready:
                self._ever_ready = True
                return
            if reactor.seconds() >= deadline:
                self._give_up(f"was not ready within {timeout:g} s")
            await deferLater(reactor, _POLL_INTERVAL, lambda: None)

    # -- ending ----------------------------------------------------------------------------

    def kill(self) -> None:
        """
        SIGKILL the whole node at once, as a crash would, and reap it; the ports are free
        when this returns. Clients see their connections drop without a GOODBYE.
        """
        if self._process is not None:
            self._end(signal.SIGKILL, timeout=0.0)

    def stop(self, timeout: float = 10.0) -> None:
        """
        Ask the node to shut down (SIGTERM to the group), and SIGKILL whatever is still
        there after ``timeout`` seconds. This blocks the caller, inside a reactor too; a
        Crossbar.io node usually takes about half a second.
        """
        if self._process is not None:
            self._end(signal.SIGTERM, timeout=timeout)

    def restart(self, *, graceful: bool = True) -> None:
        """
        Stop (or, with ``graceful=False``, kill) and start again on the same ports. Like
        :meth:`start`, this does not wait for the router to be ready.
        """
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    def close(self) -> None:
        """Stop the node for good and remove its directory (and so its log)."""
        self.stop()
        if self._cbdir is not None:
            shutil.rmtree(self._cbdir, ignore_errors=True)
            _LIVE_DIRS.discard(self._cbdir)
            self._cbdir = None
        self._closed = True

    def __enter__(self) -> Self:
        """Start and wait until ready: the ``with`` body gets a usable router."""
        try:
            self.start()
            self.wait_ready_blocking()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _pick_ports(self) -> None:
        missing = [
            name
            for name, port in (("port", self._port), ("rawsocket_port", self._rawsocket_port))
            if port is None
        ]
        taken = {self._port, self._rawsocket_port}
        while missing:
            port = free_ports(1)[0]
            if port not in taken:
                taken.add(port)
                name = missing.pop(0)
                setattr(self, f"_{name}", port)
                self._picked.add(name)

    def _check_ports_unused(self) -> None:
        """
        Refuse ports that already accept connections: the readiness probe would take whoever
        listens there for our router. Ports we picked are simply picked again.
        """
        for name in ("port", "rawsocket_port"):
            port = getattr(self, f"_{name}")
            if not _accepts_blocking(port):
                continue
            if name in self._picked and not self._ever_ready:
                setattr(self, f"_{name}", None)
                self._pick_ports()
                continue
            raise RouterStartError(
                f"cannot start the embedded Crossbar.io router: {LOOPBACK}:{port} "
                f"({name}) already accepts connections from another process"
            )

    def _find_executable(self) -> str:
        if self.executable is not None:
            return os.fspath(self.executable)
        beside = Path(sys.executable).parent / "crossbar"
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        found = shutil.which("crossbar")
        if found is not None:
            return found
        raise RouterStartError(
            f"Crossbar.io is not installed: there is no 'crossbar' script next to "
            f"{sys.executable} nor on PATH, and the embedded router needs it; {_INSTALL_HINT}"
        )

    def _spawn(self, executable: str) -> None:
        if self._cbdir is None:
            self._cbdir = Path(tempfile.mkdtemp(prefix="wampweb-router-"))
            _LIVE_DIRS.add(self._cbdir)
        cbdir = self._cbdir
        (cbdir / "config.json").write_text(json.dumps(self.crossbar_config(), indent=2))
        # A pid file left by a killed node makes Crossbar.io refuse to start (or crash, when
        # the pid is a zombie): this directory is ours alone, so the file is always stale.
        (cbdir / "node.pid").unlink(missing_ok=True)
        argv = [
            executable,
            "start",
            "--cbdir",
            str(cbdir),
            "--color",
            "false",
            "--loglevel",
            self.loglevel,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with (cbdir / _LOG_NAME).open("ab") as log:
            log.write(f"--- wampweb: {' '.join(argv)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            try:
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=cbdir,
                    env=env,
                    close_fds=True,
                    start_new_session=True,
                )
            except OSError as e:
                raise RouterStartError(
                    f"cannot run Crossbar.io as {executable!r}: {e.strerror or e}; "
                    f"is it installed? {_INSTALL_HINT}"
                ) from e
        self._process = process
        self._exit_status = None
        _LIVE_GROUPS.add(process.pid)
        _install_safety_net()
        _log.debug(
            "started Crossbar.io (pid {pid}) on {url} and {rawsocket_url}",
            pid=process.pid,
            url=self.url,
            rawsocket_url=self.rawsocket_url,
        )

    def _probe_ports(self) -> tuple[int, int]:
        # RawSocket last: it is the last thing Crossbar.io starts (see crossbar_config).
        return (self.port, self.rawsocket_port)

    def _check_alive(self) -> None:
        process = self._process
        if process is None:
            raise RouterStartError("the embedded router is not running; call start() first")
        status = process.poll()
        if status is None:
            return
        port_in_use = self._port_in_use(self._read_log())
        ours = {getattr(self, f"_{name}") for name in self._picked}
        if self._retry_allowed and (port_in_use == 0 or port_in_use in ours):
            self._retry_allowed = False
            _log.info(
                "port {port} was taken before Crossbar.io could listen; retrying on new ports",
                port=port_in_use or "?",
            )
            self._end(signal.SIGKILL, timeout=0.0)
            for name in self._picked:
                setattr(self, f"_{name}", None)
            self._picked.clear()
            self._pick_ports()
            self._spawn(self._find_executable())
            return
        reason = f"exited with status {status} before it was ready"
        if port_in_use is not None:
            reason += f" (port {port_in_use or '?'} is already in use)"
        self._give_up(reason)

    @staticmethod
    def _port_in_use(output: str) -> int | None:
        """The port Crossbar.io found taken (0 if its log does not say which), or None."""
        named = _CANNOT_LISTEN.search(output)
        if named is not None:
            return int(named["port"])
        return 0 if _ADDRESS_IN_USE.search(output) else None

    def _give_up(self, reason: str) -> NoReturn:
        self._end(signal.SIGKILL, timeout=0.0)
        lines = self._read_log().splitlines()[-_LOG_TAIL_LINES:]
        tail = "\n".join(lines) if lines else "(it wrote nothing)"
        raise RouterStartError(
            f"the embedded Crossbar.io router on {self.url} {reason}; "
            f"log: {self.log_path}; its last {len(lines)} lines:\n{tail}"
        )

    def _read_log(self) -> str:
        """This start's output so far (the log holds every start since the first)."""
        if self.log_path is None:
            return ""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _LOG_TAIL_BYTES))
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _end(self, first_signal: signal.Signals, timeout: float) -> None:
        """
        Signal the node's process group, wait up to ``timeout`` for the controller, then
        SIGKILL whatever is left and wait (bounded) for every process of the group to go.
        """
        process = self._process
        if process is None:
            return
        group = process.pid
        deadline = time.monotonic() + timeout
        if process.poll() is None:
            _signal_group(group, first_signal)
            try:
                process.wait(timeout=None if first_signal == signal.SIGKILL else timeout)
            except subprocess.TimeoutExpired:
                _log.warn(
                    "Crossbar.io (pid {pid}) did not stop within {timeout} s; killing it",
                    pid=group,
                    timeout=timeout,
                )
        # The controller may be gone while its worker still holds the ports.
        if not _group_gone_within(group, max(0.0, deadline - time.monotonic())):
            _signal_group(group, signal.SIGKILL)
            process.wait()
            if not _group_gone_within(group, _GROUP_EXIT_BOUND):
                _log.warn(
                    "process group {group} still exists {bound} s after SIGKILL "
                    "(zombies left to a parent that does not reap?)",
                    group=group,
                    bound=_GROUP_EXIT_BOUND,
                )
        _LIVE_GROUPS.discard(group)
        self._exit_status = process.returncode
        self._process = None


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_gone_within(group: int, bound: float) -> bool:
    """
    Wait until no live process of ``group`` is left, at most ``bound`` seconds.

    A killed worker is reparented to init and stays a zombie until init reaps it, which may
    take a second or more; a zombie holds no port and runs no code, so it does not count.
    """
    deadline = time.monotonic() + bound
    while True:
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return True
        if _has_live_member(group) is False:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def _has_live_member(group: int) -> bool | None:
    """Whether a process of ``group`` exists that is not a zombie; None where /proc is absent."""
    try:
        entries = os.scandir("/proc")
    except OSError:
        return None
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(os.path.join(entry.path, "stat"), "rb") as stat_file:
                    stat = stat_file.read()
            except OSError:
                continue  # it ended while we looked
            # "pid (comm) state ppid pgrp ... num_threads ...": comm may hold spaces and
            # parentheses, so count from its closing one.
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) < 18 or int(fields[2]) != group:
                continue
            # A killed multi-threaded process shows its main thread as a zombie while its
            # other threads are still exiting, and those may still hold the sockets.
            if fields[0] not in (b"Z", b"X") or int(fields[17]) > 1:
                return True
    return False


def _accepts_blocking(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=_PROBE_TIMEOUT):
            return True
    except OSError:
        return False


class _ProbeFactory(Factory):
    """Makes the probe's one protocol, without Twisted's start/stop log line per connection."""

    noisy = False
    protocol = Protocol


async def _accepts(reactor: IReactorTime, port: int) -> bool:
    endpoint = TCP4ClientEndpoint(IReactorTCP(reactor), LOOPBACK, port, timeout=_PROBE_TIMEOUT)
    try:
        protocol: Any = await endpoint.connect(_ProbeFactory())
    except ConnectError:
        return False
    if protocol.transport is not None:
        protocol.transport.loseConnection()
    return True


# -- the safety net: nothing outlives the interpreter that started it -------------------------

_LIVE_GROUPS: set[int] = set()
_LIVE_DIRS: set[Path] = set()


def _kill_leftovers() -> None:
    """At interpreter exit, SIGKILL every node nobody closed and remove its directory."""
    for group in list(_LIVE_GROUPS):
        _signal_group(group, signal.SIGKILL)
    _LIVE_GROUPS.clear()
    for path in list(_LIVE_DIRS):
        shutil.rmtree(path, ignore_errors=True)
    _LIVE_DIRS.clear()


@functools.cache
def _install_safety_net() -> None:
    # Registered on the first spawn, not at import: importing wampweb has no side effects.
    atexit.register(_kill_leftovers)
