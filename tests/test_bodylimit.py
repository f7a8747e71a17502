"""
Oversized bodies are refused before they are stored: over real TCP, since the
refusal happens while the request is still arriving.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from wampweb import WampWeb
from wampweb._bodylimit import LimitedRequest
from wampweb._bridge import BridgeKind, BridgeResource, BridgeSettings
from wampweb.testing import FakeComponent

LIMIT = 1000


@pytest.fixture
def port() -> Iterator[int]:
    web = WampWeb(listen="tcp:0:interface=127.0.0.1", reactor=reactor)
    component = web.add_component("default", FakeComponent())
    web.mount(
        "/publish",
        BridgeResource(component, BridgeSettings(BridgeKind.PUBLISHER, body_limit=LIMIT)),
    )
    web.startService()
    assert web.port is not None
    yield web.port.getHost().port
    pytest_twisted.blockon(web.stopService())


def exchange(port: int, head: bytes, body_chunks: int = 0, chunk: bytes = b"x" * 65536) -> bytes:
    """Send ``head`` and some body, then read what the server answers (blocking, bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(head)
        try:
            for _ in range(body_chunks):
                conn.sendall(chunk)
        except OSError:
            pass  # the server may stop reading once it has answered
        answer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
            if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                break
        return answer


def status_and_body(answer: bytes) -> tuple[int, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


def request_head(length: int | None, *extra: bytes) -> bytes:
    lines = [b"POST /publish HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
    lines.append(
        b"Transfer-Encoding: chunked" if length is None else b"Content-Length: %d" % length
    )
    lines.extend(extra)
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest_twisted.ensureDeferred
async def test_a_client_expecting_100_continue_gets_413_instead(port: int) -> None:
    head = request_head(100 * 1024 * 1024, b"Expect: 100-continue")
    answer = await deferToThread(exchange, port, head)
    assert b"100 Continue" not in answer
    status, body = status_and_body(answer)
    assert status == 413
    assert (
        body["error"] == f"Request too long. ({100 * 1024 * 1024} is longer than accepted {LIMIT})"
    )


@pytest_twisted.ensureDeferred
async def test_a_large_upload_is_answered_413_from_its_headers(port: int) -> None:
    answer = await deferToThread(exchange, port, request_head(100 * 1024 * 1024), 4)
    assert status_and_body(answer)[0] == 413


@pytest_twisted.ensureDeferred
async def test_a_small_excess_is_drained_and_answered_normally(port: int) -> None:
    body = b"x" * (LIMIT + 1)
    answer = await deferToThread(exchange, port, request_head(len(body)) + body)
    status, parsed = status_and_body(answer)
    assert status == 413
    assert parsed["error"] == f"Request too long. ({LIMIT + 1} is longer than accepted {LIMIT})"


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_is_counted_as_it_arrives(port: int) -> None:
    chunk = b"x" * 600
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    answer = await deferToThread(exchange, port, request_head(None) + body)
    status, parsed = status_and_body(answer)
    assert status == 413
    assert "is longer than accepted 1000" in parsed["error"]


def test_the_refused_body_is_never_stored() -> None:
    class Channel:
        site = type(
            "Site",
            (),
            {
                "resource": type(
                    "R", (), {"mounted_for": lambda s, p: type("M", (), {"body_limit": 10})()}
                )()
            },
        )()
        _path = b"/publish"
        transport = None

        def getPeer(self) -> None:
            return None

        def getHost(self) -> None:
            return None

    request = LimitedRequest(Channel(), parsePOSTFormSubmission=False)  # type: ignore[arg-type]
    request.gotLength(20)
    request.handleContentChunk(b"y" * 20)
    assert request.content.read() == b""
    assert request.body_denial is not None


def test_a_client_too_slow_with_its_headers_gets_408_and_is_dropped() -> None:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from wampweb._http import make_site

    clock = Clock()
    web = WampWeb(listen=None, reactor=clock)
    site = make_site(web.resource(), reactor=clock, header_timeout=5.0)
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"POST /publish HTTP/1.1\r\nHost: x\r\n")
    clock.advance(4.9)
    protocol.dataReceived(b"X-Slow: 1\r\n")  # bytes keep coming, slowly
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 408 Request Timeout")
    assert transport.disconnecting


def test_headers_in_time_are_served_and_the_clock_restarts_for_the_next_request() -> None:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from wampweb._http import make_site

    clock = Clock()
    web = WampWeb(listen=None, reactor=clock)
    web.add_health_routes()
    site = make_site(web.resource(), reactor=clock, header_timeout=5.0)
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200")
    transport.clear()
    clock.advance(4.9)
    assert not transport.disconnecting, "keep-alive: the next request has its own deadline"
    clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 408")


def test_a_slow_answer_is_not_a_slow_header_and_the_clock_restarts_after_it() -> None:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET

    from wampweb._http import make_site

    held: list[Any] = []

    class Slow(Resource):
        isLeaf = True

        def render(self, request: Any) -> int:
            held.append(request)
            return NOT_DONE_YET

    clock = Clock()
    web = WampWeb(listen=None, reactor=clock)
    web.mount("/slow", Slow())
    site = make_site(web.resource(), reactor=clock, header_timeout=5.0)
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    clock.advance(3.0)
    protocol.dataReceived(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(20.0)  # the old deadline passes while the answer is awaited
    assert not transport.disconnecting
    assert transport.value() == b""
    held[0].write(b"done")
    held[0].finish()
    assert transport.value().startswith(b"HTTP/1.1 200")
    transport.clear()
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.value().startswith(b"HTTP/1.1 408")
