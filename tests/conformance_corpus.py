"""
The requests ``tests/test_conformance.py`` sends to Crossbar.io's own HTTP bridge and to
wampweb's ``crossbar`` mode, and what Crossbar.io answers to each.

Both servers get the same mounts: :data:`MOUNTS` is written once, in Crossbar's terms, and
becomes a Crossbar path service and a wampweb ``[[bridge]]`` table key for key. Each
:class:`Case` is one request (or a short sequence), built at send time for one side so that
signatures carry a current timestamp and a nonce of that side's own (wampweb remembers
nonces; Crossbar does not). A case names Crossbar's status (and usually its ``error``), so
it cannot pass by both servers failing the same wrong way, and every deliberate wampweb
difference is written out with its reason: any other difference fails the test.

Section numbers (``a.2``...) are those of ``shared/spec/crossbar-http-bridge.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

import attrs

from wampweb._signing import compute_signature

REALM = "realm1"
KEY = "foobar"
SECRET = "secret"
BODY_LIMIT = 100
GUARDED_LIMIT = 200
GITHUB_SECRET = "hubsecret"
#: Each side's webhooks publish to a topic of their own, so events can be told apart.
WEBHOOK_TOPIC = "conformance.webhook.{side}"
#: wampweb's body limit where a mount sets none (``wampweb._bridge.DEFAULT_BODY_LIMIT``).
WAMPWEB_DEFAULT_LIMIT = 1 << 20

# -- the mounts ---------------------------------------------------------------------------

#: Path -> (service type, Crossbar ``options``), each served by both sides.
MOUNTS: dict[str, tuple[str, dict[str, Any]]] = {
    "publish": ("publisher", {}),
    "call": ("caller", {}),
    "publish-signed": ("publisher", {"key": KEY, "secret": SECRET}),
    "call-signed": ("caller", {"key": KEY, "secret": SECRET}),
    # The spec's test vector (a.4) is from 2011: only a window of 0 lets it through.
    "publish-vector": ("publisher", {"key": KEY, "secret": SECRET, "timestamp_delta_limit": 0}),
    "publish-nowindow": ("publisher", {"timestamp_delta_limit": 0}),
    "publish-limited": ("publisher", {"post_body_limit": BODY_LIMIT}),
    "publish-ip": ("publisher", {"require_ip": ["10.0.0.0/8"]}),
    "publish-tls": ("publisher", {"require_tls": True}),
    # Every check at once, for the order of rows 6, 8-14, 15 and 16.
    "publish-guarded": (
        "publisher",
        {
            "key": KEY,
            "secret": SECRET,
            "post_body_limit": GUARDED_LIMIT,
            "require_ip": ["10.0.0.0/8"],
            "require_tls": True,
        },
    ),
    # Spec a.7 says Crossbar 26's webhook service fails at startup (crossbar#2171); the
    # installed 26.10.1 has the fix (@inlineCallbacks on RouterWebServiceWebhook.create)
    # and serves it, so the webhook is compared like the rest.
    "webhook": ("webhook", {"topic": WEBHOOK_TOPIC}),
    "webhook-github": ("webhook", {"topic": WEBHOOK_TOPIC, "github_secret": GITHUB_SECRET}),
}

#: What a wampweb mount needs beyond Crossbar's options, and why.
WAMPWEB_ONLY: dict[str, dict[str, Any]] = {
    # wampweb refuses signing keys without a window unless replay protection is off on
    # purpose (its memory would have to last forever); Crossbar has no replay protection.
    "publish-vector": {"replay_protection": False},
}


def _options_for(side: str, options: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.format(side=side) if name == "topic" else value
        for name, value in options.items()
    }


def crossbar_paths() -> dict[str, dict[str, Any]]:
    """The path services of Crossbar's web transport (``EmbeddedRouter.extra_paths``)."""
    paths = {}
    for path, (kind, options) in MOUNTS.items():
        service: dict[str, Any] = {"type": kind, "realm": REALM, "role": "anonymous"}
        if options:
            service["options"] = _options_for("crossbar", options)
        paths[path] = service
    return paths


def wampweb_bridge_tables() -> list[dict[str, Any]]:
    """The same mounts as wampweb ``[[bridge]]`` tables (Crossbar's option names)."""
    return [
        {
            "path": f"/{path}",
            "type": kind,
            **_options_for("wampweb", options),
            **WAMPWEB_ONLY.get(path, {}),
        }
        for path, (kind, options) in MOUNTS.items()
    ]


# -- requests -----------------------------------------------------------------------------

JSON_TYPE = (("Content-Type", "application/json"),)
FORM_TYPE = (("Content-Type", "application/x-www-form-urlencoded"),)


@attrs.frozen
class Raw:
    """
    One HTTP/1.1 request, byte for byte (the client adds ``Host`` and ``Connection: close``).

    ``framing``: ``length`` adds a ``Content-Length``; ``chunked`` sends ``body`` in
    ``chunks`` (sizes) with ``Transfer-Encoding: chunked``; ``none`` adds neither (for
    requests whose headers say it all, such as a duplicate ``Content-Length``).
    """

    method: str = "POST"
    path: str = "/publish"
    query: str = ""
    headers: tuple[tuple[str, str], ...] = JSON_TYPE
    body: bytes = b""
    framing: Literal["length", "chunked", "none"] = "length"
    chunks: tuple[int, ...] = ()

    def encode(self, host: str) -> bytes:
        target = self.path + (f"?{self.query}" if self.query else "")
        lines = [f"{self.method} {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        names = {name.lower() for name, _ in self.headers}
        if "connection" not in names:
            lines.append("Connection: close")
        body = self.body
        if self.framing == "length":
            lines.append(f"Content-Length: {len(body)}")
        elif self.framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
            body = _chunked(body, self.chunks or (len(body),))
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        return head + body


def _chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    out, at = [], 0
    for size in sizes:
        piece = body[at : at + size]
        at += size
        out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    if at < len(body):
        out.append(b"%x\r\n%s\r\n" % (len(body) - at, body[at:]))
    return b"".join(out) + b"0\r\n\r\n"


def minified(value: object) -> bytes:
    """What most clients send (crossbarconnect, Crossbar's own tests)."""
    return json.dumps(value, separators=(",", ":")).encode()


def post(
    path: str = "/publish",
    body: bytes | dict[str, Any] = b"",
    *,
    query: str = "",
    headers: tuple[tuple[str, str], ...] = JSON_TYPE,
    method: str = "POST",
    **more: Any,
) -> Raw:
    raw = minified(body) if isinstance(body, dict) else body
    return Raw(method=method, path=path, query=query, headers=headers, body=raw, **more)


def sized(length: int, topic: str = "conformance.sized") -> bytes:
    """A publish body of exactly ``length`` bytes."""
    empty = minified({"topic": topic, "args": [""]})
    if length < len(empty):
        raise ValueError(f"a publish body is at least {len(empty)} bytes, not {length}")
    body = minified({"topic": topic, "args": ["x" * (length - len(empty))]})
    assert len(body) == length
    return body


# -- signing ------------------------------------------------------------------------------

#: The spec's test vector (a.4), checked against :func:`compute_signature` by a test.
VECTOR_BODY = b'{"topic":"com.myapp.topic1","args":["Hello, world"]}'
VECTOR_TIMESTAMP = "2011-10-14T16:59:51.123Z"
VECTOR_SIGNATURE = "CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA="
VECTOR_STANDARD = "CtkX/B8rsSt/wM7B0ybn8Te4NfbupfjN8BWd2AllYZA="


def vector_query(signature: str = VECTOR_SIGNATURE, *, raw_equals: bool = False) -> str:
    query = urlencode(
        [
            ("key", KEY),
            ("timestamp", VECTOR_TIMESTAMP),
            ("seq", "1"),
            ("nonce", "123456"),
            ("signature", signature),
        ]
    )
    return query.replace("%3D", "=") if raw_equals else query


def ts_ms(when: datetime) -> str:
    """``autobahn.util.utcnow()``: milliseconds and ``Z`` (crossbarconnect, Crossbar's tests)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ts_us(when: datetime) -> str:
    """``strftime('%Y-%m-%dT%H:%M:%S.%fZ')``: microseconds (crossbarhttp, PHP ``.u``)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_isoformat(when: datetime) -> str:
    """crossbarhttp3: ``utcnow().isoformat() + 'Z'`` (no fraction when microsecond is 0)."""
    return when.replace(tzinfo=None).isoformat() + "Z"


class Signer:
    """
    Signs one side's requests. Nonces count up from ``first_nonce``: the two sides start
    far apart, so no signed request is ever sent twice by accident.
    """

    def __init__(self, side: str, first_nonce: int) -> None:
        self.side = side
        self._next_nonce = first_nonce

    def nonce(self) -> str:
        self._next_nonce += 1
        return str(self._next_nonce)

    def now(self, offset: float = 0.0) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=offset)

    def query(
        self,
        body: bytes,
        *,
        key: str = KEY,
        secret: str = SECRET,
        timestamp: str | None = None,
        seq: str = "1",
        nonce: str | None = None,
        signature: str | None = None,
        signed_key: str | None = None,
        omit: Sequence[str] = (),
        extra: Sequence[tuple[str, str]] = (),
        order: Sequence[str] = ("key", "timestamp", "seq", "nonce", "signature"),
    ) -> str:
        """
        A signed query string for ``body``; every field can be replaced or left out.
        ``signed_key`` signs with another key than the one sent.
        """
        fields = {
            "key": key,
            "timestamp": ts_ms(self.now()) if timestamp is None else timestamp,
            "seq": seq,
            "nonce": self.nonce() if nonce is None else nonce,
        }
        if signature is None:
            signature = compute_signature(
                secret.encode(),
                key if signed_key is None else signed_key,
                fields["timestamp"],
                seq,
                fields["nonce"],
                body,
            )
        fields["signature"] = signature
        pairs = [(name, fields[name]) for name in order if name not in omit]
        return urlencode([*pairs, *extra], quote_via=quote)

    def nonce_with_urlsafe_signature(
        self, body: bytes, timestamp: str, seq: str = "1"
    ) -> tuple[str, str]:
        """
        A nonce whose signature has a ``-`` or ``_``, so that its standard-alphabet form
        differs (a quarter of signatures have neither).
        """
        for _ in range(100):
            nonce = self.nonce()
            signature = compute_signature(SECRET.encode(), KEY, timestamp, seq, nonce, body)
            if "-" in signature or "_" in signature:
                return nonce, signature
        raise AssertionError("no URL-safe character in 100 signatures")


def standard_alphabet(signature: str) -> str:
    return signature.replace("-", "+").replace("_", "/")


def github_signature(body: bytes, secret: str = GITHUB_SECRET) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


# -- cases --------------------------------------------------------------------------------

Build = Callable[[Signer], "Raw | Sequence[Raw]"]


@attrs.frozen
class Case:
    """
    One request of the corpus and Crossbar's answer to it.

    ``crossbar`` is Crossbar's status and ``error`` its ``error`` string (a trailing ``…``
    matches a prefix), both checked. ``expected_difference`` says why wampweb answers
    otherwise, on purpose: ``wampweb`` is then its status, and only the parts named in
    ``differs`` (of ``status``, ``body``, ``headers``) may differ. ``bug`` marks a case that
    fails because of a reported wampweb bug, until it is fixed. ``client`` is what the
    client of a.12 that sends this request needs from the (parsed JSON) answer.
    """

    name: str
    build: Raw | Build
    crossbar: int
    error: str | None = None
    expected_difference: str | None = None
    wampweb: int | None = None
    differs: frozenset[str] = frozenset({"status", "body"})
    bug: str | None = None
    client: Callable[[int, Any], bool] | None = None

    def requests(self, signer: Signer) -> list[Raw]:
        built = self.build if isinstance(self.build, Raw) else self.build(signer)
        return [built] if isinstance(built, Raw) else list(built)


# Crossbar's messages (crossbar/_log_categories.py).
AR400 = "Malformed request to the REST bridge."
AR413 = "Request too long. ({length} is longer than accepted {limit})"
AR450 = "Non-accepted request encoding, must be UTF-8."
AR451 = "Non-decodable request body, was not UTF-8."
AR452 = "Non-accepted content type. (must be one of '[b'application/json']', not '{given}')"
AR453 = "Request body was invalid JSON."
AR454 = "Request body was valid JSON, but not well formed (must be a dict)."
AR455 = "Request body was valid JSON, but not well formed (missing key '{key}')."
AR459 = "REST bridge signature secret not valid."
AR460 = "REST bridge signature key not valid."
AR461 = "REST bridge signature was invalid (missing mandatory field - {reason})."
AR462_TIMESTAMP = (
    "REST bridge signature was invalid (invalid timestamp '{value}' "
    "(must be UTC/ISO-8601, e.g. '2011-10-14T16:59:51.123Z'))."
)
AR462_TIMESTAMP_PREFIX = "REST bridge signature was invalid (invalid timestamp '…"
AR462_SEQ = (
    "REST bridge signature was invalid (invalid sequence number '{value}' (must be an integer))."
)
AR462_NONCE = "REST bridge signature was invalid (invalid nonce '{value}' (must be an integer))."
AR464 = "Request expired, too old timestamp."
AR466 = "Request denied based on IP address."
AR405 = "Method not accepted by the REST bridge. (b'{method}' not allowed, only POST, PUT)"
CB500 = "Unhandled exception in Crossbar."
RUNTIME_ERROR = "wamp.error.runtime_error"

# Deliberate differences, one line each (the full reasons are in wampweb's modules).
STRICT_JSON = (
    "stricter JSON: wampweb refuses what not every WAMP peer/serializer carries (_jsonbody)"
)
STRICT_FIELDS = "stricter fields: wampweb type-checks args/kwargs/options; Crossbar splats or drops"
CROSSBAR_500 = "Crossbar 500s on this bad request (an exception escapes its pipeline); wampweb 400s"
REPLAY = "replay protection: wampweb refuses a signed request or nonce seen within the window"
DEFAULT_LIMIT = "wampweb bounds bodies to 1 MiB where Crossbar's post_body_limit 0 is unlimited"
GITHUB_256 = "wampweb also checks GitHub's X-Hub-Signature-256, which Crossbar ignores"
NON_ASCII = (
    "Crossbar 500s on non-ASCII bytes in a parameter's name (or in a signing parameter's "
    "value): its native_string() decodes them as ASCII; wampweb answers the request"
)
FORM_FIELDS = (
    "wampweb reads signing parameters from the query only; Crossbar's request.args also "
    "holds a form body's fields (which then override the query's)"
)
EARLY_413 = (
    "wampweb refuses an oversized body before inviting it (Expect: 100-continue, or over "
    "1 MiB), so its 413 comes before the content-type rows"
)


def _publish(path: str = "/publish", **body: Any) -> Raw:
    return post(path, {"topic": "conformance.topic", **body})


def _call(procedure: str, path: str = "/call", **body: Any) -> Raw:
    return post(path, {"procedure": procedure, **body})


def _signed(
    path: str, body: bytes, headers: tuple[tuple[str, str], ...] = JSON_TYPE, **query: Any
) -> Build:
    def build(signer: Signer) -> Raw:
        return post(path, body, query=signer.query(body, **query), headers=headers)

    return build


PUBLISH_BODY = minified({"topic": "conformance.signed", "args": [1, "two"]})
CALL_BODY = minified({"procedure": "conformance.single"})


def _has_id(status: int, body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("id"), int)


def _ok_with_id(status: int, body: Any) -> bool:
    return status == 200 and _has_id(status, body)


def _crossbarconnect_accepts(status: int, body: Any) -> bool:
    # client.py: `if res.status != 202: raise Exception(...)`, then `res['id']`.
    return status == 202 and _has_id(status, body)


def _first_result_is(expected: object) -> Callable[[int, Any], bool]:
    def accepts(status: int, body: Any) -> bool:
        return status == 200 and isinstance(body, dict) and body.get("args", [None])[0] == expected

    return accepts


def _no_callee(status: int, body: Any) -> bool:
    # crossbarhttp: `"error" in response` containing no_such_procedure -> ClientNoCalleeRegistered.
    error = body.get("error") if isinstance(body, dict) else None
    return status == 200 and "wamp.error.no_such_procedure" in str(error)


def _methods_and_preflight() -> list[Case]:
    refused = [
        Case(f"{m} is refused", post(method=m), 405, AR405.format(method=m))
        for m in ("GET", "DELETE", "PATCH")
    ]
    return [
        *refused,
        Case("HEAD is refused", post(method="HEAD"), 405),
        Case(
            "a lower-case method is refused",
            post(body={"topic": "a.b"}, method="post"),
            405,
            AR405.format(method="post"),
        ),
        Case("PUT publishes like POST", post(body={"topic": "a.b"}, method="PUT"), 200),
        Case(
            "PUT calls like POST",
            post("/call", {"procedure": "conformance.single"}, method="PUT"),
            200,
        ),
        Case("OPTIONS preflight", post(method="OPTIONS", headers=()), 200),
        Case(
            "OPTIONS with an Origin echoes it",
            post(method="OPTIONS", headers=(("Origin", "https://app.example.com"),)),
            200,
        ),
        Case(
            "OPTIONS with Origin: null answers *",
            post(method="OPTIONS", headers=(("Origin", "null"),)),
            200,
        ),
        Case(
            "OPTIONS echoes Access-Control-Request-Headers",
            post(
                method="OPTIONS",
                headers=(
                    ("Origin", "https://app.example.com"),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", "content-type, x-custom"),
                ),
            ),
            200,
        ),
        Case(
            "OPTIONS skips every check (signed, IP, TLS mount)",
            post("/publish-guarded", method="OPTIONS", headers=()),
            200,
        ),
        Case(
            "OPTIONS skips every check (caller, signed)",
            post("/call-signed", method="OPTIONS", headers=()),
            200,
        ),
        Case(
            "OPTIONS with a body",
            post(method="OPTIONS", body=b"not json"),
            200,
        ),
        Case("GET on a signed mount is refused first", post("/publish-guarded", method="GET"), 405),
        Case("GET on the webhook is refused", post("/webhook", method="GET"), 405),
    ]


def _happy_paths() -> list[Case]:
    return [
        Case("publish happy path", _publish(args=["Hello, world"]), 200, client=_ok_with_id),
        Case("publish with args and kwargs", _publish(args=[1, 2], kwargs={"a": 1}), 200),
        Case(
            "publish to a sub-path of the mount", post("/publish/sub/path", {"topic": "a.b"}), 200
        ),
        Case(
            "publish with an Origin echoes it",
            post(
                body={"topic": "a.b"}, headers=(*JSON_TYPE, ("Origin", "https://app.example.com"))
            ),
            200,
        ),
        Case(
            "publish with Origin: null answers *",
            post(body={"topic": "a.b"}, headers=(*JSON_TYPE, ("Origin", "null"))),
            200,
        ),
        Case(
            "publish echoes Access-Control-Request-Headers",
            post(
                body={"topic": "a.b"},
                headers=(*JSON_TYPE, ("Access-Control-Request-Headers", "x-a")),
            ),
            200,
        ),
        Case(
            "publish with known options",
            _publish(options={"exclude_me": False, "exclude_authrole": ["nobody"]}),
            200,
        ),
        Case(
            "publish with unknown options (ignored)",
            _publish(options={"acknowledge": False, "foo": 1}),
            200,
        ),
        Case(
            "publish with PHP's empty maps ([] for {})",
            _publish(args={}, kwargs=[], options=[]),
            200,
        ),
        Case(
            "publish with null args/kwargs/options",
            _publish(args=None, kwargs=None, options=None),
            200,
        ),
        Case("publish with extra top-level keys (ignored)", _publish(extra=True), 200),
        Case(
            "publish with unknown query parameters (ignored)",
            post(body={"topic": "a.b"}, query="foo=bar&debug=1"),
            200,
        ),
        Case(
            "publish to a wamp.* topic (router's WAMP error)",
            post(body={"topic": "wamp.session.on_join"}),
            200,
        ),
        Case(
            "publish non-ASCII payload",
            post(body={"topic": "a.b", "args": ["grüße ☃"]}),
            200,
        ),
    ]


def _caller_shapes() -> list[Case]:
    return [
        Case(
            "call: a single value -> args [v]",
            _call("conformance.single"),
            200,
            client=_first_result_is(42),
        ),
        Case(
            "call: None -> args [null]",
            _call("conformance.none"),
            200,
            client=_first_result_is(None),
        ),
        Case(
            "call: a list -> args [[...]]",
            _call("conformance.list"),
            200,
            client=_first_result_is([1, 2, 3]),
        ),
        Case("call: CallResult of several results -> args", _call("conformance.multi"), 200),
        Case(
            "call: CallResult of kwargs only -> no args key", _call("conformance.kwargs_only"), 200
        ),
        Case("call: CallResult of args and kwargs", _call("conformance.args_and_kwargs"), 200),
        Case("call: empty CallResult", _call("conformance.empty"), 200),
        Case("call: non-ASCII result", _call("conformance.unicode"), 200),
        Case(
            "call: args and kwargs reach the callee",
            _call("conformance.echo", args=[1, "a", None], kwargs={"k": [1]}),
            200,
        ),
        Case("call: PHP's empty maps", _call("conformance.echo", args={}, kwargs=[]), 200),
        Case(
            "call: options are ignored (Crossbar has none)",
            _call("conformance.single", options={"timeout": 5, "disclose_me": True}),
            200,
        ),
        Case(
            "call: app error with custom URI, args and kwargs -> 200 envelope",
            _call("conformance.app_error"),
            200,
            "com.example.error.custom",
        ),
        Case(
            "call: app error without args -> 200 envelope",
            _call("conformance.bare_error"),
            200,
            "com.example.error.bare",
        ),
        Case(
            "call: callee raises a plain Exception -> runtime_error",
            _call("conformance.plain_error"),
            200,
            RUNTIME_ERROR,
        ),
        Case(
            "call: no such procedure",
            _call("conformance.nobody"),
            200,
            "wamp.error.no_such_procedure",
            client=_no_callee,
        ),
        Case(
            "call: router meta API",
            _call("wamp.registration.lookup", args=["conformance.single"]),
            200,
        ),
    ]


def _content_types() -> list[Case]:
    body = minified({"topic": "a.b"})

    def typed(value: str, *more: tuple[str, str]) -> Raw:
        return post(body=body, headers=(("Content-Type", value), *more))

    return [
        Case(
            "row 2: a form body with a non-ASCII field name",
            post(body=b"%C3%A9=1", headers=FORM_TYPE),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=400,
        ),
        Case(
            "row 2: text/plain is refused",
            typed("text/plain"),
            400,
            AR452.format(given="b'text/plain'"),
        ),
        Case(
            "row 2: form-encoded is refused",
            typed("application/x-www-form-urlencoded"),
            400,
            AR452.format(given="b'application/x-www-form-urlencoded'"),
        ),
        Case(
            "row 2: a +json type is refused",
            typed("application/json-patch+json"),
            400,
            AR452.format(given="b'application/json-patch+json'"),
        ),
        Case("row 2: an empty Content-Type is refused", typed(""), 400, AR452.format(given="b''")),
        Case("row 2: a missing Content-Type is accepted", post(body=body, headers=()), 200),
        Case("row 2: the type is case-insensitive", typed("APPLICATION/JSON"), 200),
        Case(
            "row 2 before 3: wrong type and wrong charset",
            typed("text/plain; charset=latin-1"),
            400,
            AR452.format(given="b'text/plain'"),
        ),
        Case(
            "row 2: the first of two Content-Type headers counts",
            typed("application/json", ("Content-Type", "text/plain")),
            200,
        ),
        Case(
            "row 3: charset latin-1 is refused",
            typed("application/json; charset=latin-1"),
            400,
            AR450,
        ),
        Case("row 3: charset utf8 is accepted", typed("application/json; charset=utf8"), 200),
        Case("row 3: charset UTF-8 without a space", typed("application/json;charset=UTF-8"), 200),
        Case(
            "row 3: a duplicate charset is refused",
            typed("application/json; charset=utf-8; charset=utf-8"),
            400,
            AR450,
        ),
        Case(
            "row 3: a parameter with two '=' is refused",
            typed("application/json; a=b=c"),
            400,
            AR450,
        ),
        Case(
            "row 3: a quoted charset is refused",
            typed('application/json; charset="utf-8"'),
            400,
            AR450,
        ),
        Case(
            "row 3: a parameter without '=' is ignored",
            typed("application/json; charset=utf-8; foo"),
            200,
        ),
        Case("row 3: another parameter is ignored", typed("application/json; boundary=x"), 200),
        Case(
            "row 3 before 17: latin-1 charset and a latin-1 body",
            post(
                body=b'{"topic":"a.b","args":["gr\xfc\xdfe"]}',
                headers=(("Content-Type", "application/json; charset=latin-1"),),
            ),
            400,
            AR450,
        ),
    ]


def _lengths() -> list[Case]:
    body = minified({"topic": "a.b"})
    limited = "/publish-limited"
    too_long = AR413.format(length=BODY_LIMIT + 1, limit=BODY_LIMIT)
    return [
        Case(
            "row 4: a duplicate Content-Length (Twisted refuses it first)",
            post(
                body=body,
                headers=(
                    *JSON_TYPE,
                    ("Content-Length", str(len(body))),
                    ("Content-Length", str(len(body))),
                ),
                framing="none",
            ),
            400,
        ),
        Case(
            "row 5: a non-numeric Content-Length (Twisted refuses it first)",
            post(body=body, headers=(*JSON_TYPE, ("Content-Length", "abc")), framing="none"),
            400,
        ),
        Case(
            "row 5: a body longer than Content-Length (the rest is a next request)",
            post(body=body, headers=(*JSON_TYPE, ("Content-Length", "5")), framing="none"),
            400,
            AR453,
        ),
        Case(
            "chunked body without Content-Length",
            post(body=body, framing="chunked", chunks=(3, 4)),
            200,
        ),
        Case("row 6: body = post_body_limit is accepted", post(limited, sized(BODY_LIMIT)), 200),
        Case(
            "row 6: body = post_body_limit + 1 -> 413",
            post(limited, sized(BODY_LIMIT + 1)),
            413,
            too_long,
        ),
        Case(
            "row 6: chunked body over the limit -> 413",
            post(limited, sized(BODY_LIMIT + 1), framing="chunked"),
            413,
            too_long,
        ),
        Case(
            "row 6: chunked body over the limit in three chunks -> 413 with the whole length",
            post(limited, sized(180), framing="chunked", chunks=(60, 60, 60)),
            413,
            AR413.format(length=180, limit=BODY_LIMIT),
        ),
        Case(
            "row 6: chunked body at the limit",
            post(limited, sized(BODY_LIMIT), framing="chunked", chunks=(50, 50)),
            200,
        ),
        Case(
            "row 2 before 6: wrong type and over the limit",
            post(limited, sized(BODY_LIMIT + 1), headers=(("Content-Type", "text/plain"),)),
            400,
            AR452.format(given="b'text/plain'"),
        ),
        Case(
            "row 3 before 6: wrong charset and over the limit",
            post(
                limited,
                sized(BODY_LIMIT + 1),
                headers=(("Content-Type", "application/json; charset=latin-1"),),
            ),
            400,
            AR450,
        ),
        Case(
            "row 6 before 17: over the limit and not UTF-8",
            post(limited, b'{"topic":"a.b","args":["\xff' + b"x" * BODY_LIMIT + b'"]}'),
            413,
        ),
        Case(
            "row 6: over the limit with Expect: 100-continue",
            post(limited, sized(BODY_LIMIT + 1), headers=(*JSON_TYPE, ("Expect", "100-continue"))),
            413,
            too_long,
        ),
        Case(
            "row 6: a body over 1 MiB on a limited mount",
            post(limited, sized(WAMPWEB_DEFAULT_LIMIT + 1)),
            413,
            AR413.format(length=WAMPWEB_DEFAULT_LIMIT + 1, limit=BODY_LIMIT),
        ),
        Case(
            "row 2 before 6: wrong type, over the limit, Expect: 100-continue",
            post(
                limited,
                sized(BODY_LIMIT + 1),
                headers=(("Content-Type", "text/plain"), ("Expect", "100-continue")),
            ),
            400,
            AR452.format(given="b'text/plain'"),
            expected_difference=EARLY_413,
            wampweb=413,
        ),
        Case(
            "no post_body_limit: a body over 1 MiB",
            post("/publish", sized(WAMPWEB_DEFAULT_LIMIT + 1)),
            200,
            expected_difference=DEFAULT_LIMIT,
            wampweb=413,
        ),
        Case("row 18: Content-Length 0 (empty body)", post(body=b""), 400, AR453),
    ]


def _signing_order() -> list[Case]:
    path = "/publish-signed"
    b = PUBLISH_BODY
    return [
        Case(
            "signed, an unrelated parameter with a non-ASCII value",
            lambda s: post(path, b, query=s.query(b, extra=[("note", "été")])),
            200,
        ),
        Case(
            "signed, parameters separated by ';'",
            lambda s: post(path, b, query=s.query(b).replace("&", ";")),
            200,
        ),
        Case(
            "row 8: key missing",
            _signed(path, b, omit=("key",)),
            400,
            AR461.format(reason="'key' field missing"),
        ),
        Case(
            "row 8 before 9: key missing and a bad timestamp",
            _signed(path, b, omit=("key",), timestamp="yesterday"),
            400,
            AR461.format(reason="'key' field missing"),
        ),
        Case(
            "row 9: invalid timestamp",
            _signed(path, b, timestamp="yesterday"),
            400,
            AR462_TIMESTAMP.format(value="yesterday"),
        ),
        Case(
            "row 9c: timestamp missing",
            _signed(path, b, omit=("timestamp",)),
            400,
            AR461.format(reason="signed request required, but mandatory 'timestamp' field missing"),
        ),
        Case(
            "row 9 before 10: bad timestamp and seq missing",
            _signed(path, b, timestamp="2011-10-14", omit=("seq",)),
            400,
            AR462_TIMESTAMP.format(value="2011-10-14"),
        ),
        Case(
            "row 10: seq missing",
            _signed(path, b, omit=("seq",)),
            400,
            AR461.format(reason="'seq' field missing"),
        ),
        Case(
            "row 10: seq not an integer",
            _signed(path, b, seq="one"),
            400,
            AR462_SEQ.format(value="one"),
        ),
        Case(
            "row 10 before 11: bad seq and nonce missing",
            _signed(path, b, seq="x", omit=("nonce",)),
            400,
            AR462_SEQ.format(value="x"),
        ),
        Case(
            "row 11: nonce missing",
            _signed(path, b, omit=("nonce",)),
            400,
            AR461.format(reason="'nonce' field missing"),
        ),
        Case(
            "row 11: nonce not an integer",
            _signed(path, b, nonce="1e3"),
            400,
            AR462_NONCE.format(value="1e3"),
        ),
        Case("row 11: empty nonce", _signed(path, b, nonce=""), 400, AR462_NONCE.format(value="")),
        Case(
            "row 12: signature missing",
            _signed(path, b, omit=("signature",)),
            400,
            AR461.format(reason="'signature' field missing"),
        ),
        Case(
            "row 12 before 13: signature missing and a wrong key",
            _signed(path, b, key="nobody", omit=("signature",)),
            400,
            AR461.format(reason="'signature' field missing"),
        ),
        Case("row 13: wrong key -> 401", _signed(path, b, key="nobody"), 401, AR460),
        Case("row 13: empty key -> 401", _signed(path, b, key=""), 401, AR460),
        Case(
            "row 9b before 13: expired timestamp and a wrong key",
            lambda s: post(path, b, query=s.query(b, key="nobody", timestamp=ts_ms(s.now(-3600)))),
            400,
            AR464,
        ),
        Case(
            "row 13 before 14: wrong key and a wrong signature",
            _signed(path, b, key="nobody", signature="AAAA"),
            401,
            AR460,
        ),
        Case("row 14: wrong secret -> 401", _signed(path, b, secret="not-the-secret"), 401, AR459),
        Case(
            "row 14: signed with another key's name",
            _signed(path, b, signed_key="other"),
            401,
            AR459,
        ),
        Case(
            "row 14: signature over another body",
            lambda s: post(path, b, query=s.query(b + b" ")),
            401,
            AR459,
        ),
        Case("signed publish, happy path", _signed(path, b), 200, client=_ok_with_id),
        Case(
            "signed call, happy path",
            _signed("/call-signed", CALL_BODY),
            200,
            client=_first_result_is(42),
        ),
        Case(
            "signed call, wrong secret",
            _signed("/call-signed", CALL_BODY, secret="nope"),
            401,
            AR459,
        ),
        Case(
            "signed, parameters in another order",
            _signed(path, b, order=("signature", "nonce", "seq", "timestamp", "key")),
            200,
        ),
        Case(
            "signed, a repeated parameter: the first counts",
            lambda s: post(
                path, b, query=s.query(b, extra=[("seq", "not-a-number"), ("key", "x")])
            ),
            200,
        ),
        Case(
            "signed, the signature's '=' not percent-encoded",
            lambda s: post(path, b, query=s.query(b).replace("%3D", "=")),
            200,
        ),
        Case("signed, seq and nonce negative", _signed(path, b, seq="-5", nonce="-7"), 200),
        Case(
            "signed, nonce up to PHP_INT_MAX (2**63-1)",
            _signed(path, b, nonce="9223372036854775807"),
            200,
        ),
        Case("signed, nonce beyond 2**64", _signed(path, b, nonce=str(2**70 + 12345)), 200),
        Case(
            "signed, seq with underscores (Python int() reads 1_000)",
            _signed(path, b, seq="1_000"),
            200,
        ),
        Case("signed, seq with surrounding spaces", _signed(path, b, seq=" 3 "), 200),
        Case(
            "signed, a non-ASCII key",
            _signed(path, b, key="clé"),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=401,
        ),
        Case(
            "signed, a non-ASCII nonce",
            _signed(path, b, nonce="\u0667"),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=400,
        ),
    ]


def _signature_forms() -> list[Case]:
    path = "/publish-signed"
    b = PUBLISH_BODY

    def standard(signer: Signer) -> Raw:
        timestamp = ts_ms(signer.now())
        nonce, signature = signer.nonce_with_urlsafe_signature(b, timestamp)
        query = signer.query(
            b, timestamp=timestamp, nonce=nonce, signature=standard_alphabet(signature)
        )
        return post(path, b, query=query)

    def unpadded(signer: Signer) -> Raw:
        timestamp = ts_ms(signer.now())
        nonce = signer.nonce()
        signature = compute_signature(SECRET.encode(), KEY, timestamp, "1", nonce, b)
        query = signer.query(b, timestamp=timestamp, nonce=nonce, signature=signature.rstrip("="))
        return post(path, b, query=query)

    vector = "/publish-vector"
    return [
        Case(
            "a.4 test vector, verbatim (window 300: expired)",
            post(path, VECTOR_BODY, query=vector_query()),
            400,
            AR464,
        ),
        Case(
            "a.4 test vector, verbatim (window 0)",
            post(vector, VECTOR_BODY, query=vector_query()),
            200,
        ),
        Case(
            "a.4 test vector, '=' not percent-encoded",
            post(vector, VECTOR_BODY, query=vector_query(raw_equals=True)),
            200,
        ),
        Case(
            "a.4 test vector, standard alphabet",
            post(vector, VECTOR_BODY, query=vector_query(VECTOR_STANDARD)),
            401,
            AR459,
        ),
        Case(
            "a.4 test vector, unpadded",
            post(vector, VECTOR_BODY, query=vector_query(VECTOR_SIGNATURE.rstrip("="))),
            401,
            AR459,
        ),
        Case(
            "a.4 test vector, standard alphabet unpadded",
            post(vector, VECTOR_BODY, query=vector_query(VECTOR_STANDARD.rstrip("="))),
            401,
            AR459,
        ),
        Case(
            "a.4 test vector, body with a trailing newline",
            post(vector, VECTOR_BODY + b"\n", query=vector_query()),
            401,
            AR459,
        ),
        Case(
            "a.4 test vector, no Content-Type",
            post(vector, VECTOR_BODY, query=vector_query(), headers=()),
            200,
        ),
        Case("current timestamp, standard alphabet", standard, 401, AR459),
        Case("current timestamp, unpadded", unpadded, 401, AR459),
    ]


def _timestamps() -> list[Case]:
    path = "/publish-signed"
    b = PUBLISH_BODY

    def at(offset: float, form: Callable[[datetime], str] = ts_ms) -> Build:
        return lambda s: post(path, b, query=s.query(b, timestamp=form(s.now(offset))))

    def shaped(shape: Callable[[datetime], str]) -> Build:
        return lambda s: post(path, b, query=s.query(b, timestamp=shape(s.now())))

    def one_digit(when: datetime) -> str:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-5] + "Z"

    def lower_case(when: datetime) -> str:
        return ts_ms(when).replace("T", "t").replace("Z", "z")

    def invalid(timestamp: str, name: str) -> Case:
        # The format is checked before the window, so a fixed (old) instant will do, and
        # the refusal, which shows it, is the same on both sides.
        return Case(
            f"timestamp {name} is refused",
            _signed(path, b, timestamp=timestamp),
            400,
            AR462_TIMESTAMP.format(value=timestamp),
        )

    return [
        Case("timestamp in milliseconds", at(0), 200),
        Case("timestamp in microseconds", at(0, ts_us), 200),
        Case("timestamp with one fractional digit", shaped(one_digit), 200),
        Case("timestamp in lower case (t, z)", shaped(lower_case), 200),
        Case("timestamp 60 s in the future", at(60), 200),
        Case("timestamp 250 s in the past", at(-250), 200),
        Case("timestamp 400 s in the future -> expired", at(400), 400, AR464),
        Case("timestamp 400 s in the past -> expired", at(-400), 400, AR464),
        invalid("2011-10-14T16:59:51Z", "without a fraction"),
        invalid("2011-10-14T16:59:51.123+00:00", "with +00:00"),
        invalid("2011-10-14T16:59:51.1234567Z", "with 7 fractional digits"),
        invalid("2011-10-14 16:59:51.123Z", "with a space for T"),
        invalid("2011-10-14T16:59:51.123", "without Z"),
        invalid("1318611591.123", "as POSIX seconds"),
        Case(
            "timestamp with non-ASCII digits",
            _signed(path, b, timestamp="٢٠١١-10-14T16:59:51.123Z"),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=400,
        ),
        Case(
            "timestamp with a non-UTF-8 byte",
            lambda s: post(path, b, query=s.query(b).replace("timestamp=", "timestamp=%FF", 1)),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=400,
        ),
    ]


def _unsigned_parameters() -> list[Case]:
    body = minified({"topic": "a.b"})

    def query(**fields: str) -> str:
        return urlencode(fields)

    def now_ms(offset: float = 0.0) -> Build:
        return lambda s: post(body=body, query=query(timestamp=ts_ms(s.now(offset)), seq="1"))

    return [
        Case(
            "unsigned: an unrelated parameter with a non-ASCII value",
            post(body=body, query="note=%C3%A9t%C3%A9"),
            200,
        ),
        Case(
            "unsigned: an unrelated parameter with a non-UTF-8 byte",
            post(body=body, query="note=%FF"),
            200,
        ),
        Case(
            "unsigned: ';' separates parameters (Twisted's request.args)",
            post(body=body, query="seq=1;timestamp=now"),
            400,
            AR462_TIMESTAMP.format(value="now"),
        ),
        Case(
            "unsigned: a parameter without '=' is absent (Twisted's request.args)",
            post(body=body, query="timestamp"),
            200,
        ),
        Case(
            "unsigned: an empty seq is invalid",
            post(body=body, query="seq="),
            400,
            AR462_SEQ.format(value=""),
        ),
        Case(
            "unsigned: '+' in a value reads as a space",
            post(body=body, query="seq=1+2"),
            400,
            AR462_SEQ.format(value="1 2"),
        ),
        Case("unsigned: a current timestamp and seq", now_ms(), 200),
        Case("unsigned: an expired timestamp is refused (row 9b)", now_ms(-3600), 400, AR464),
        Case("unsigned: a future timestamp is refused (row 9b)", now_ms(3600), 400, AR464),
        Case(
            "unsigned: an invalid timestamp is refused",
            post(body=body, query="timestamp=now"),
            400,
            AR462_TIMESTAMP.format(value="now"),
        ),
        Case(
            "unsigned: an invalid seq is refused",
            post(body=body, query="seq=x"),
            400,
            AR462_SEQ.format(value="x"),
        ),
        Case(
            "unsigned: an invalid nonce is refused",
            post(body=body, query="nonce=x"),
            400,
            AR462_NONCE.format(value="x"),
        ),
        Case(
            "unsigned: key and signature are ignored",
            post(body=body, query="key=nobody&signature=AAAA"),
            200,
        ),
        Case(
            "window 0: a 2011 timestamp is accepted",
            post("/publish-nowindow", body, query=query(timestamp=VECTOR_TIMESTAMP)),
            200,
        ),
        Case(
            "unsigned: a non-ASCII query parameter name",
            post(body=body, query="%C3%A9=1"),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=200,
        ),
        Case(
            "unsigned: a non-ASCII seq",
            post(body=body, query="seq=%D9%A1"),
            500,
            CB500,
            expected_difference=NON_ASCII,
            wampweb=400,
        ),
    ]


def _ip_and_tls() -> list[Case]:
    body = minified({"topic": "a.b"})
    guarded = "/publish-guarded"
    return [
        Case("row 15: client not in require_ip", post("/publish-ip", body), 400, AR466),
        Case(
            "row 15: X-Forwarded-For is not believed",
            post("/publish-ip", body, headers=(*JSON_TYPE, ("X-Forwarded-For", "10.1.2.3"))),
            400,
            AR466,
        ),
        Case("row 16: require_tls over plain HTTP", post("/publish-tls", body), 400, AR400),
        Case(
            "row 16: X-Forwarded-Proto is not believed",
            post("/publish-tls", body, headers=(*JSON_TYPE, ("X-Forwarded-Proto", "https"))),
            400,
            AR400,
        ),
        Case(
            "rows 8-14 before 15: unsigned and a bad IP -> signing error",
            post(guarded, body),
            400,
            AR461.format(reason="'key' field missing"),
        ),
        Case(
            "rows 8-14 before 15: wrong secret and a bad IP -> 401",
            _signed(guarded, body, secret="nope"),
            401,
            AR459,
        ),
        Case(
            "row 15 before 16: signed, bad IP, no TLS -> IP error",
            _signed(guarded, body),
            400,
            AR466,
        ),
        Case(
            "row 6 before 8: over the limit and unsigned -> 413",
            post(guarded, sized(GUARDED_LIMIT + 1)),
            413,
            AR413.format(length=GUARDED_LIMIT + 1, limit=GUARDED_LIMIT),
        ),
        Case(
            "row 2 before 8: wrong type and unsigned",
            post(guarded, body, headers=(("Content-Type", "text/plain"),)),
            400,
            AR452.format(given="b'text/plain'"),
        ),
        Case(
            "rows 15/16 before 17: signed, not UTF-8, bad IP -> IP error",
            _signed(guarded, b"\xff\xfe"),
            400,
            AR466,
        ),
    ]


def _bodies() -> list[Case]:
    return [
        Case("row 17: body not UTF-8", post(body=b'{"topic":"a.b","args":["\xff"]}'), 400, AR451),
        Case(
            "row 17: UTF-8-encoded surrogate",
            post(body=b'{"topic":"a.b","args":["\xed\xa0\x80"]}'),
            400,
            AR451,
        ),
        Case(
            "row 17: overlong UTF-8", post(body=b'{"topic":"a.b","args":["\xc0\xaf"]}'), 400, AR451
        ),
        Case(
            "row 17 before 18: not UTF-8 and not JSON", post(body=b"\xff\xfe not json"), 400, AR451
        ),
        Case("row 18: empty body", post(body=b""), 400, AR453),
        Case("row 18: whitespace only", post(body=b"  \r\n"), 400, AR453),
        Case("row 18: invalid JSON", post(body=b'{"topic":'), 400, AR453),
        Case("row 18: a UTF-8 BOM", post(body=b'\xef\xbb\xbf{"topic":"a.b"}'), 400, AR453),
        Case("row 18: trailing garbage", post(body=b'{"topic":"a.b"} x'), 400, AR453),
        Case("row 18: single quotes", post(body=b"{'topic':'a.b'}"), 400, AR453),
        Case(
            "row 18: no Content-Type and not JSON", post(body=b"topic=a.b", headers=()), 400, AR453
        ),
        Case("row 19: a JSON array", post(body=b'[{"topic":"a.b"}]'), 400, AR454),
        Case("row 19: a JSON string", post(body=b'"a.b"'), 400, AR454),
        Case("row 19: JSON null", post(body=b"null"), 400, AR454),
        Case("row 20: an empty object (publish)", post(body=b"{}"), 400, AR455.format(key="topic")),
        Case(
            "row 20: procedure instead of topic",
            post(body={"procedure": "a.b"}),
            400,
            AR455.format(key="topic"),
        ),
        Case(
            "row 20: an empty object (call)",
            post("/call", b"{}"),
            400,
            AR455.format(key="procedure"),
        ),
        Case(
            "row 20: topic instead of procedure",
            post("/call", {"topic": "a.b"}),
            400,
            AR455.format(key="procedure"),
        ),
        Case(
            "row 20: Topic in another case",
            post(body={"Topic": "a.b"}),
            400,
            AR455.format(key="topic"),
        ),
    ]


def _stricter() -> list[Case]:
    """What Crossbar takes (or 500s on) and wampweb refuses with a 400, on purpose."""
    return [
        Case(
            "a key twice (JSON)",
            post(body=b'{"topic":"a.b","topic":"c.d"}'),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "NaN in args",
            post(body=b'{"topic":"a.b","args":[NaN]}'),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "Infinity in kwargs",
            post(body=b'{"topic":"a.b","kwargs":{"x":Infinity}}'),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "an integer beyond 2**64",
            post(body={"topic": "a.b", "args": [2**64]}),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "a string starting with NUL",
            post(body={"topic": "a.b", "args": ["\u0000AAAA"]}),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "a lone surrogate",
            post(body=b'{"topic":"a.b","args":["\\ud800"]}'),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "arrays nested 40 deep",
            post(body=b'{"topic":"a.b","args":' + b"[" * 40 + b"]" * 40 + b"}"),
            200,
            expected_difference=STRICT_JSON,
            wampweb=400,
        ),
        Case(
            "args a string (Crossbar splats it)",
            _publish(args="abc"),
            200,
            expected_difference=STRICT_FIELDS,
            wampweb=400,
        ),
        Case(
            "args false (Crossbar reads none)",
            _publish(args=False),
            200,
            expected_difference=STRICT_FIELDS,
            wampweb=400,
        ),
        Case(
            "kwargs a list of values",
            _publish(kwargs=[1]),
            500,
            CB500,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "kwargs with a key 'options' (Crossbar drops it)",
            _publish(kwargs={"options": 1}),
            200,
            expected_difference=STRICT_FIELDS,
            wampweb=400,
        ),
        Case(
            "call options a string (Crossbar ignores them)",
            _call("conformance.single", options="x"),
            200,
            expected_difference=STRICT_FIELDS,
            wampweb=400,
        ),
        Case(
            "call kwargs with a key 'options'",
            _call("conformance.echo", kwargs={"options": 1}),
            500,
            RUNTIME_ERROR,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "topic not a URI",
            post(body={"topic": "bad topic"}),
            500,
            CB500,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "topic a number",
            post(body={"topic": 42}),
            500,
            CB500,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "topic empty",
            post(body={"topic": ""}),
            500,
            CB500,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "procedure not a URI",
            _call("bad procedure"),
            500,
            RUNTIME_ERROR,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "publish option of the wrong type",
            _publish(options={"exclude_me": "yes"}),
            500,
            CB500,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
        Case(
            "publish options a string",
            _publish(options="x"),
            500,
            CB500,
            expected_difference=CROSSBAR_500,
            wampweb=400,
        ),
    ]


def _replays() -> list[Case]:
    path = "/publish-signed"
    b = PUBLISH_BODY

    def twice(signer: Signer) -> list[Raw]:
        request = post(path, b, query=signer.query(b))
        return [request, request]

    def same_nonce(signer: Signer) -> list[Raw]:
        nonce = signer.nonce()
        other = minified({"topic": "conformance.signed", "args": [2]})
        return [
            post(path, b, query=signer.query(b, nonce=nonce)),
            post(path, other, query=signer.query(other, nonce=nonce)),
        ]

    def seq_down(signer: Signer) -> list[Raw]:
        return [
            post(path, b, query=signer.query(b, seq="10")),
            post(path, b, query=signer.query(b, seq="3")),
        ]

    return [
        Case("a signed request sent twice", twice, 200, expected_difference=REPLAY, wampweb=401),
        Case(
            "a nonce used twice with another body",
            same_nonce,
            200,
            expected_difference=REPLAY,
            wampweb=401,
        ),
        Case("seq going down is accepted (never monotonic)", seq_down, 200),
    ]


def _webhook() -> list[Case]:
    hook = "/webhook"
    github = "/webhook-github"
    body = b'{"action":"opened","number":1}'
    return [
        Case(
            "webhook: a form body's fields are read as parameters (Crossbar)",
            post(hook, b"timestamp=now", headers=FORM_TYPE),
            400,
            AR462_TIMESTAMP.format(value="now"),
            expected_difference=FORM_FIELDS,
            wampweb=202,
        ),
        Case("webhook happy path -> 202 OK", post(hook, body), 202),
        Case(
            "webhook takes any content type",
            post(
                hook, b"a=1&b=2", headers=(("Content-Type", "application/x-www-form-urlencoded"),)
            ),
            202,
        ),
        Case("webhook takes an empty body", post(hook, b"", headers=()), 202),
        Case("webhook takes PUT", post(hook, body, method="PUT"), 202),
        Case("webhook: OPTIONS", post(hook, method="OPTIONS", headers=()), 200),
        Case("webhook: body not UTF-8", post(hook, b"\xff"), 400, AR451),
        Case(
            "webhook: charset latin-1 is refused",
            post(hook, body, headers=(("Content-Type", "text/plain; charset=latin-1"),)),
            400,
            AR450,
        ),
        Case(
            "webhook: an invalid timestamp is checked",
            post(hook, body, query="timestamp=now"),
            400,
            AR462_TIMESTAMP.format(value="now"),
        ),
        Case("webhook row 7: GitHub signature missing", post(github, body), 400, AR400),
        Case(
            "webhook row 7: GitHub signature wrong",
            post(
                github,
                body,
                headers=(*JSON_TYPE, ("X-Hub-Signature", github_signature(body, "nope"))),
            ),
            400,
            AR400,
        ),
        Case(
            "webhook row 7: GitHub signature right",
            post(github, body, headers=(*JSON_TYPE, ("X-Hub-Signature", github_signature(body)))),
            202,
        ),
        Case(
            "webhook row 7: GitHub signature in upper case",
            post(
                github,
                body,
                headers=(*JSON_TYPE, ("X-Hub-Signature", github_signature(body).upper())),
            ),
            202,
        ),
        Case(
            "webhook row 7: only X-Hub-Signature-256",
            post(
                github,
                body,
                headers=(
                    *JSON_TYPE,
                    (
                        "X-Hub-Signature-256",
                        "sha256="
                        + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest(),
                    ),
                ),
            ),
            400,
            AR400,
            expected_difference=GITHUB_256,
            wampweb=202,
        ),
    ]


def _clients() -> list[Case]:
    """Requests as the clients of a.12 write them (their code, transcribed)."""
    publish = {"topic": "com.example.clients", "args": ["hello"], "kwargs": {"n": 1}}

    def crossbarconnect(signed: bool) -> Build:
        # ciberkids/crossbarconnect python/lib/crossbarconnect/client.py
        def build(signer: Signer) -> Raw:
            body = minified(publish)
            headers = (
                ("Content-type", "application/json"),
                ("User-agent", "crossbarconnect-python"),
            )
            if not signed:
                query = urlencode({"timestamp": ts_ms(signer.now()), "seq": 1})
                return post("/publish", body, query=query, headers=headers)
            nonce = str(int(signer.nonce()) % 2**53)
            query = signer.query(
                body, seq="1", nonce=nonce, order=("timestamp", "seq", "key", "nonce", "signature")
            )
            return post("/publish-signed", body, query=query, headers=headers)

        return build

    def crossbarhttp(
        path: str,
        params: dict[str, Any],
        signed: bool,
        timestamp: Callable[[datetime], str] = ts_us,
    ) -> Build:
        # thehq/python-crossbarhttp, jose-lpa/crossbarhttp3: json.dumps default separators.
        def build(signer: Signer) -> Raw:
            body = json.dumps(params).encode()
            query = ""
            if signed:
                query = signer.query(body, timestamp=timestamp(signer.now()), seq="1")
            return post(path, body, query=query)

        return build

    def isoformat_whole_second(signer: Signer) -> Raw:
        body = json.dumps({"topic": "com.example.clients", "args": [], "kwargs": {}}).encode()
        when = signer.now().replace(microsecond=0)
        return post("/publish-signed", body, query=signer.query(body, timestamp=ts_isoformat(when)))

    def facile(guzzle_json: bool) -> Build:
        # facile-it/crossbar-http-publisher-bundle: PHP json_encode escapes '/', seq random,
        # timestamp with microseconds, nonce mt_rand(0, 2**53), signature padded URL-safe.
        def build(signer: Signer) -> Raw:
            body = (
                b'{"topic":"com.example.clients","args":["http:\\/\\/example.com\\/x","\\u00e9"]}'
            )
            query = signer.query(
                body,
                seq="3071",
                timestamp=ts_us(signer.now()),
                order=("timestamp", "seq", "key", "nonce", "signature"),
            )
            headers = JSON_TYPE if guzzle_json else ()
            return post("/publish-signed", body, query=query, headers=headers)

        return build

    def idutch(signer: Signer) -> Raw:
        # iDutch/crossbarhttpbridge: nonce up to PHP_INT_MAX, the router meta API.
        body = b'{"procedure":"wamp.subscription.lookup","args":["conformance.webhook.crossbar"]}'
        nonce = str(9223372036854775807 - int(signer.nonce()))
        query = signer.query(body, seq="17", nonce=nonce, timestamp=ts_us(signer.now()))
        return post("/call-signed", body, query=query)

    def requests_json(signer: Signer) -> Raw:
        # ydaniels/crossbarhttprequests: requests' json= (default separators), unsigned.
        body = json.dumps({"topic": "com.example.clients", "args": [1], "kwargs": {}}).encode()
        return post("/publish", body)

    call = {"procedure": "conformance.single", "args": [], "kwargs": {}}
    return [
        Case(
            "crossbarconnect, unsigned (expects 202: breaks on both)",
            crossbarconnect(False),
            200,
            client=_crossbarconnect_accepts,
        ),
        Case(
            "crossbarconnect, signed", crossbarconnect(True), 200, client=_crossbarconnect_accepts
        ),
        Case(
            "crossbarhttp publish, unsigned",
            crossbarhttp("/publish", {**publish}, False),
            200,
            client=_ok_with_id,
        ),
        Case(
            "crossbarhttp publish, signed (6-digit timestamp)",
            crossbarhttp("/publish-signed", publish, True),
            200,
            client=_ok_with_id,
        ),
        Case(
            "crossbarhttp call, unsigned",
            crossbarhttp("/call", call, False),
            200,
            client=_first_result_is(42),
        ),
        Case(
            "crossbarhttp call, signed",
            crossbarhttp("/call-signed", call, True),
            200,
            client=_first_result_is(42),
        ),
        Case(
            "crossbarhttp call, no callee",
            crossbarhttp(
                "/call", {"procedure": "conformance.nobody", "args": [], "kwargs": {}}, False
            ),
            200,
            "wamp.error.no_such_procedure",
            client=_no_callee,
        ),
        Case(
            "crossbarhttp3 publish, signed (isoformat timestamp)",
            crossbarhttp("/publish-signed", publish, True, ts_isoformat),
            200,
            client=_ok_with_id,
        ),
        Case(
            "crossbarhttp3 publish, isoformat at a whole second (no fraction)",
            isoformat_whole_second,
            400,
            AR462_TIMESTAMP_PREFIX,
        ),
        Case("crossbarhttprequests publish", requests_json, 200, client=_ok_with_id),
        Case("facile bundle, Guzzle 5 (no Content-Type)", facile(False), 200, client=_ok_with_id),
        Case("facile bundle, Guzzle json", facile(True), 200, client=_ok_with_id),
        Case("iDutch call, nonce near PHP_INT_MAX, meta API", idutch, 200),
    ]


CASES: list[Case] = [
    *_methods_and_preflight(),
    *_happy_paths(),
    *_caller_shapes(),
    *_content_types(),
    *_lengths(),
    *_signing_order(),
    *_signature_forms(),
    *_timestamps(),
    *_unsigned_parameters(),
    *_ip_and_tls(),
    *_bodies(),
    *_stricter(),
    *_replays(),
    *_webhook(),
    *_clients(),
]
