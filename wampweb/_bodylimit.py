"""
Refusing request bodies that are too large before they are buffered.

Twisted buffers a whole body before any resource sees the request, with no
limit (a temporary file above 100 kB). wampweb decides from the headers: the
request's path says which mount serves it and so its limit, and
``Content-Length`` (or the count of chunks received so far) says whether the
body is over it. An oversized body is never stored:

- when it is small enough to drain cheaply, the bytes are discarded as they
  arrive and the request is answered ``413`` in the normal way (every client
  reads that answer);
- when it is large, or the client waits for ``100 Continue``, the ``413`` is
  written at once, the write side is closed, and what still arrives is
  discarded until the client hangs up or a short linger ends.
"""

from __future__ import annotations

import io
from typing import Any, Protocol

from twisted.logger import Logger
from twisted.web import server

from wampweb._denial import DeniedError

_log = Logger()

#: Above this many bytes, an oversized body is not drained: the answer goes out at once.
DRAIN_LIMIT = 1 << 20
#: How long to keep discarding a refused upload before closing the connection.
LINGER_SECONDS = 2.0


class MountLookup(Protocol):
    """The site's root resource: which mounted resource serves a path."""

    def mounted_for(self, path: bytes) -> object | None: ...


def too_large(length: int, limit: int) -> DeniedError:
    """Crossbar's AR413 words, status 413 in both faces."""
    return DeniedError(
        f"Request too long. ({length} is longer than accepted {limit})",
        status=413,
        uri="wampweb.error.payload_too_large",
    )


class _Discard(io.BytesIO):
    """A content "file" that keeps nothing: the body of a refused request."""

    def write(self, data: Any) -> int:
        return len(data)


class LimitedRequest(server.Request):
    """
    A request that measures its body against the limit of the resource that
    will serve it, and never stores a body over it.
    """

    #: Why the body was refused; resources answer with it instead of reading.
    body_denial: DeniedError | None = None
    _mount: object | None = None
    _body_limit: int | None = None
    _body_received = 0
    _over_limit = False
    _answered_early = False

    def gotLength(self, length: int | None) -> None:
        self._mount = self._mount_for_this_path()
        if self._mount is not None:
            # Mounted resources read the raw body. Twisted's form parsing
            # would only cost time, and on a malformed multipart body or
            # content type it answers (or drops the connection) itself.
            self._parsePOSTFormSubmission = False
        limit = getattr(self._mount, "body_limit", None)
        self._body_limit = limit if isinstance(limit, int) and limit > 0 else None
        limit = self._body_limit
        if limit is None or length is None or length <= limit:
            super().gotLength(length)  # type: ignore[no-untyped-call]
            return
        self.body_denial = too_large(length, limit)
        self._over_limit = True
        self.content = _Discard()
        expects_continue = self.requestHeaders.getRawHeaders(b"expect")
        if expects_continue or length > DRAIN_LIMIT:
            # Do not invite the body with "100 Continue": answer now.
            self.requestHeaders.removeHeader(b"expect")
            self._answer_now(self.body_denial)

    def handleContentChunk(self, data: bytes) -> None:
        self._body_received += len(data)
        limit = self._body_limit
        if not self._over_limit and limit is not None and self._body_received > limit:
            # Chunked, or longer than announced: stop storing from here on.
            self._over_limit = True
            self.content = _Discard()
        if self._over_limit:
            if not self._answered_early and self._body_received > DRAIN_LIMIT:
                self._answer_now(too_large(self._body_received, limit or 0))
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._answered_early:
            return  # answered already; the connection is closing
        if self._over_limit and self.body_denial is None and self._body_limit is not None:
            # Drained to the end: the whole length is known now, as Crossbar reports it.
            self.body_denial = too_large(self._body_received, self._body_limit)
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def _mount_for_this_path(self) -> object | None:
        channel: Any = self.channel
        root: Any = getattr(getattr(channel, "site", None), "resource", None)
        path = getattr(channel, "_path", None)
        if not isinstance(path, bytes) or not hasattr(root, "mounted_for"):
            return None
        mounted: object | None = root.mounted_for(path.split(b"?", 1)[0])
        return mounted

    def _cors_headers(self) -> bytes:
        """The mount's CORS headers, so a browser page can read this 413 too."""
        cors: Any = getattr(getattr(self._mount, "settings", None), "cors", None)
        if cors is None:
            return b""
        cors.apply(self)
        return b"".join(
            name + b": " + value + b"\r\n"
            for name, values in self.responseHeaders.getAllRawHeaders()
            for value in values
        )

    def _answer_now(self, denial: DeniedError) -> None:
        """Write the 413 before the body, then discard the rest and close."""
        self._answered_early = True
        mode = getattr(getattr(getattr(self._mount, "settings", None), "mode", None), "value", None)
        body = denial.rest_body() if mode == "rest" else denial.compat_body()
        head = (
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: application/json; charset=UTF-8\r\n"
            b"Cache-Control: no-store,no-cache,must-revalidate,max-age=0\r\n"
            + self._cors_headers()
            + b"Connection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        channel: Any = self.channel
        transport = channel.transport
        transport.write(head + body)
        # Closing both ways at once would reset the connection while the
        # client is still sending, and it might never read the answer.
        if hasattr(transport, "loseWriteConnection"):
            transport.loseWriteConnection()
        channel.callLater(LINGER_SECONDS, transport.loseConnection)
        _log.info("refused an oversized request body: {why}", why=denial.message)
