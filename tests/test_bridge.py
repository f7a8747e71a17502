"""
The bridge endpoints, in memory: Crossbar's request pipeline row by row, the
REST dialect, and what wampweb adds (replay protection, permissions, rate
limits, CORS allowlist). The router is a FakeComponent; time is a Clock.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from twisted.internet.task import Clock

from wampweb import WampWeb
from wampweb._access import IpAllowList, Permissions, UriPattern, parse_networks
from wampweb._bridge import BridgeKind, BridgeMode, BridgeResource, BridgeSettings, mount_bridge
from wampweb._cors import CorsPolicy
from wampweb._ratelimit import RateLimiter
from wampweb._signing import RequestVerifier, SigningKey, compute_signature
from wampweb.testing import FakeComponent, FakeSession, stub_client

# The spec's test vector: 2011-10-14T16:59:51.123Z as seconds since the epoch.
VECTOR_TIME = 1318611591.123
VECTOR_BODY = b'{"topic":"com.myapp.topic1","args":["Hello, world"]}'
VECTOR_QUERY = {
    "key": "foobar",
    "timestamp": "2011-10-14T16:59:51.123Z",
    "seq": "1",
    "nonce": "123456",
    "signature": "CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA=",
}
CROSSBAR_HEADERS = {
    "access-control-allow-origin": ["*"],
    "access-control-allow-credentials": ["true"],
    "cache-control": ["no-store,no-cache,must-revalidate,max-age=0"],
    "content-type": ["application/json; charset=UTF-8"],
}


NOT_ANSWERED = object()


class Bridge:
    """A WampWeb app with one bridge mount, a fake Component, and a client."""

    def __init__(
        self, kind: BridgeKind = BridgeKind.PUBLISHER, *, signed: bool = False, **settings: Any
    ) -> None:
        self.clock = Clock()
        self.clock.advance(VECTOR_TIME)
        self.web = WampWeb(listen=None, reactor=self.clock, call_timeout=10.0)
        self.fake = FakeComponent()
        self.component = self.web.add_component("default", self.fake)
        keys = [SigningKey("foobar", b"secret")] if signed else []
        settings.setdefault("verifier", RequestVerifier(keys, clock=self.clock))
        self.settings = BridgeSettings(kind=kind, **settings)
        self.web.mount("/bridge", BridgeResource(self.component, self.settings))
        self.web.startService()
        self.stub = stub_client(self.web.resource())
        self.session: FakeSession | None = None

    def join(self, **kwargs: Any) -> FakeSession:
        self.session = self.fake.join(FakeSession(**kwargs))
        return self.session

    def send(
        self,
        body: bytes | str | dict[str, Any] = b"",
        *,
        method: str = "POST",
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        answer: Any = NOT_ANSWERED,
    ) -> tuple[int, Any, Any]:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        url = "http://127.0.0.1/bridge"
        if query:
            url += "?" + urlencode(query)
        sent = {"Content-Type": "application/json"} if headers is None else headers
        pending = self.stub.request(method, url, data=body or None, headers=sent)
        self.stub.flush()
        if answer is not NOT_ANSWERED and self.session is not None and self.session.records:
            record = self.session.records[-1]
            if not record.answer.called:
                if isinstance(answer, Exception):
                    record.answer.errback(answer)
                else:
                    record.answer.callback(answer)
            self.stub.flush()
        got: list[Any] = []
        pending.addBoth(got.append)
        assert got, "no answer"
        response = got[0]
        content: list[bytes] = []
        response.content().addCallback(content.append)
        text = content[0].decode("utf-8")
        try:
            parsed: Any = json.loads(text) if text else text
        except ValueError:
            parsed = text
        return response.code, parsed, response.headers


def error_of(body: Any) -> str:
    assert set(body) == {"error", "args", "kwargs"}, body
    return str(body["error"])


# -- the Crossbar pipeline, row by row (spec a.2) -------------------------------------------


def test_a_publish_answers_200_with_the_publication_id_and_crossbars_headers() -> None:
    bridge = Bridge()
    session = bridge.join()
    status, body, headers = bridge.send({"topic": "com.example.t", "args": [1], "kwargs": {"k": 2}})
    assert (status, body) == (200, {"id": 1})
    for name, value in CROSSBAR_HEADERS.items():
        assert headers.getRawHeaders(name) == value, name
    (publish,) = session.of_kind("publish")
    assert (publish.uri, publish.args, publish.kwargs) == ("com.example.t", (1,), {"k": 2})
    assert publish.options.acknowledge is True


def test_the_legacy_switch_answers_a_publish_202() -> None:
    bridge = Bridge(legacy_202=True)
    bridge.join()
    assert bridge.send({"topic": "com.example.t"})[:2] == (202, {"id": 1})


def test_get_is_405_with_crossbars_message() -> None:
    status, body, _ = Bridge().send(method="GET")
    assert status == 405
    assert error_of(body) == (
        "Method not accepted by the REST bridge. (b'GET' not allowed, only POST, PUT)"
    )


def test_put_behaves_like_post() -> None:
    bridge = Bridge()
    bridge.join()
    assert bridge.send({"topic": "com.example.t"}, method="PUT")[:2] == (200, {"id": 1})


def test_options_is_an_empty_200_preflight() -> None:
    status, body, headers = Bridge().send(
        method="OPTIONS",
        headers={"Origin": "null", "Access-Control-Request-Headers": "content-type"},
    )
    assert (status, body) == (200, "")
    assert headers.getRawHeaders("allow") == ["POST,PUT,OPTIONS"]
    assert headers.getRawHeaders("access-control-allow-methods") == ["POST,PUT,OPTIONS"]
    assert headers.getRawHeaders("access-control-allow-origin") == ["*"]
    assert headers.getRawHeaders("access-control-allow-headers") == ["content-type"]


def test_a_wrong_content_type_is_400_in_crossbar_mode_and_415_in_rest_mode() -> None:
    crossbar = Bridge().send("{}", headers={"Content-Type": "text/plain"})
    assert crossbar[0] == 400
    assert "Non-accepted content type." in error_of(crossbar[1])
    assert "text/plain" in error_of(crossbar[1])
    rest = Bridge(mode=BridgeMode.REST).send("{}", headers={"Content-Type": "text/plain"})
    assert rest[0] == 415
    assert error_of(rest[1]) == "wampweb.error.unsupported_media_type"


def test_a_missing_content_type_is_accepted() -> None:
    bridge = Bridge()
    bridge.join()
    assert bridge.send({"topic": "com.example.t"}, headers={})[0] == 200


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=latin-1", "application/json; charset=utf-8; charset=utf-8"],
)
def test_a_charset_other_than_utf8_is_refused(content_type: str) -> None:
    status, body, _ = Bridge().send("{}", headers={"Content-Type": content_type})
    assert (status, error_of(body)) == (400, "Non-accepted request encoding, must be UTF-8.")


def test_the_body_limit_is_inclusive() -> None:
    body = json.dumps({"topic": "com.example.t", "args": ["x" * 50]}).encode()
    at_limit = Bridge(body_limit=len(body))
    at_limit.join()
    assert at_limit.send(body)[0] == 200
    over = Bridge(body_limit=len(body) - 1)
    over.join()
    status, answer, _ = over.send(body)
    assert status == 413
    assert error_of(answer) == (
        f"Request too long. ({len(body)} is longer than accepted {len(body) - 1})"
    )
    assert over.session is not None
    assert over.session.records == []


def test_a_signed_request_passes_with_the_spec_test_vector() -> None:
    bridge = Bridge(signed=True)
    bridge.join()
    status, body, _ = bridge.send(VECTOR_BODY, query=VECTOR_QUERY)
    assert (status, body) == (200, {"id": 1})


def signed_bridge(**settings: Any) -> Bridge:
    return Bridge(signed=True, **settings)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"key": None}, 400, "missing mandatory field - 'key' field missing"),
        ({"timestamp": "2011-10-14 16:59:51"}, 400, "invalid timestamp"),
        ({"timestamp": None}, 400, "'timestamp' field missing"),
        ({"seq": "x"}, 400, "invalid sequence number 'x'"),
        ({"nonce": None}, 400, "'nonce' field missing"),
        ({"signature": None}, 400, "'signature' field missing"),
        ({"key": "other"}, 401, "REST bridge signature key not valid."),
        ({"signature": "CtkX/B8rsSt/wM7B0ybn8Te4NfbupfjN8BWd2AllYZA="}, 401, "secret not valid"),
        ({"signature": "CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA"}, 401, "secret not valid"),
    ],
)
def test_signature_failures_are_answered_as_crossbar_does(
    change: dict[str, str | None], status: int, message: str
) -> None:
    bridge = signed_bridge()
    bridge.join()
    query = {k: v for k, v in {**VECTOR_QUERY, **change}.items() if v is not None}
    got_status, body, _ = bridge.send(VECTOR_BODY, query=query)
    assert got_status == status
    assert message in error_of(body)


def test_an_expired_timestamp_is_checked_even_without_a_secret() -> None:
    bridge = Bridge()
    bridge.join()
    bridge.clock.advance(301)
    status, body, _ = bridge.send(VECTOR_BODY, query={"timestamp": VECTOR_QUERY["timestamp"]})
    assert (status, error_of(body)) == (400, "Request expired, too old timestamp.")


def test_signing_is_checked_before_the_client_address() -> None:
    bridge = signed_bridge(require_ip=IpAllowList(parse_networks(["10.0.0.0/8"])))
    status, body, _ = bridge.send(VECTOR_BODY, query={})
    assert status == 400
    assert "'key' field missing" in error_of(body)


def test_a_replayed_request_is_refused() -> None:
    bridge = signed_bridge()
    bridge.join()
    assert bridge.send(VECTOR_BODY, query=VECTOR_QUERY)[0] == 200
    status, body, _ = bridge.send(VECTOR_BODY, query=VECTOR_QUERY)
    assert status == 401
    assert "replay" in error_of(body).lower()
    assert len(bridge.session.of_kind("publish")) == 1  # type: ignore[union-attr]


def test_a_client_outside_require_ip_is_refused() -> None:
    status, body, _ = Bridge(require_ip=IpAllowList(parse_networks(["10.0.0.0/8"]))).send(
        {"topic": "com.example.t"}
    )
    assert (status, error_of(body)) == (400, "Request denied based on IP address.")


def test_require_tls_refuses_plain_http() -> None:
    status, body, _ = Bridge(require_tls=True).send({"topic": "com.example.t"})
    assert (status, error_of(body)) == (400, "Malformed request to the REST bridge.")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe", "Non-decodable request body, was not UTF-8."),
        (b"", "Request body was invalid JSON."),
        (b"{nope", "Request body was invalid JSON."),
        (b"[1, 2]", "Request body was valid JSON, but not well formed (must be a dict)."),
        (
            b'{"args": []}',
            "Request body was valid JSON, but not well formed (missing key 'topic').",
        ),
    ],
)
def test_bodies_crossbar_refuses_are_refused_with_its_words(body: bytes, message: str) -> None:
    bridge = Bridge()
    bridge.join()
    status, answer, _ = bridge.send(body)
    assert (status, error_of(answer)) == (400, message)
    assert bridge.session is not None
    assert bridge.session.records == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"topic": "a.b", "topic": "c.d"}',
        b'{"topic": "a.b", "args": [NaN]}',
        b'{"topic": "a.b", "args": [18446744073709551616]}',
        b'{"topic": "a.b", "args": ["\\ud800"]}',
        b'{"topic": "a.b", "args": "abc"}',
        b'{"topic": "a.b", "kwargs": [1]}',
        b'{"topic": "a b"}',
        b'{"topic": "a.b", "options": {"exclude": "x"}}',
        b'{"topic": "a.b", "args": ' + b"[" * 100 + b"]" * 100 + b"}",
    ],
)
def test_bodies_that_would_hurt_the_router_are_a_400_and_send_nothing(body: bytes) -> None:
    bridge = Bridge()
    bridge.join()
    status, answer, _ = bridge.send(body)
    assert status == 400, answer
    assert error_of(answer)
    assert bridge.session is not None
    assert bridge.session.records == []


def test_unknown_publish_options_are_ignored_in_crossbar_mode_and_refused_in_rest_mode() -> None:
    crossbar = Bridge()
    session = crossbar.join()
    assert crossbar.send({"topic": "a.b", "options": {"acknowledge": False}})[0] == 200
    assert session.of_kind("publish")[0].options.acknowledge is True
    rest = Bridge(mode=BridgeMode.REST)
    rest.join()
    status, body, _ = rest.send({"topic": "a.b", "options": {"acknowledge": False}})
    assert status == 400
    assert "acknowledge" in body["args"][0]


# -- the caller -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        (5, {"args": [5]}),
        (None, {"args": [None]}),
        ([1, 2], {"args": [[1, 2]]}),
        (CallResult(1, 2), {"args": [1, 2]}),
        (CallResult(a=1), {"kwargs": {"a": 1}}),
        (CallResult(1, a=1), {"args": [1], "kwargs": {"a": 1}}),
        (CallResult(), {}),
    ],
)
def test_call_results_have_crossbars_shape(result: Any, expected: dict[str, Any]) -> None:
    bridge = Bridge(BridgeKind.CALLER)
    bridge.join()
    status, body, _ = bridge.send({"procedure": "com.example.f"}, answer=result)
    assert (status, body) == (200, expected)


def test_a_wamp_error_is_a_200_envelope_in_crossbar_mode() -> None:
    bridge = Bridge(BridgeKind.CALLER)
    bridge.join()
    error = ApplicationError("wamp.error.no_such_procedure", "no callee registered for procedure f")
    status, body, _ = bridge.send({"procedure": "com.example.f"}, answer=error)
    assert status == 200
    assert body == {
        "error": "wamp.error.no_such_procedure",
        "args": ["no callee registered for procedure f"],
        "kwargs": {},
    }


def test_an_unexpected_failure_is_crossbars_500_runtime_error() -> None:
    bridge = Bridge(BridgeKind.CALLER)
    bridge.join()
    status, body, _ = bridge.send({"procedure": "com.example.f"}, answer=KeyError("boom"))
    assert status == 500
    assert body["error"] == "wamp.error.runtime_error"
    assert "boom" not in json.dumps(body)


def test_without_a_session_the_answer_is_503_with_retry_after() -> None:
    status, body, headers = Bridge(BridgeKind.CALLER).send({"procedure": "com.example.f"})
    assert status == 503
    assert error_of(body) == "wampweb.error.no_session"
    assert headers.getRawHeaders("retry-after") == ["2"]


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("wamp.error.no_such_procedure", 404),
        ("wamp.error.not_authorized", 403),
        ("wamp.error.invalid_argument", 400),
        ("com.example.error.out_of_stock", 502),
    ],
)
def test_rest_mode_maps_wamp_errors_to_http_statuses(uri: str, status: int) -> None:
    bridge = Bridge(BridgeKind.CALLER, mode=BridgeMode.REST)
    bridge.join()
    got, body, _ = bridge.send({"procedure": "com.example.f"}, answer=ApplicationError(uri, "why"))
    assert got == status
    assert body == {"error": uri, "args": ["why"], "kwargs": {}}


def test_rest_mode_honours_a_shorter_timeout_and_cancels_at_the_router() -> None:
    bridge = Bridge(BridgeKind.CALLER, mode=BridgeMode.REST)
    session = bridge.join()
    pending = bridge.stub.post(
        "http://127.0.0.1/bridge",
        data=json.dumps({"procedure": "com.example.slow", "options": {"timeout": 1.5}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    bridge.stub.flush()
    bridge.clock.advance(1.5)
    bridge.stub.flush()
    got: list[Any] = []
    pending.addBoth(got.append)
    assert got[0].code == 504
    assert session.of_kind("call")[0].cancelled


@pytest.mark.parametrize(
    ("options", "header", "message"),
    [
        ({"timeout": -1}, None, "positive number of seconds"),
        ({"timeout": 1000}, None, "above this endpoint's limit of 300 s"),
        ({}, "soon", "X-Request-Timeout must be a number"),
        ({"receive_progress": True}, None, "progressive results are not supported"),
    ],
)
def test_rest_mode_refuses_bad_call_options(
    options: dict[str, Any], header: str | None, message: str
) -> None:
    bridge = Bridge(BridgeKind.CALLER, mode=BridgeMode.REST)
    bridge.join()
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["X-Request-Timeout"] = header
    status, body, _ = bridge.send(
        {"procedure": "com.example.f", "options": options}, headers=headers
    )
    assert status == 400
    assert message in body["args"][0]


# -- the webhook ----------------------------------------------------------------------------


def test_a_webhook_publishes_headers_and_body_and_answers_202() -> None:
    bridge = Bridge(BridgeKind.WEBHOOK, topic="com.example.hook")
    session = bridge.join()
    status, body, _headers = bridge.send(
        "anything at all", headers={"Content-Type": "text/plain", "X-Thing": "1"}
    )
    assert (status, body) == (202, "OK")
    (publish,) = session.of_kind("publish")
    assert publish.uri == "com.example.hook"
    (event,) = publish.args
    assert event["body"] == "anything at all"
    assert event["headers"]["X-Thing"] == ["1"]


def test_a_failed_webhook_publish_answers_500_with_the_error_response() -> None:
    bridge = Bridge(BridgeKind.WEBHOOK, error_response="nope")
    bridge.join(auto_answer=False)
    status, body, _ = bridge.send("x", answer=ApplicationError("wamp.error.not_authorized"))
    assert (status, body) == (500, "nope")


def test_a_webhook_checks_githubs_signature() -> None:
    import hashlib
    import hmac

    bridge = Bridge(BridgeKind.WEBHOOK, github_secret=b"gh")
    bridge.join()
    status, body, _ = bridge.send("payload", headers={"X-Hub-Signature": "sha1=00"})
    assert (status, error_of(body)) == (400, "Malformed request to the REST bridge.")
    good = "sha256=" + hmac.new(b"gh", b"payload", hashlib.sha256).hexdigest()
    assert bridge.send("payload", headers={"X-Hub-Signature-256": good})[0] == 202


# -- what wampweb adds ----------------------------------------------------------------------


def test_a_key_may_only_publish_where_its_permissions_allow() -> None:
    bridge = signed_bridge(
        permissions={"foobar": Permissions(publish=(UriPattern("com.myapp.", "prefix"),))}
    )
    bridge.join()
    assert bridge.send(VECTOR_BODY, query=VECTOR_QUERY)[0] == 200
    body = b'{"topic":"com.other.topic"}'
    query = {**VECTOR_QUERY, "nonce": "2"}
    query["signature"] = compute_signature(
        b"secret", "foobar", query["timestamp"], query["seq"], query["nonce"], body
    )
    status, answer, _ = bridge.send(body, query=query)
    assert status == 403
    assert "foobar" in error_of(answer)


def test_a_client_over_its_rate_limit_gets_429_with_retry_after() -> None:
    bridge = Bridge(rate_limiter=RateLimiter(1.0, 2, Clock()))
    bridge.join()
    assert [bridge.send({"topic": "a.b"})[0] for _ in range(2)] == [200, 200]
    status, _body, headers = bridge.send({"topic": "a.b"})
    assert status == 429
    assert headers.getRawHeaders("retry-after") == ["1"]


def test_a_cors_allowlist_refuses_other_origins_before_acting() -> None:
    bridge = Bridge(cors=CorsPolicy.allow(["https://app.example.com"]))
    session = bridge.join()
    allowed = bridge.send(
        {"topic": "a.b"},
        headers={"Content-Type": "application/json", "Origin": "https://app.example.com"},
    )
    assert allowed[0] == 200
    assert allowed[2].getRawHeaders("access-control-allow-origin") == ["https://app.example.com"]
    refused = bridge.send(
        {"topic": "a.b"},
        headers={"Content-Type": "application/json", "Origin": "https://evil.test"},
    )
    assert refused[0] == 403
    assert len(session.of_kind("publish")) == 1


def test_the_default_mounts_serve_publish_call_and_webhook() -> None:
    clock = Clock()
    web = WampWeb(listen=None, reactor=clock)
    fake = FakeComponent()
    web.add_component("default", fake)
    mount_bridge(web)
    assert sorted(web.mounts) == ["/call", "/publish", "/webhook"]
