"""
``wampweb run --workers N``: several processes serving one listening port.

One Python process uses one core. With more cores, the parent binds the
port once and starts N ``wampweb run`` workers that adopt the same socket,
so the kernel spreads connections among them; each worker has its own WAMP
sessions (wampweb processes are stateless). The parent starts nothing else
but the embedded router, when one is wanted, and it forwards SIGTERM/SIGINT
to the workers. If a worker dies, the parent stops the rest and exits
non-zero, so the process supervisor above restarts the whole group.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TextIO

from wampweb._errors import ConfigError

_TCP = re.compile(r"^tcp:(?:port=)?(\d+)(?::interface=([^:]+|\[[0-9a-fA-F:.]+\]))?$")


def parse_tcp_listen(listen: str) -> tuple[str, int]:
    """``tcp:PORT[:interface=ADDR]`` as (host, port): the one form workers can share."""
    match = _TCP.match(listen)
    if match is None:
        raise ConfigError(
            f"--workers needs a plain TCP listener like 'tcp:8090:interface=127.0.0.1', "
            f"not {listen!r}",
            key="--listen",
        )
    host = (match.group(2) or "0.0.0.0").strip("[]")
    return host, int(match.group(1))


def bind(host: str, port: int) -> socket.socket:
    """The shared listening socket, inheritable by the workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def supervise(
    count: int,
    worker_args: Sequence[str],
    sock: socket.socket,
    *,
    on_ready: Callable[[], None] | None = None,
    err: TextIO = sys.stderr,
) -> int:
    """Run ``count`` workers on ``sock`` until a signal or a worker's death; their exit code."""
    fd = sock.fileno()
    command = [sys.executable, "-m", "wampweb", "run", *worker_args, "--listen-fd", str(fd)]
    workers = [subprocess.Popen(command, pass_fds=[fd]) for _ in range(count)]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_ready is not None:
            on_ready()
        while not stopping:
            ended = [w for w in workers if w.poll() is not None]
            if ended:
                err.write(
                    f"wampweb: worker {ended[0].pid} exited with {ended[0].returncode}; "
                    "stopping the others\n"
                )
                stop(signal.SIGTERM, None)
                break
            time.sleep(0.2)
        codes = [_wait(worker) for worker in workers]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    # A worker told to stop before its reactor took over SIGTERM (still
    # starting) dies of the signal: that is the stop we asked for, not a failure.
    failed = [code for code in codes if code not in (0, -signal.SIGTERM)]
    return failed[0] if failed else 0


def _wait(worker: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    try:
        return worker.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        return 1


def worker_count(value: str) -> int:
    """argparse type for ``--workers``: 1 up to a sane bound (default: one per core)."""
    if value == "auto":
        return os.cpu_count() or 1
    count = int(value)
    if not 1 <= count <= 256:
        raise ValueError(value)
    return count
