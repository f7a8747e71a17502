"""
How wampweb answers HTTP when something goes wrong, and how it drains.

Every error answer is JSON in the envelope Crossbar's bridge made familiar,
``{"error": <uri>, "args": [...], "kwargs": {...}}``, never a traceback or a
file path. The status follows the table in the design: 503 + ``Retry-After``
when no session was there (nothing was sent), 502 when the outcome is
unknown, 504 when wampweb's deadline passed, and the WAMP error URIs that
have an HTTP meaning get it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes as unquote

import attrs
from autobahn.wamp.exception import ApplicationError, InvalidUriError
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource, getChildForRequest

from wampweb._bodylimit import LimitedRequest
from wampweb._channel import DEFAULT_HEADER_TIMEOUT, channel_factory
from wampweb._errors import NoSessionError, WampWebError

_log = Logger()

#: WAMP error URIs with an HTTP meaning of their own; any other WAMP error is a 502.
WAMP_ERROR_STATUS: Mapping[str, int] = {
    "wamp.error.no_such_procedure": 404,
    "wamp.error.no_such_registration": 404,
    "wamp.error.not_authorized": 403,
    "wamp.error.authorization_failed": 403,
    "wamp.error.invalid_argument": 400,
    "wamp.error.invalid_uri": 400,
    "wamp.error.invalid_payload": 400,
}


@attrs.frozen
class ErrorAnswer:
    """An HTTP error answer, decided once and written the same way everywhere."""

    status: int
    uri: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)
    retry_after: float | None = None

    def body(self) -> bytes:
        envelope = {"error": self.uri, "args": list(self.args), "kwargs": dict(self.kwargs)}
        return json.dumps(envelope, separators=(",", ":"), default=str).encode("utf-8")

    def write_headers(self, request: IRequest) -> None:
        request.setResponseCode(self.status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        if self.retry_after is not None:
            request.setHeader(b"retry-after", retry_after_value(self.retry_after))

    def render(self, request: IRequest) -> bytes:
        self.write_headers(request)
        return self.body()


def retry_after_value(seconds: float) -> bytes:
    """``Retry-After`` takes whole seconds; round up, and never say 0 (a tight loop)."""
    return str(max(1, math.ceil(seconds))).encode()


def not_found(request: IRequest) -> ErrorAnswer:
    """The answer for a path nothing serves: JSON like every other error, not an HTML page."""
    path: bytes = request.path
    return ErrorAnswer(
        404, "wampweb.error.not_found", [f"nothing is served at {path.decode('utf-8', 'replace')}"]
    )


def answer_for(error: BaseException, *, rejoined_recently: bool = False) -> ErrorAnswer:
    """
    The HTTP answer for ``error`` raised while serving a request.

    ``rejoined_recently`` turns a ``no_such_procedure`` into a 503: right after
    a reconnect the callee may simply not have re-registered yet.
    """
    if isinstance(error, NoSessionError):
        return ErrorAnswer(503, error.uri, [str(error)], retry_after=error.retry_after)
    if isinstance(error, WampWebError):
        # A ComponentFailedError is a 503 without Retry-After: retrying will not help.
        return ErrorAnswer(error.http_status, error.uri, [str(error)])
    if isinstance(error, InvalidUriError):
        return ErrorAnswer(400, "wamp.error.invalid_uri", [str(error)])
    if isinstance(error, ApplicationError):
        status = WAMP_ERROR_STATUS.get(error.error, 502)
        if error.error == "wamp.error.no_such_procedure" and rejoined_recently:
            return ErrorAnswer(
                503, error.error, list(error.args or ()), error.kwargs or {}, retry_after=1.0
            )
        return ErrorAnswer(status, error.error, list(error.args or ()), error.kwargs or {})
    return ErrorAnswer(
        500, "wampweb.error.internal", ["wampweb could not serve this request; see its log"]
    )


class JsonErrorRequest(LimitedRequest):
    """
    A request whose unexpected failures answer a JSON 500 with no traceback.

    Twisted's default writes an HTML page, with the traceback when
    ``displayTracebacks`` is on; neither belongs in an API's answer.
    """

    def processingFailed(self, reason: Failure) -> None:
        _log.failure("error while serving {uri}", reason, uri=self.uri)
        if self.startedWriting:
            self.loseConnection()  # type: ignore[no-untyped-call]
            return
        answer = answer_for(_exception_of(reason))
        body = answer.render(self)
        self.setHeader(b"content-length", str(len(body)).encode())  # type: ignore[no-untyped-call]
        self.write(body)  # type: ignore[no-untyped-call]
        self.finish()  # type: ignore[no-untyped-call]


#: ``access_log`` value that sends the access log to wampweb's own log.
ACCESS_LOG_TO_LOG = "-"


class _Site(server.Site):
    """Twisted's Site, with an access log that can be off."""

    access_log: str | None = None
    #: wampweb logs where it listens itself; Twisted's "Starting factory" line says less.
    noisy = False

    def log(self, request: Any) -> None:
        if self.access_log is not None:
            server.Site.log(self, request)


def make_site(
    resource: IResource,
    *,
    reactor: Any = None,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    idle_timeout: float = 60.0,
    access_log: str | None = None,
) -> server.Site:
    """
    A Site that never shows tracebacks, answers unexpected errors in JSON,
    refuses oversized bodies before storing them, closes connections whose
    headers dawdle (``header_timeout``), and idle ones after ``idle_timeout``
    seconds (Twisted's default keeps them for 12 hours).

    ``access_log`` is where a line per request goes (combined log format):
    None for nowhere, ``"-"`` for wampweb's log, or a file path. Off by
    default: formatting and writing the line costs about a fifth of a
    bridge request, which a gateway at thousands of requests a second
    should only pay when someone reads it.
    """
    site = _Site(  # type: ignore[no-untyped-call]
        resource, requestFactory=JsonErrorRequest, timeout=idle_timeout, reactor=reactor
    )
    site.access_log = access_log
    if access_log not in (None, ACCESS_LOG_TO_LOG):
        site.logPath = access_log
    site.displayTracebacks = False
    site.protocol = channel_factory(header_timeout)  # type: ignore[method-assign]
    return site


def _without_body_for_head(request: IRequest, body: bytes) -> bytes:
    """
    A HEAD answer's headers only. Twisted would drop the body itself, but
    logs each time it does; load balancers probe with HEAD often.
    """
    if request.method == b"HEAD":
        request.setHeader(b"content-length", str(len(body)).encode())
        return b""
    return body


class NotFoundResource(Resource):
    """Answers every request with the JSON 404 (:func:`not_found`)."""

    isLeaf = True

    def __init__(self) -> None:
        Resource.__init__(self)

    def render(self, request: IRequest) -> bytes:
        return _without_body_for_head(request, not_found(request).render(request))


class GetResource(Resource):
    """
    A mounted leaf that answers GET (and so HEAD) at exactly its own path,
    with ``answer(request)``. Twisted's own resources would answer any other
    method, or a path below, with an HTML page; an API answers JSON.
    """

    isLeaf = True

    def __init__(self, answer: Callable[[IRequest], bytes]) -> None:
        Resource.__init__(self)
        self.answer = answer

    def render(self, request: IRequest) -> bytes:
        method: bytes = request.method
        if request.postpath:
            body = not_found(request).render(request)
        elif method in (b"GET", b"HEAD"):
            body = self.answer(request)
        else:
            request.setHeader(b"allow", b"GET, HEAD")
            method_name = method.decode("ascii", "replace")
            body = ErrorAnswer(
                405,
                "wampweb.error.method_not_allowed",
                [f"{method_name} is not allowed here, only GET and HEAD"],
            ).render(request)
        return _without_body_for_head(request, body)


_NOT_FOUND = NotFoundResource()


class DrainingResource(Resource):
    """
    The root of a wampweb site: dispatches to mounted resources (the bridge's
    hot endpoints and the health checks, which need not pay for Klein's
    routing) or to ``inner``, the Klein app's resource; counts requests in
    flight so a stopping app can let them finish, and turns new ones away
    (503, ``Connection: close``) once draining has begun.
    """

    isLeaf = True

    def __init__(self, inner: IResource | None = None, retry_after: float = 2.0) -> None:
        Resource.__init__(self)
        #: What serves the paths no mount serves: the Klein app's resource,
        #: or None while there is no Klein app, when those paths get a JSON
        #: 404 and a process that serves only mounts never imports Klein.
        self.inner = inner
        self.retry_after = retry_after
        self.in_flight = 0
        self.draining = False
        self.mounts: dict[tuple[bytes, ...], IResource] = {}
        self._deepest = 0
        self._drained: list[Deferred[None]] = []

    def mount(self, path: str, resource: IResource) -> None:
        """Serve ``path`` (and everything below it) with ``resource`` instead of the app."""
        segments = tuple(s.encode("utf-8") for s in path.strip("/").split("/") if s)
        if not segments:
            raise ValueError("cannot mount a resource at the root; use the Klein app for that")
        if segments in self.mounts:
            raise ValueError(f"{path!r} is already mounted")
        self.mounts[segments] = resource
        self._deepest = max(self._deepest, len(segments))

    def render(self, request: IRequest) -> bytes | int:
        if self.draining:
            request.setHeader(b"connection", b"close")
            answer = ErrorAnswer(
                503,
                "wampweb.error.stopping",
                ["the application is shutting down"],
                retry_after=self.retry_after,
            )
            return answer.render(request)
        self.in_flight += 1
        request.notifyFinish().addBoth(self._finished)  # type: ignore[attr-defined]
        result: bytes | int = self._target(request).render(request)
        return result

    def _target(self, request: IRequest) -> IResource:
        postpath: list[bytes] = request.postpath
        size, mounted = self._mounted(postpath)
        if mounted is not None:
            prepath: list[bytes] = request.prepath
            prepath.extend(postpath[:size])
            del postpath[:size]
            return mounted
        if self.inner is None:
            return _NOT_FOUND
        target: IResource = getChildForRequest(self.inner, request)
        return target

    def _mounted(self, segments: list[bytes]) -> tuple[int, IResource | None]:
        """The longest mount that ``segments`` starts with."""
        for size in range(min(len(segments), self._deepest), 0, -1):
            mounted = self.mounts.get(tuple(segments[:size]))
            if mounted is not None:
                return size, mounted
        return 0, None

    def mounted_for(self, path: bytes) -> IResource | None:
        """
        The mounted resource that will serve ``path`` (None: the Klein app, if any),
        asked before the body arrives so an oversized one is never stored.
        """
        segments = path.lstrip(b"/").split(b"/")
        if b"%" in path:
            segments = [unquote(s) for s in segments]
        return self._mounted(segments)[1]

    def _finished(self, _: object) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                waiter.callback(None)

    def drain(self) -> Deferred[None]:
        """Stop taking requests; fire once every request in flight has finished."""
        self.draining = True
        if self.in_flight == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._drained.append(waiter)
        return waiter


def render_error(request: IRequest, failure: Failure, *, rejoined_recently: bool = False) -> bytes:
    """A Klein error handler body: log what was unexpected, answer in JSON."""
    answer = answer_for(_exception_of(failure), rejoined_recently=rejoined_recently)
    if answer.status == 500:
        _log.failure("error while serving {uri}", failure, uri=request.uri)
    return answer.render(request)


def _exception_of(failure: Failure) -> BaseException:
    error = failure.value
    return error if error is not None else RuntimeError("unknown failure")
