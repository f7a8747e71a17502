"""
An HTTP connection that must finish sending each request's headers in time.

Twisted's idle timeout restarts with every byte, so a client that sends its
headers one byte every few seconds (slowloris) holds a connection, and its
share of the process, for as long as it likes. Here each request's headers
must be complete within ``header_timeout`` seconds of the connection opening
or of the previous answer; otherwise the client gets ``408`` and is
disconnected. Bodies are the body limit's business (:mod:`wampweb._bodylimit`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol

_log = Logger()

DEFAULT_HEADER_TIMEOUT = 10.0

_TIMED_OUT_BODY = (
    b'{"error":"wampweb.error.header_timeout","args":["headers took too long"],"kwargs":{}}'
)
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: application/json; charset=UTF-8\r\n"
    b"Connection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_TIMED_OUT_BODY), _TIMED_OUT_BODY)
)


class DeadlineChannel(HTTPChannel):
    """An ``HTTPChannel`` with a deadline for each request's headers."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    _header_timer: IDelayedCall | None = None
    #: True from the end of one request (or the connection's start) to the
    #: next request's last header: the only time the deadline applies.
    _awaiting_headers = False

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._headers_due()

    def allHeadersReceived(self) -> None:
        # The timer is left running (should it fire now, it does nothing):
        # one reset per request costs far less than a cancel and a new call.
        self._awaiting_headers = False
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)  # type: ignore[no-untyped-call]
        if self.persistent and not self.requests:
            self._headers_due()  # the next request's headers are on the clock

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._awaiting_headers = False
        timer, self._header_timer = self._header_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def _headers_due(self) -> None:
        self._awaiting_headers = True
        timer = self._header_timer
        if timer is not None and timer.active():
            timer.reset(self.header_timeout)
            return
        timer = self.callLater(  # type: ignore[no-untyped-call]
            self.header_timeout, self._headers_too_slow
        )
        self._header_timer = timer

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport is None:
            return
        _log.info(
            "closing a connection whose request headers took over {t:g} s", t=self.header_timeout
        )
        self.transport.write(_TIMED_OUT)
        self.transport.loseConnection()


def channel_factory(header_timeout: float) -> Any:
    """A ``Site.protocol`` building deadline channels (wrapped as Twisted wraps its own)."""

    def build() -> _GenericHTTPChannelProtocol:
        channel = DeadlineChannel()  # type: ignore[no-untyped-call]
        channel.header_timeout = header_timeout
        return _GenericHTTPChannelProtocol(channel)

    return build
