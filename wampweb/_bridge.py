"""
HTTP endpoints that publish and call, in the request and answer shapes of
Crossbar.io's HTTP bridge (``{"topic", "args", "kwargs"}`` → ``{"id": …}``;
``{"procedure", "args", "kwargs"}`` → ``{"args": […]}``).

They are plain Twisted resources, mounted beside the Klein app rather than
routed through it: the bridge is the hot path. Everything that can go wrong
before the router is asked is answered without asking it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from wampweb._app import ManagedComponent
from wampweb._errors import BadRequestError, WampWebError
from wampweb._http import ErrorAnswer, answer_for

_log = Logger()

Envelope = dict[str, Any]


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class BridgeError(BadRequestError):
    """A request the bridge refuses before anything is sent, with Crossbar's wording."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.http_status = status


class _BridgeResource(Resource):
    """What the publisher and the caller share: parsing, answering, cancelling."""

    isLeaf = True
    required_key = ""

    def __init__(self, component: ManagedComponent) -> None:
        Resource.__init__(self)
        self.component = component

    def render(self, request: IRequest) -> bytes | int:
        if request.method not in (b"POST", b"PUT", b"OPTIONS"):
            self._common_headers(request)
            request.setResponseCode(405)
            message = (
                "Method not accepted by the REST bridge. "
                f"({request.method!r} not allowed, only POST, PUT)"
            )
            return _dumps({"error": message, "args": [], "kwargs": {}})
        result: bytes | int = Resource.render(self, request)
        return result

    def render_OPTIONS(self, request: IRequest) -> bytes:
        self._common_headers(request)
        request.setHeader(b"allow", b"POST,PUT,OPTIONS")
        request.setHeader(b"access-control-allow-methods", b"POST,PUT,OPTIONS")
        return b""

    def render_POST(self, request: IRequest) -> bytes | int:
        self._common_headers(request)
        try:
            body = self._parse(request)
            operation = self._start(body)
        except WampWebError as error:
            return self._error(request, error)
        request.notifyFinish().addErrback(  # type: ignore[attr-defined]
            lambda _: operation.cancel()
        )
        operation.addCallbacks(
            lambda result: self._write(request, 200, self._success(result)),
            lambda failure: self._failed(request, failure),
        )
        return NOT_DONE_YET

    render_PUT = render_POST

    def _parse(self, request: IRequest) -> Mapping[str, Any]:
        content = request.content.read()
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise BridgeError("Non-decodable request body, was not UTF-8.") from None
        try:
            body = json.loads(text)
        except ValueError:
            raise BridgeError("Request body was invalid JSON.") from None
        if not isinstance(body, dict):
            raise BridgeError("Request body was valid JSON, but not well formed (must be a dict).")
        if self.required_key not in body:
            raise BridgeError(
                "Request body was valid JSON, but not well formed "
                f"(missing key '{self.required_key}')"
            )
        for key, kind, name in (("args", list, "a list"), ("kwargs", dict, "an object")):
            value = body.get(key)
            if value is not None and not isinstance(value, kind):
                raise BridgeError(f"'{key}' must be {name}, not {type(value).__name__}")
        return body

    def _start(self, body: Mapping[str, Any]) -> Deferred[Any]:
        raise NotImplementedError

    def _success(self, result: Any) -> Envelope:
        raise NotImplementedError

    def _common_headers(self, request: IRequest) -> None:
        origin = request.getHeader(b"origin")
        request.setHeader(
            b"access-control-allow-origin",
            origin if origin and origin != b"null" else b"*",
        )
        request.setHeader(b"access-control-allow-credentials", b"true")
        asked = request.getHeader(b"access-control-request-headers")
        if asked:
            request.setHeader(b"access-control-allow-headers", asked)
        request.setHeader(b"cache-control", b"no-store,no-cache,must-revalidate,max-age=0")
        request.setHeader(b"content-type", b"application/json; charset=UTF-8")

    def _error(self, request: IRequest, error: BaseException) -> bytes:
        if isinstance(error, BridgeError):
            request.setResponseCode(error.http_status)
            return _dumps({"error": str(error), "args": [], "kwargs": {}})
        answer = answer_for(error)
        return self._answer(request, answer)

    def _answer(self, request: IRequest, answer: ErrorAnswer) -> bytes:
        request.setResponseCode(answer.status)
        if answer.retry_after is not None:
            answer.write_headers(request)
            self._common_headers(request)
        return answer.body()

    def _failed(self, request: IRequest, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # the client went away; there is nobody to answer
        error = failure.value
        if isinstance(error, ApplicationError):
            # Crossbar's bridge: a WAMP error is a processed request, so 200.
            envelope = {
                "error": error.error,
                "args": list(error.args or ()),
                "kwargs": error.kwargs or {},
            }
            self._write(request, 200, envelope)
            return
        if not isinstance(error, WampWebError):
            _log.failure("bridge request failed", failure)
        body = self._error(request, error if error is not None else RuntimeError())
        self._finish(request, body)

    def _write(self, request: IRequest, status: int, envelope: Envelope) -> None:
        request.setResponseCode(status)
        self._finish(request, _dumps(envelope))

    @staticmethod
    def _finish(request: IRequest, body: bytes) -> None:
        if getattr(request, "_disconnected", False) or getattr(request, "finished", False):
            return
        request.write(body)
        request.finish()


class PublisherResource(_BridgeResource):
    """``POST {"topic", "args", "kwargs", "options"}`` → acknowledged publish → ``{"id": …}``."""

    required_key = "topic"

    def _start(self, body: Mapping[str, Any]) -> Deferred[Any]:
        options = body.get("options") or None
        if options is not None and not isinstance(options, dict):
            raise BridgeError("'options' must be an object")
        return self.component.publish(
            body["topic"], body.get("args") or (), body.get("kwargs") or None, options=options
        )

    def _success(self, result: Any) -> Envelope:
        return {"id": result.id}


class CallerResource(_BridgeResource):
    """``POST {"procedure", "args", "kwargs"}`` → call → ``{"args": [...]}``."""

    required_key = "procedure"

    def _start(self, body: Mapping[str, Any]) -> Deferred[Any]:
        return self.component.call(
            body["procedure"], body.get("args") or (), body.get("kwargs") or None
        )

    def _success(self, result: Any) -> Envelope:
        if isinstance(result, CallResult):
            envelope: Envelope = {}
            if result.results:
                envelope["args"] = list(result.results)
            if result.kwresults:
                envelope["kwargs"] = dict(result.kwresults)
            return envelope
        return {"args": [result]}


def mount_bridge(
    web: Any,
    component: str = "default",
    *,
    publish: str | None = "/publish",
    call: str | None = "/call",
) -> None:
    """Mount the publisher and the caller of ``component`` on ``web``."""
    managed = web[component]
    mounts: list[tuple[str | None, Callable[[ManagedComponent], Resource]]] = [
        (publish, PublisherResource),
        (call, CallerResource),
    ]
    for path, factory in mounts:
        if path is not None:
            web.mount(path, factory(managed))
