"""CORS: Crossbar's any-origin policy kept header for header, and allow lists that refuse."""

from __future__ import annotations

import pytest

from tests.test_access import FakeRequest
from wampweb._access import FORBIDDEN, CorsPolicy, set_common_headers
from wampweb._denial import DeniedError

APP = "https://app.example.com"


def answered(request: FakeRequest) -> dict[str, str]:
    """The response headers, lower-cased names, one value each."""
    return {
        name.decode().lower(): values[-1].decode("latin-1")
        for name, values in request.responseHeaders.getAllRawHeaders()
    }


def cors_headers(request: FakeRequest) -> dict[str, str]:
    return {k: v for k, v in answered(request).items() if k.startswith("access-control-")}


# -- Crossbar's policy ----------------------------------------------------------------------


def test_crossbar_echoes_the_origin_with_credentials() -> None:
    request = FakeRequest(headers={"Origin": ["https://any.example"]})
    CorsPolicy.crossbar().apply(request)
    assert answered(request) == {
        "access-control-allow-origin": "https://any.example",
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }


@pytest.mark.parametrize("origin", [None, "null", ""])
def test_crossbar_answers_star_without_an_origin_or_for_null(origin: str | None) -> None:
    request = FakeRequest(headers={} if origin is None else {"Origin": [origin]})
    CorsPolicy.crossbar().apply(request)
    assert answered(request)["access-control-allow-origin"] == "*"
    assert answered(request)["access-control-allow-credentials"] == "true"


def test_crossbar_echoes_the_requested_headers_on_every_answer() -> None:
    request = FakeRequest(headers={"Access-Control-Request-Headers": ["content-type, x-custom"]})
    CorsPolicy.crossbar().apply(request)
    assert answered(request)["access-control-allow-headers"] == "content-type, x-custom"


def test_crossbar_preflight_is_200_empty_with_allow_and_methods() -> None:
    request = FakeRequest(
        headers={"Origin": ["null"], "Access-Control-Request-Headers": ["content-type"]}
    )
    body = CorsPolicy.crossbar().preflight(request)
    assert (request.code, body) == (200, b"")
    assert cors_headers(request) == {
        "access-control-allow-origin": "*",
        "access-control-allow-credentials": "true",
        "access-control-allow-headers": "content-type",
        "access-control-allow-methods": "POST,PUT,OPTIONS",
    }
    assert answered(request)["allow"] == "POST,PUT,OPTIONS"


def test_crossbar_never_refuses_an_origin() -> None:
    CorsPolicy.crossbar().check_origin(FakeRequest(headers={"Origin": ["https://evil.example"]}))


def test_common_headers_are_crossbars_exactly() -> None:
    request = FakeRequest(headers={"Origin": [APP]})
    set_common_headers(request, CorsPolicy.crossbar())
    assert answered(request) == {
        "access-control-allow-origin": APP,
        "access-control-allow-credentials": "true",
        "cache-control": "no-store,no-cache,must-revalidate,max-age=0",
        "content-type": "application/json; charset=UTF-8",
        "vary": "Origin",
    }


# -- allow lists ----------------------------------------------------------------------------


def test_an_allowed_origin_is_echoed_with_vary_and_no_credentials_by_default() -> None:
    request = FakeRequest(headers={"Origin": [APP]})
    CorsPolicy.allow([APP]).apply(request)
    assert answered(request) == {
        "access-control-allow-origin": APP,
        "access-control-expose-headers": "Retry-After",
        "vary": "Origin",
    }


def test_credentials_are_allowed_only_when_asked() -> None:
    request = FakeRequest(headers={"Origin": [APP]})
    CorsPolicy.allow([APP], credentials=True).apply(request)
    assert answered(request)["access-control-allow-credentials"] == "true"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://app.example.com", "https://app.example.com.evil", "null"],
)
def test_a_disallowed_origin_gets_no_cors_headers_at_all(origin: str) -> None:
    request = FakeRequest(headers={"Origin": [origin]})
    set_common_headers(request, CorsPolicy.allow([APP], credentials=True))
    assert cors_headers(request) == {}
    assert answered(request)["vary"] == "Origin"


def test_a_request_without_origin_gets_no_cors_headers_but_vary() -> None:
    request = FakeRequest()
    CorsPolicy.allow([APP]).apply(request)
    assert answered(request) == {"vary": "Origin"}


def test_star_allows_any_origin_without_credentials_and_without_vary() -> None:
    policy = CorsPolicy.allow(["*"])
    request = FakeRequest(headers={"Origin": ["https://anyone.example"]})
    policy.apply(request)
    policy.check_origin(request)
    assert answered(request) == {
        "access-control-allow-origin": "*",
        "access-control-expose-headers": "Retry-After",
    }


def test_star_with_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot allow credentials"):
        CorsPolicy.allow(["*", APP], credentials=True)


def test_a_request_from_a_disallowed_origin_is_refused_before_it_acts() -> None:
    with pytest.raises(DeniedError) as raised:
        CorsPolicy.allow([APP]).check_origin(
            FakeRequest(headers={"Origin": ["https://evil.example"]})
        )
    denial = raised.value
    assert (denial.status, denial.rest_status, denial.uri) == (403, 403, FORBIDDEN)
    assert "'https://evil.example'" in denial.message


def test_requests_without_origin_are_not_refused() -> None:
    CorsPolicy.allow([APP]).check_origin(FakeRequest())


def test_an_allowed_preflight_names_methods_headers_and_max_age() -> None:
    request = FakeRequest(
        headers={"Origin": [APP], "Access-Control-Request-Headers": ["Content-Type, X-Trace"]}
    )
    body = CorsPolicy.allow([APP], max_age=600).preflight(request)
    assert (request.code, body) == (200, b"")
    assert cors_headers(request) == {
        "access-control-allow-origin": APP,
        "access-control-allow-methods": "POST,PUT,OPTIONS",
        "access-control-allow-headers": "Content-Type, X-Trace",
        "access-control-expose-headers": "Retry-After",
        "access-control-max-age": "600",
    }
    assert answered(request)["allow"] == "POST,PUT,OPTIONS"


def test_a_malformed_request_headers_list_is_not_echoed_by_an_allow_list() -> None:
    request = FakeRequest(
        headers={"Origin": [APP], "Access-Control-Request-Headers": ["content-type, <script>"]}
    )
    CorsPolicy.allow([APP]).preflight(request)
    assert "access-control-allow-headers" not in answered(request)


def test_a_preflight_from_a_disallowed_origin_is_a_403() -> None:
    request = FakeRequest(headers={"Origin": ["https://evil.example"]})
    with pytest.raises(DeniedError) as raised:
        CorsPolicy.allow([APP]).preflight(request)
    assert (raised.value.status, raised.value.rest_status) == (403, 403)
    assert cors_headers(request) == {}


def test_a_preflight_without_origin_is_answered_without_cors_headers() -> None:
    request = FakeRequest()
    assert CorsPolicy.allow([APP]).preflight(request) == b""
    assert answered(request)["allow"] == "POST,PUT,OPTIONS"
    assert "access-control-allow-origin" not in answered(request)


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_configured_origins_are_compared_the_way_browsers_send_them(
    configured: str, sent: str
) -> None:
    policy = CorsPolicy.allow([configured])
    assert policy.origins == frozenset({sent})
    request = FakeRequest(headers={"Origin": [sent]})
    policy.apply(request)
    assert answered(request)["access-control-allow-origin"] == sent


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("https://app.example.com/", "no path"),
        ("https://app.example.com/app", "no path"),
        ("https://app.example.com?x", "no path"),
        ("app.example.com", "scheme://host"),
        ("https://*.example.com", "scheme://host"),
        ("https://user@app.example.com", "no user"),
        ("https://app.example.com:99999", "not an origin"),
        ("null", "sandboxed"),
        ("", "expected an origin"),
    ],
)
def test_origins_that_a_browser_never_sends_are_refused(origin: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        CorsPolicy.allow([origin])


def test_an_empty_allow_list_and_a_bare_string_are_refused() -> None:
    with pytest.raises(ValueError, match="no origins"):
        CorsPolicy.allow([])
    with pytest.raises(ValueError, match="string"):
        CorsPolicy.allow(APP)


def test_a_hand_built_policy_is_checked_like_one_from_the_class_methods() -> None:
    with pytest.raises(ValueError, match="not normalized"):
        CorsPolicy(mode="allow", origins=frozenset({"https://APP.example.com"}))
    with pytest.raises(ValueError, match="max_age"):
        CorsPolicy.allow([APP], max_age=-1)
    with pytest.raises(ValueError, match="no options"):
        CorsPolicy(mode="crossbar", credentials=True, any_origin=True)
