"""
The network pieces of ``benchmarks/faults.py``, all on 127.0.0.1.

- :class:`CutProxy`: a TCP proxy between wampweb and the router that can cut
  every link (both sockets closed, new connections refused), black-hole them
  (sockets kept open, nothing forwarded), and restore; it can also read the
  RawSocket + msgpack stream going through it and note each WAMP message type
  (to see a GOODBYE with one's own eyes).
- :class:`Upload`: one HTTP request announcing a huge body, which then streams
  it (or, with ``Expect: 100-continue``, waits to be invited), noting when the
  answer came and how much body had been sent by then.
- :class:`SlowHeaders`: one connection that sends its request headers a byte
  at a time, noting when and how the server closed it.

Nothing here runs at import; every class takes the reactor it works with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IListeningPort, IPullProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

LOOPBACK = "127.0.0.1"

#: WAMP message type codes the sniffer names.
WAMP_TYPES = {
    1: "HELLO",
    2: "WELCOME",
    3: "ABORT",
    6: "GOODBYE",
    8: "ERROR",
    16: "PUBLISH",
    17: "PUBLISHED",
    48: "CALL",
    50: "RESULT",
}


# -- the proxy ---------------------------------------------------------------------------


@attrs.define(eq=False)
class WampNote:
    """One WAMP message seen by the sniffer."""

    at: float
    direction: str  # "up" (client → router) or "down"
    kind: str
    message: list[Any]


class RawSocketSniffer:
    """Reads a RawSocket + msgpack byte stream: a 4-byte handshake, then length-prefixed frames."""

    def __init__(
        self, direction: str, notes: list[WampNote], events: set[int] | None = None
    ) -> None:
        self.direction = direction
        self.notes = notes
        #: The first argument of every EVENT seen (when given a set to fill).
        self.events = events
        self._buffer = b""
        self._handshaken = False

    def feed(self, data: bytes) -> None:
        import msgpack

        self._buffer += data
        if not self._handshaken:
            if len(self._buffer) < 4:
                return
            self._buffer = self._buffer[4:]
            self._handshaken = True
        while len(self._buffer) >= 4:
            header = self._buffer[:4]
            length = int.from_bytes(header[1:4], "big")
            if len(self._buffer) < 4 + length:
                return
            payload, self._buffer = self._buffer[4 : 4 + length], self._buffer[4 + length :]
            if header[0] & 0x07:  # a RawSocket PING/PONG, not a WAMP message
                continue
            try:
                message = msgpack.unpackb(payload, raw=False)
            except Exception:
                continue
            if isinstance(message, list) and message and isinstance(message[0], int):
                if message[0] == 36 and self.events is not None:  # EVENT: note its first arg
                    args = message[4] if len(message) > 4 else []
                    if args and isinstance(args[0], int):
                        self.events.add(args[0])
                    continue
                kind = WAMP_TYPES.get(message[0], str(message[0]))
                # Only the rare kinds are kept whole; the hot ones would cost memory.
                kept = message if kind in ("WELCOME", "GOODBYE", "ABORT") else []
                self.notes.append(WampNote(time.monotonic(), self.direction, kind, kept))


class _Side(Protocol):
    """One end of a proxied pair (the accepted one, or the one to the target)."""

    pair: _Pair
    is_client_side: bool

    def dataReceived(self, data: bytes) -> None:
        self.pair.forward(self, data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.pair.lost(self)


@attrs.define(eq=False)
class _Pair:
    proxy: CutProxy
    front: _Side
    back: _Side | None = None
    pending: list[bytes] = attrs.field(factory=list)
    silent: bool = False
    closed: bool = False
    up_sniffer: RawSocketSniffer | None = None
    down_sniffer: RawSocketSniffer | None = None

    def forward(self, side: _Side, data: bytes) -> None:
        if self.silent or self.closed:
            self.proxy.dropped_bytes += len(data)
            return
        if side is self.front:
            if self.up_sniffer is not None:
                self.up_sniffer.feed(data)
            if self.back is None:
                self.pending.append(data)
            elif self.back.transport is not None:
                self.back.transport.write(data)
        else:
            if self.down_sniffer is not None:
                self.down_sniffer.feed(data)
            if self.front.transport is not None:
                self.front.transport.write(data)

    def connected(self, back: _Side) -> None:
        self.back = back
        if self.closed:
            self.abort()
            return
        if back.transport is not None:
            for data in self.pending:
                back.transport.write(data)
        self.pending.clear()

    def lost(self, side: _Side) -> None:
        if self.closed:
            return
        if self.silent:
            return  # a black hole does not tell the other side either
        self.closed = True
        other = self.back if side is self.front else self.front
        if other is not None and other.transport is not None:
            other.transport.loseConnection()
        self.proxy.pairs.discard(self)

    def abort(self) -> None:
        self.closed = True
        for side in (self.front, self.back):
            if side is not None and side.transport is not None:
                side.transport.abortConnection()
        self.proxy.pairs.discard(self)


class _FrontFactory(Factory):
    def __init__(self, proxy: CutProxy) -> None:
        self.proxy = proxy

    def buildProtocol(self, addr: Any) -> _Side:
        side = _Side()
        side.is_client_side = True
        side.pair = self.proxy._new_pair(side)
        return side


class CutProxy:
    """
    A TCP proxy on 127.0.0.1 to ``target_port`` that can cut, black-hole and
    restore every link through it. ``sniff`` reads RawSocket + msgpack WAMP
    messages going through (into :attr:`notes`).
    """

    def __init__(self, reactor: Any, target_port: int, *, sniff: bool = False) -> None:
        self.reactor = reactor
        self.target_port = target_port
        self.sniff = sniff
        self.port = 0
        self.pairs: set[_Pair] = set()
        self.notes: list[WampNote] = []
        #: The first argument of every EVENT that came down from the router.
        self.events: set[int] = set()
        self.accepted = 0
        self.dropped_bytes = 0
        self.blackholed = False
        self._listening: IListeningPort | None = None

    async def listen(self) -> int:
        """Listen (again, on the same port after a cut) and return the port."""
        endpoint = TCP4ServerEndpoint(self.reactor, self.port, interface=LOOPBACK)
        self._listening = await endpoint.listen(_FrontFactory(self))
        self.port = self._listening.getHost().port
        return self.port

    def _new_pair(self, front: _Side) -> _Pair:
        self.accepted += 1
        pair = _Pair(self, front, silent=self.blackholed)
        if self.sniff:
            pair.up_sniffer = RawSocketSniffer("up", self.notes)
            pair.down_sniffer = RawSocketSniffer("down", self.notes, self.events)
        self.pairs.add(pair)
        back = _Side()
        back.is_client_side = False
        back.pair = pair
        endpoint = TCP4ClientEndpoint(self.reactor, LOOPBACK, self.target_port, timeout=5)
        connecting = connectProtocol(endpoint, back)

        def failed(_: Failure) -> None:
            pair.abort()

        connecting.addCallbacks(lambda _: pair.connected(back), failed)
        return pair

    async def cut(self) -> None:
        """Close every link (both sides, at once) and refuse new connections."""
        listening, self._listening = self._listening, None
        if listening is not None:
            await listening.stopListening()
        for pair in list(self.pairs):
            pair.abort()

    async def restore(self) -> None:
        """Accept and forward again, on the same port."""
        if self._listening is None:
            await self.listen()

    def blackhole(self) -> None:
        """Stop forwarding anything, in both directions, keeping every socket open."""
        self.blackholed = True
        for pair in self.pairs:
            pair.silent = True

    def heal(self) -> None:
        """End the black hole: links it swallowed are closed, new ones are forwarded."""
        self.blackholed = False
        for pair in list(self.pairs):
            if pair.silent:
                pair.silent = False
                pair.abort()

    async def close(self) -> None:
        await self.cut()

    def messages(self, kind: str, direction: str | None = None) -> list[WampNote]:
        return [
            n
            for n in self.notes
            if n.kind == kind and (direction is None or n.direction == direction)
        ]


# -- clients that misbehave ----------------------------------------------------------------


@implementer(IPullProducer)
class _BodyProducer:
    def __init__(self, upload: Upload) -> None:
        self.upload = upload

    def resumeProducing(self) -> None:
        self.upload.send_chunk()

    def stopProducing(self) -> None:
        self.upload.stopped = True


@implementer(IHalfCloseableProtocol)
class Upload(Protocol):
    """
    ``POST path`` announcing ``length`` bytes of body, sent once :meth:`go` is
    called (so that many uploads can start at the same moment). Without
    ``expect`` the body streams at once, as fast as the socket takes it, and
    goes on after the answer until the server closes the connection (a client
    that does not listen); with it, only after a ``100 Continue``. Fires
    :attr:`done` when the connection is closed.
    """

    CHUNK = 64 * 1024

    def __init__(self, path: str, length: int, *, expect: bool, clock: Callable[[], float]) -> None:
        self.path = path
        self.length = length
        self.expect = expect
        self.clock = clock
        self.started = 0.0
        self.answered_at: float | None = None
        self.status: int | None = None
        self.got_continue = False
        self.sent_body = 0
        self.sent_at_answer: int | None = None
        self.stopped = False
        self.server_done_writing_at: float | None = None
        self.closed_at: float | None = None
        self.done: Deferred[None] = Deferred()
        self._received = b""
        self._chunk = b"\0" * self.CHUNK

    def go(self) -> None:
        if self.transport is None or self.closed_at is not None:
            return
        self.started = self.clock()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {self.length}\r\n"
        )
        if self.expect:
            head += "Expect: 100-continue\r\n"
        self.transport.write((head + "\r\n").encode())
        if not self.expect:
            self._start_body()

    def _start_body(self) -> None:
        assert self.transport is not None
        self.transport.registerProducer(_BodyProducer(self), False)

    def send_chunk(self) -> None:
        if self.stopped or self.transport is None or self.sent_body >= self.length:
            return
        size = min(self.CHUNK, self.length - self.sent_body)
        self.transport.write(self._chunk[:size])
        self.sent_body += size

    def dataReceived(self, data: bytes) -> None:
        self._received += data
        while b"\r\n\r\n" in self._received and self.status is None:
            head, _, rest = self._received.partition(b"\r\n\r\n")
            status_line = head.split(b"\r\n", 1)[0]
            parts = status_line.split(b" ", 2)
            code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
            if code == 100:
                self.got_continue = True
                self._received = rest
                if self.expect:
                    self._start_body()
                continue
            self.status = code
            self.answered_at = self.clock()
            self.sent_at_answer = self.sent_body
            self._received = b""

    def readConnectionLost(self) -> None:
        """The server closed its side. A streaming upload goes on until it hangs up."""
        self.server_done_writing_at = self.clock()
        if self.expect and self.transport is not None:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.stopped = True

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.stopped = True
        self.closed_at = self.clock()
        if not self.done.called:
            self.done.callback(None)


class SlowHeaders(Protocol):
    """Sends a request line, then its headers one byte every ``interval`` seconds, for ever."""

    def __init__(self, reactor: Any, path: str, interval: float) -> None:
        self.reactor = reactor
        self.path = path
        self.interval = interval
        self.opened_at = 0.0
        self.closed_at: float | None = None
        self.status: int | None = None
        self.bytes_sent = 0
        self.done: Deferred[None] = Deferred()
        self._timer: Any = None
        self._received = b""

    def connectionMade(self) -> None:
        self.opened_at = time.monotonic()
        assert self.transport is not None
        self.transport.write(f"POST {self.path} HTTP/1.1\r\nHost: {LOOPBACK}\r\nX-Slow: ".encode())
        self._timer = self.reactor.callLater(self.interval, self._trickle)

    def _trickle(self) -> None:
        if self.transport is None or self.closed_at is not None:
            return
        self.transport.write(b"a")
        self.bytes_sent += 1
        self._timer = self.reactor.callLater(self.interval, self._trickle)

    def dataReceived(self, data: bytes) -> None:
        self._received += data
        if self.status is None and b"\r\n" in self._received:
            parts = self._received.split(b"\r\n", 1)[0].split(b" ", 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed_at = time.monotonic()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not self.done.called:
            self.done.callback(None)

    def abandon(self) -> None:
        """Close it from our side (the scenario is over)."""
        if self.transport is not None and self.closed_at is None:
            self.transport.abortConnection()


async def open_connection(reactor: Any, port: int, protocol: Protocol) -> Protocol:
    endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port, timeout=10)
    connected: Protocol = await connectProtocol(endpoint, protocol)
    return connected
