"""flush_now puts a transport's buffered bytes on the wire at once, and only when safe."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor

from wampweb._flush import flush_now


@pytest.fixture
def pair() -> Iterator[tuple[tcp.Connection, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    connection = tcp.Connection(ours, Protocol(), MemoryReactor())  # type: ignore[no-untyped-call]
    connection.connected = True
    yield connection, theirs
    ours.close()
    theirs.close()


def received(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


class Holder:
    """A protocol (or TLS wrapper) as far as flush_now cares: something with a transport."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport


def test_buffered_bytes_leave_without_waiting_for_the_reactor(
    pair: tuple[tcp.Connection, socket.socket],
) -> None:
    connection, peer = pair
    connection.write(b"one message")
    assert received(peer) == b"", "Twisted only buffers on write()"
    flush_now(Holder(connection))
    assert received(peer) == b"one message"
    assert connection._tempDataLen == 0
    assert connection.dataBuffer == b""


def test_it_looks_through_wrappers_to_the_socket(
    pair: tuple[tcp.Connection, socket.socket],
) -> None:
    connection, peer = pair
    connection.write(b"wrapped")
    flush_now(Holder(Holder(connection)))
    assert received(peer) == b"wrapped"


def test_a_closing_connection_is_left_to_the_reactor(
    pair: tuple[tcp.Connection, socket.socket],
) -> None:
    connection, peer = pair
    connection.write(b"last words")
    connection.disconnecting = True  # loseConnection() was called: the reactor closes it
    flush_now(Holder(connection))
    assert received(peer) == b""
    assert connection._tempDataLen == len(b"last words")


def test_nothing_buffered_means_no_write(pair: tuple[tcp.Connection, socket.socket]) -> None:
    connection, _ = pair
    calls: list[None] = []
    connection.doWrite = lambda: calls.append(None)  # type: ignore[method-assign]
    flush_now(Holder(connection))
    assert calls == []


@pytest.mark.parametrize("protocol", [None, object(), Holder(None), Holder(object())])
def test_anything_without_a_socket_is_ignored(protocol: object) -> None:
    flush_now(protocol)
