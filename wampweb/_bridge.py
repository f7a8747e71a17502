"""
HTTP endpoints that publish, call and take webhooks for a named Component.

Each mount is a plain Twisted resource beside the Klein app (the bridge is
the hot path and need not pay for Klein's routing). A mount speaks one of two
dialects:

- ``crossbar``: Crossbar.io's HTTP bridge, request for request: the same
  bodies, answers, status codes, error messages and order of checks
  (``shared/spec/crossbar-http-bridge.md``), so existing clients work
  unchanged; wampweb only answers where Crossbar cannot have a case (no
  session: 503 + ``Retry-After``) and refuses what would hurt the router.
- ``rest``: the same endpoints with HTTP status codes that say what happened
  (404 no such procedure, 403 not authorized, 502/503/504, 413, 415, 401, 429).

The checks run in Crossbar's order (method, content type, lengths, body
limit, signature, client address, TLS), then wampweb's own (rate limit,
payload safety, per-key permissions). Every refusal is a :class:`DeniedError`
raised by one check; nothing reaches the router before all have passed.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

import attrs
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import parse_qs
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from wampweb._access import IpAllowList, Permissions, TrustedProxies, check_tls
from wampweb._app import ManagedComponent
from wampweb._cors import CorsPolicy
from wampweb._denial import DeniedError, bad_request
from wampweb._errors import BadRequestError, WampWebError
from wampweb._flush import flush_now
from wampweb._http import answer_for, retry_after_value
from wampweb._jsonbody import check_payload_value, decode_utf8, parse_body
from wampweb._options import PUBLISH_OPTIONS
from wampweb._ratelimit import RateLimiter, rate_limit_identity
from wampweb._signing import RequestVerifier

_log = Logger()

#: wampweb's body limit where a mount sets none (Crossbar's 0 means unlimited;
#: an HTTP gateway into a router should not buffer unbounded bodies).
DEFAULT_BODY_LIMIT = 1 << 20

#: Reason phrases Twisted does not know.
_REASONS = {429: b"Too Many Requests"}

_CACHE_CONTROL = b"no-store,no-cache,must-revalidate,max-age=0"
_JSON = b"application/json; charset=UTF-8"


class BridgeKind(enum.Enum):
    PUBLISHER = "publisher"
    CALLER = "caller"
    WEBHOOK = "webhook"


class BridgeMode(enum.Enum):
    CROSSBAR = "crossbar"
    REST = "rest"


@attrs.frozen
class BridgeSettings:
    """Everything one mount decides, validated before it serves (see the config)."""

    kind: BridgeKind
    mode: BridgeMode = BridgeMode.CROSSBAR
    #: Answer a publish with 202, as Crossbar did before May 2016 (crossbarconnect wants it).
    legacy_202: bool = False
    body_limit: int = DEFAULT_BODY_LIMIT
    verifier: RequestVerifier | None = None
    #: Per-key permissions; a key without an entry may do anything the mount does.
    permissions: Mapping[str, Permissions] = attrs.field(factory=dict)
    #: Permissions for requests that carry no key (mounts without signing).
    anonymous_permissions: Permissions | None = None
    require_ip: IpAllowList | None = None
    require_tls: bool = False
    proxies: TrustedProxies = attrs.field(factory=lambda: TrustedProxies(()))
    cors: CorsPolicy = attrs.field(factory=CorsPolicy.crossbar)
    rate_limiter: RateLimiter | None = None
    #: Default and ceiling of a call's deadline, seconds (None: the component's default).
    call_timeout: float | None = None
    max_call_timeout: float = 300.0
    # webhook
    topic: str = "wampweb.webhook"
    success_response: str = "OK"
    error_response: str = "NOT OK"
    github_secret: bytes | None = attrs.field(default=None, repr=False)


class BridgeResource(Resource):
    """One mount: a publisher, caller or webhook bound to a managed Component."""

    isLeaf = True

    def __init__(self, component: ManagedComponent, settings: BridgeSettings) -> None:
        Resource.__init__(self)
        self.component = component
        self.settings = settings

    @property
    def body_limit(self) -> int:
        """Read by the request before the body arrives (see :mod:`wampweb._bodylimit`)."""
        return self.settings.body_limit

    # -- the pipeline ---------------------------------------------------------------------

    def render(self, request: IRequest) -> bytes | int:
        settings = self.settings
        request.setHeader(b"cache-control", _CACHE_CONTROL)
        request.setHeader(b"content-type", _JSON)
        try:
            settings.cors.apply(request)
            if request.method not in (b"POST", b"PUT", b"OPTIONS"):
                raise DeniedError(
                    "Method not accepted by the REST bridge. "
                    f"({request.method!r} not allowed, only POST, PUT)",
                    status=405,
                    uri="wampweb.error.method_not_allowed",
                )
            if request.method == b"OPTIONS":
                return settings.cors.preflight(request)
            # CORS only hides answers from pages; a refused origin must not act either.
            settings.cors.check_origin(request)
            body = self._checked_body(request)
            key = self._authenticate(request, body)
            if settings.kind is BridgeKind.WEBHOOK:
                operation = self._webhook(request, body)
            else:
                operation = self._publish_or_call(request, body, key)
        except DeniedError as denial:
            return self._deny(request, denial)
        except WampWebError as error:
            return self._answer_error(request, error)

        def cancel(_: object) -> None:
            operation.cancel()

        request.notifyFinish().addErrback(cancel)  # type: ignore[attr-defined]
        operation.addCallbacks(
            self._succeeded, self._failed, callbackArgs=(request,), errbackArgs=(request,)
        )
        return NOT_DONE_YET

    def _checked_body(self, request: IRequest) -> bytes:
        """Crossbar's rows 2 to 7: content type, charset, lengths, limit, GitHub signature."""
        settings = self.settings
        headers = request.requestHeaders
        content_type = headers.getRawHeaders(b"content-type", [])
        elements = (
            [part.strip().lower() for part in content_type[0].split(b";")] if content_type else []
        )
        if (
            settings.kind is not BridgeKind.WEBHOOK
            and elements
            and elements[0] != b"application/json"
        ):
            raise DeniedError(
                "Non-accepted content type. "
                f"(must be one of '{[b'application/json']}', not '{elements[0]!r}')",
                status=400,
                rest_status=415,
                uri="wampweb.error.unsupported_media_type",
            )
        charset = _charset(elements)
        if charset not in ("utf-8", "utf8"):
            raise DeniedError(
                "Non-accepted request encoding, must be UTF-8.",
                status=400,
                rest_status=415,
                uri="wampweb.error.unsupported_media_type",
            )
        denial: DeniedError | None = getattr(request, "body_denial", None)
        lengths = headers.getRawHeaders(b"content-length", [])
        if len(lengths) > 1:
            raise bad_request("Multiple versions of the same header is not allowed.")
        if denial is not None:
            raise denial
        body: bytes = request.content.read()
        if lengths:
            declared = _int_or_none(lengths[0])
            if declared != len(body):
                raise bad_request(
                    f"Body length ({len(body)}) is different to Content-Length header "
                    f"({lengths[0].decode('latin-1')})."
                )
        if settings.body_limit and len(body) > settings.body_limit:
            raise DeniedError(
                f"Request too long. ({len(body)} is longer than accepted {settings.body_limit})",
                status=413,
                uri="wampweb.error.payload_too_large",
            )
        if settings.kind is BridgeKind.WEBHOOK and settings.github_secret is not None:
            _check_github_signature(request, settings.github_secret, body)
        return body

    def _authenticate(self, request: IRequest, body: bytes) -> str | None:
        """Rows 8 to 16, then the rate limit: who is asking, from where, and how often."""
        settings = self.settings
        key: str | None = None
        if settings.verifier is not None:
            key = settings.verifier.verify(_query_args(request), body)
        if settings.require_ip is None and settings.rate_limiter is None:
            client_ip = None  # nobody asks: spare every request the address parsing
        else:
            client_ip = settings.proxies.client_ip(request)
        if settings.require_ip is not None:
            settings.require_ip.check(client_ip)
        if settings.require_tls:
            check_tls(settings.proxies.is_secure(request))
        if settings.rate_limiter is not None:
            settings.rate_limiter.take(rate_limit_identity(key, client_ip))
        return key

    def _permissions_for(self, key: str | None) -> Permissions | None:
        if key is None:
            return self.settings.anonymous_permissions
        return self.settings.permissions.get(key)

    def _publish_or_call(self, request: IRequest, body: bytes, key: str | None) -> Deferred[Any]:
        settings = self.settings
        publishing = settings.kind is BridgeKind.PUBLISHER
        payload = parse_body(body, "topic" if publishing else "procedure")
        permissions = self._permissions_for(key)
        if permissions is not None:
            permissions.check("publish" if publishing else "call", payload.uri, key=key)
        options = dict(payload.options or {})
        if publishing:
            if settings.mode is BridgeMode.CROSSBAR:
                # Crossbar ignores the options it does not know; so must we.
                options = {k: v for k, v in options.items() if k in PUBLISH_OPTIONS}
            return self.component.publish(
                payload.uri, payload.args, payload.kwargs, options=options or None
            )
        timeout = self._call_timeout(request, options)
        call_options = options if settings.mode is BridgeMode.REST else None
        return self.component.call(
            payload.uri, payload.args, payload.kwargs, timeout=timeout, options=call_options or None
        )

    def _call_timeout(self, request: IRequest, options: dict[str, Any]) -> float | None:
        """A REST client may shorten (never exceed the ceiling of) a call's deadline."""
        settings = self.settings
        if settings.mode is not BridgeMode.REST:
            return settings.call_timeout
        asked: object = options.pop("timeout", None)
        header = request.getHeader(b"x-request-timeout")
        if asked is None and header is not None:
            asked = _float_or_none(header)
            if asked is None:
                raise bad_request(f"X-Request-Timeout must be a number of seconds, not {header!r}")
        if asked is None:
            return settings.call_timeout
        if (
            isinstance(asked, bool)
            or not isinstance(asked, int | float)
            or not math.isfinite(asked)
            or asked <= 0
        ):
            raise bad_request(
                f"the call timeout must be a positive number of seconds, not {asked!r}"
            )
        if asked > settings.max_call_timeout:
            raise bad_request(
                f"the call timeout {asked:g} s is above this endpoint's limit of "
                f"{settings.max_call_timeout:g} s"
            )
        return float(asked)

    def _webhook(self, request: IRequest, body: bytes) -> Deferred[Any]:
        text = decode_utf8(body)
        headers = {
            name.decode("latin-1"): [value.decode("latin-1") for value in values]
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        event = {"headers": headers, "body": text}
        # A body starting with NUL reads as binary to Autobahn's JSON peers and
        # would drop their sessions: refuse it like any unsafe payload.
        check_payload_value(event, "webhook event")
        return self.component.publish(self.settings.topic, [event])

    # -- answers --------------------------------------------------------------------------

    def _deny(self, request: IRequest, denial: DeniedError) -> bytes:
        crossbar = self.settings.mode is BridgeMode.CROSSBAR
        status = denial.status if crossbar else denial.rest_status
        request.setResponseCode(status, _REASONS.get(status))
        if denial.retry_after is not None:
            request.setHeader(b"retry-after", retry_after_value(denial.retry_after))
        return denial.compat_body() if crossbar else denial.rest_body()

    def _answer_error(self, request: IRequest, error: BaseException) -> bytes:
        if isinstance(error, BadRequestError):
            # Refused before anything was sent: a denial, in the mount's dialect.
            return self._deny(request, bad_request(str(error)))
        rejoined = self.component.rejoined_recently()
        answer = answer_for(error, rejoined_recently=rejoined)
        request.setResponseCode(answer.status)
        if answer.retry_after is not None:
            request.setHeader(b"retry-after", retry_after_value(answer.retry_after))
        return answer.body()

    def _succeeded(self, result: Any, request: IRequest) -> None:
        settings = self.settings
        if settings.kind is BridgeKind.WEBHOOK:
            _finish(request, 202, settings.success_response.encode("utf-8"))
        elif settings.kind is BridgeKind.PUBLISHER:
            status = 202 if settings.legacy_202 else 200
            _finish(request, status, _dumps({"id": result.id}))
        else:
            _finish(request, 200, _dumps(_call_envelope(result)))

    def _failed(self, failure: Failure, request: IRequest) -> None:
        if failure.check(CancelledError):
            return  # the client hung up: nobody to answer
        error = failure.value
        settings = self.settings
        if settings.kind is BridgeKind.WEBHOOK and not isinstance(error, WampWebError):
            _log.error(
                "webhook publish to {topic} failed: {error}", topic=settings.topic, error=error
            )
            _finish(request, 500, settings.error_response.encode("utf-8"))
            return
        if settings.mode is BridgeMode.CROSSBAR and isinstance(error, ApplicationError):
            # Crossbar's bridge: the router processed it; a WAMP error is a 200.
            envelope = {
                "error": error.error,
                "args": list(error.args or []),
                "kwargs": error.kwargs or {},
            }
            _finish(request, 200, _dumps(envelope))
            return
        if isinstance(error, WampWebError | ApplicationError):
            body = self._answer_error(request, error)
            _finish(request, None, body)
            return
        _log.failure("bridge request failed", failure)
        if settings.mode is BridgeMode.CROSSBAR:
            envelope = {
                "error": "wamp.error.runtime_error",
                "args": ["Sorry, wampweb has encountered a problem."],
                "kwargs": {},
            }
            _finish(request, 500, _dumps(envelope))
        else:
            _finish(request, None, self._answer_error(request, error or RuntimeError()))


def _call_envelope(result: Any) -> dict[str, Any]:
    """Crossbar's shape: one value → ``args: [v]``; a CallResult → its non-empty parts."""
    if isinstance(result, CallResult):
        envelope: dict[str, Any] = {}
        if result.results:
            envelope["args"] = list(result.results)
        if result.kwresults:
            envelope["kwargs"] = dict(result.kwresults)
        return envelope
    return {"args": [result]}


def _finish(request: IRequest, status: int | None, body: bytes) -> None:
    if getattr(request, "_disconnected", False) or getattr(request, "finished", False):
        return
    if status is not None:
        request.setResponseCode(status)
    request.write(body)
    request.finish()
    flush_now(getattr(request, "channel", None))


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _charset(elements: list[bytes]) -> str:
    """The charset parameter, as Crossbar reads it; a malformed list is refused."""
    parameters: dict[str, str] = {}
    if len(elements) > 1:
        for item in elements:
            if b"=" not in item:
                continue
            parts = item.decode("latin-1").split("=")
            name = parts[0].strip().lower()
            if len(parts) != 2 or name in parameters:
                raise DeniedError(
                    "Non-accepted request encoding, must be UTF-8.",
                    status=400,
                    rest_status=415,
                    uri="wampweb.error.unsupported_media_type",
                )
            parameters[name] = parts[1].strip().lower()
    return parameters.get("charset", "utf-8")


def _check_github_signature(request: IRequest, secret: bytes, body: bytes) -> None:
    """
    GitHub's ``X-Hub-Signature-256`` (SHA-256) or, as Crossbar checks it,
    ``X-Hub-Signature`` (SHA-1); compared in constant time.
    """
    headers = request.requestHeaders
    given256 = headers.getRawHeaders(b"x-hub-signature-256", [])
    given1 = headers.getRawHeaders(b"x-hub-signature", [])
    if given256:
        expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
        ok = hmac.compare_digest(expected, given256[0].strip().lower())
    elif given1:
        expected = b"sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest().encode()
        ok = hmac.compare_digest(expected, given1[0].strip().lower())
    else:
        ok = False
    if not ok:
        # Crossbar's message (a typo in its code makes it AR400, not AR467).
        raise DeniedError(
            "Malformed request to the REST bridge.",
            status=400,
            rest_status=401,
            uri="wampweb.error.unauthorized",
        )


def _query_args(request: IRequest) -> dict[bytes, list[bytes]]:
    """
    The query string's parameters only: Twisted merges a form body into
    ``request.args``, where a body field would replace a signed parameter.
    """
    if b"?" not in request.uri:
        return {}
    query = request.uri.split(b"?", 1)[1]
    # Twisted's own parser, as Crossbar's request.args uses: ';' separates too,
    # bytes stay bytes, and a name without '=' is not a parameter.
    parsed: dict[bytes, list[bytes]] = parse_qs(query, 1)
    return parsed


def _int_or_none(value: bytes) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _float_or_none(value: bytes) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def mount_bridge(
    web: Any,
    component: str = "default",
    *,
    publish: str | None = "/publish",
    call: str | None = "/call",
    webhook: str | None = "/webhook",
    settings: Mapping[BridgeKind, BridgeSettings] | None = None,
) -> None:
    """
    Mount the publisher, caller and webhook of ``component`` on ``web`` with
    Crossbar-compatible defaults (what ``wampweb run`` serves with no config).
    """
    managed = web[component]
    paths = {BridgeKind.PUBLISHER: publish, BridgeKind.CALLER: call, BridgeKind.WEBHOOK: webhook}
    for kind, path in paths.items():
        if path is None:
            continue
        # Unsigned, but a timestamp a client sends is still checked, as Crossbar does.
        chosen = (settings or {}).get(kind) or BridgeSettings(
            kind=kind, verifier=RequestVerifier((), clock=web.reactor)
        )
        web.mount(path, BridgeResource(managed, chosen))
