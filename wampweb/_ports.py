"""
Loopback port numbers nobody is using right now.

Tests and the embedded router run side by side (several pytest workers, several routers per
run), so a fixed port would make them fight. Asking the kernel for an ephemeral port and handing
the number on leaves a small race (someone else may bind it before we do); callers that care
detect "address in use" and retry.
"""

from __future__ import annotations

import contextlib
import socket

__all__ = ["LOOPBACK", "free_port", "free_ports"]

#: The only interface wampweb binds on its own initiative.
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """
    Return ``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    All sockets stay bound until every number is known: closing one before asking for the next
    would let the kernel hand out the same number twice.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count!r}")
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports
