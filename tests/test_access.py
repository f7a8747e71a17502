"""URI patterns, per-key permissions, the client's address behind proxies, IP and TLS checks."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import address
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

from wampweb._access import (
    FORBIDDEN,
    IpAllowList,
    Permissions,
    TrustedProxies,
    UriPattern,
    check_tls,
    parse_networks,
)
from wampweb._denial import DeniedError


class FakeRequest:
    """
    Just what the access checks read and write: the peer, the headers, whether TLS was used,
    and the response code and headers. (``twisted.web.test.requesthelper`` is private.)
    """

    def __init__(
        self,
        peer: str | address.UNIXAddress = "203.0.113.7",
        headers: dict[str, list[str]] | None = None,
        secure: bool = False,
        port: int = 51234,
    ) -> None:
        if isinstance(peer, str):
            kind = address.IPv6Address if ":" in peer else address.IPv4Address
            self.peer: object = kind("TCP", peer, port)
        else:
            self.peer = peer
        self.requestHeaders = Headers()
        for name, values in (headers or {}).items():
            self.requestHeaders.setRawHeaders(name.encode(), [v.encode("latin-1") for v in values])
        self.responseHeaders = Headers()
        self.secure = secure
        self.code = 200

    def getClientAddress(self) -> object:
        return self.peer

    def getHeader(self, name: bytes) -> bytes | None:
        values = self.requestHeaders.getRawHeaders(name)
        return None if values is None else values[-1]

    def setHeader(self, name: bytes, value: bytes) -> None:
        self.responseHeaders.setRawHeaders(name, [value])

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def isSecure(self) -> bool:
        return self.secure


# -- URI patterns ---------------------------------------------------------------------------


def test_an_exact_pattern_matches_only_its_uri() -> None:
    pattern = UriPattern("com.example.update")
    assert pattern.matches("com.example.update")
    assert not pattern.matches("com.example.update.x")
    assert not pattern.matches("com.example")


def test_a_prefix_is_a_plain_string_prefix_as_in_crossbar() -> None:
    pattern = UriPattern("com.example", "prefix")
    assert pattern.matches("com.example")
    assert pattern.matches("com.example.a.b")
    assert pattern.matches("com.exampleX")  # a string prefix, not a component prefix
    assert not pattern.matches("com.exampl")
    assert not pattern.matches("org.com.example")


def test_a_prefix_ending_in_a_dot_stops_at_a_component_boundary() -> None:
    pattern = UriPattern("com.example.", "prefix")
    assert pattern.matches("com.example.x")
    assert not pattern.matches("com.exampleX")
    assert not pattern.matches("com.example")


def test_the_empty_prefix_matches_every_uri() -> None:
    assert UriPattern("", "prefix").matches("anything.at.all")


def test_an_empty_wildcard_component_matches_exactly_one_component() -> None:
    pattern = UriPattern("com..update", "wildcard")
    assert pattern.matches("com.x.update")
    assert not pattern.matches("com.x.y.update")
    assert not pattern.matches("com.update")
    assert not pattern.matches("com..update")  # an empty component is no component
    assert not pattern.matches("org.x.update")


def test_wildcards_may_be_first_last_or_several() -> None:
    assert UriPattern(".example.", "wildcard").matches("com.example.update")
    assert not UriPattern(".example.", "wildcard").matches("com.example.update.x")
    assert UriPattern("com.example.", "wildcard").matches("com.example.x")
    assert not UriPattern("com.example.", "wildcard").matches("com.example")
    assert UriPattern(".", "wildcard").matches("a.b")
    assert not UriPattern(".", "wildcard").matches("a")


@pytest.mark.parametrize(
    ("pattern", "match", "reason"),
    [
        ("", "exact", "invalid URI '' for match 'exact'"),
        ("com..x", "exact", "invalid URI 'com..x' for match 'exact'"),
        ("com.x.", "exact", "invalid URI 'com.x.' for match 'exact'"),
        ("com x", "exact", "invalid URI 'com x' for match 'exact'"),
        ("com.#", "exact", "invalid URI 'com.#' for match 'exact'"),
        ("com..x", "prefix", "invalid URI prefix 'com..x'"),
        (".com", "prefix", "invalid URI prefix '.com'"),
        ("com.ex ample.", "prefix", "invalid URI prefix 'com.ex ample.'"),
        ("", "wildcard", "to allow every URI use the prefix ''"),
        ("com. .x", "wildcard", "invalid wildcard pattern 'com. .x'"),
        ("com.example.*", "prefix", "'*' is not a wildcard"),
        ("com.x", "regex", "unknown match policy 'regex'"),
    ],
)
def test_invalid_patterns_are_refused_saying_what_is_wrong(
    pattern: str, match: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        UriPattern(pattern, match)  # type: ignore[arg-type]


def test_a_star_is_refused_with_a_hint_at_the_real_syntax() -> None:
    with pytest.raises(ValueError, match=r"'com\.\.update'"):
        UriPattern("com.*.update", "wildcard")


@pytest.mark.parametrize(
    ("starred", "pattern", "match"),
    [
        ("com.example.update", "com.example.update", "exact"),
        ("com.example.*", "com.example.", "prefix"),
        ("*", "", "prefix"),
        ("com.*.update", "com..update", "wildcard"),
        ("com.*.*", "com..", "wildcard"),
        ("*.example.update", ".example.update", "wildcard"),
    ],
)
def test_crossbars_starred_notation_is_read_like_convert_starred_uri(
    starred: str, pattern: str, match: str
) -> None:
    assert UriPattern.from_starred(starred) == UriPattern(pattern, match)  # type: ignore[arg-type]


def test_patterns_must_be_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        UriPattern(b"com.x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be a string"):
        UriPattern.from_starred(None)  # type: ignore[arg-type]


def test_a_star_inside_a_component_is_refused() -> None:
    with pytest.raises(ValueError, match="whole URI component"):
        UriPattern.from_starred("com.ex*ample.*.x")


component = st.text(
    alphabet=st.characters(blacklist_characters=".#", blacklist_categories=("Zs", "Cc")),
    min_size=1,
    max_size=5,
).filter(lambda text: not any(char.isspace() for char in text) and "*" not in text)
uris = st.lists(component, min_size=1, max_size=5).map(".".join)


@given(pattern=uris, uri=uris)
def test_a_wildcard_pattern_without_empty_components_behaves_like_exact(
    pattern: str, uri: str
) -> None:
    wildcard = UriPattern(pattern, "wildcard")
    exact = UriPattern(pattern, "exact")
    assert wildcard.matches(uri) == exact.matches(uri)
    assert wildcard.matches(pattern)


@given(uri=uris, data=st.data())
def test_blanking_components_of_a_uri_gives_a_wildcard_that_matches_it(
    uri: str, data: st.DataObject
) -> None:
    parts = uri.split(".")
    blanks = data.draw(st.lists(st.booleans(), min_size=len(parts), max_size=len(parts)))
    pattern = ".".join("" if blank else part for part, blank in zip(parts, blanks, strict=True))
    if pattern == "":
        return  # the one pattern refused on purpose
    assert UriPattern(pattern, "wildcard").matches(uri)
    assert not UriPattern(pattern, "wildcard").matches(uri + ".more")


@given(prefix=uris, rest=st.text(max_size=10))
def test_a_prefix_matches_whatever_follows_it(prefix: str, rest: str) -> None:
    assert UriPattern(prefix, "prefix").matches(prefix + rest)


# -- permissions ----------------------------------------------------------------------------


def test_a_key_may_do_what_its_patterns_allow() -> None:
    permissions = Permissions(
        publish=(UriPattern("com.app.", "prefix"),), call=(UriPattern("com.app.add"),)
    )
    permissions.check("publish", "com.app.news")
    permissions.check("call", "com.app.add")
    assert not permissions.allows("call", "com.app.news")
    assert not permissions.allows("publish", "org.app.news")


def test_a_refusal_is_a_403_in_both_faces_naming_key_action_and_uri() -> None:
    permissions = Permissions(publish=(UriPattern("com.app.", "prefix"),))
    with pytest.raises(DeniedError) as raised:
        permissions.check("call", "com.app.delete_all", key="frontend")
    denial = raised.value
    assert (denial.status, denial.rest_status, denial.uri) == (403, 403, FORBIDDEN)
    assert denial.message == "key 'frontend' may not call 'com.app.delete_all'"


def test_a_refusal_without_a_key_says_unsigned() -> None:
    with pytest.raises(DeniedError, match=r"unsigned requests may not publish to 'com\.x'"):
        Permissions().check("publish", "com.x")


def test_no_patterns_allow_nothing_and_allow_all_allows_everything() -> None:
    assert not Permissions().allows("publish", "com.x")
    everything = Permissions.allow_all()
    assert everything.allows("publish", "com.x")
    assert everything.allows("call", "wamp.session.get")


def test_permissions_take_any_iterable_and_refuse_strings() -> None:
    permissions = Permissions(publish=[UriPattern("a.b")])
    assert permissions.publish == (UriPattern("a.b"),)
    with pytest.raises(ValueError, match="UriPattern"):
        Permissions(publish=["a.b"])  # type: ignore[list-item]


def test_an_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown action 'subscribe'"):
        Permissions.allow_all().check("subscribe", "a.b")  # type: ignore[arg-type]


# -- networks and the allow list ------------------------------------------------------------


def test_networks_are_read_in_every_form_crossbars_docs_show() -> None:
    assert parse_networks(["127.0.0.1", "10.0.0.0/8", "192.168.1.1/255.255.255.0", "::1"]) == (
        ip_network("127.0.0.1/32"),
        ip_network("10.0.0.0/8"),
        ip_network("192.168.1.0/24"),
        ip_network("::1/128"),
    )


def test_host_bits_are_normalized_rather_than_refused() -> None:
    # crossbar-examples#113: Crossbar itself refuses these; the intent is clear.
    assert parse_networks(["192.168.1.1/24", "2001:db8::1/32"]) == (
        ip_network("192.168.1.0/24"),
        ip_network("2001:db8::/32"),
    )


@pytest.mark.parametrize(
    "value", ["", " ", "10.0.0.300", "10.0.0.0/33", "example.com", "010.0.0.1"]
)
def test_bad_networks_are_refused_with_the_value(value: str) -> None:
    with pytest.raises(ValueError, match="address or network"):
        parse_networks([value])


def test_network_entries_must_be_strings() -> None:
    with pytest.raises(ValueError, match="expected an IP address or network, got 10"):
        parse_networks([10])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="parse_networks"):
        IpAllowList(("10.0.0.0/8",))  # type: ignore[arg-type]


def test_a_single_string_is_not_mistaken_for_a_list_of_characters() -> None:
    with pytest.raises(ValueError, match="list"):
        parse_networks("10.0.0.1")


def test_the_allow_list_lets_in_members_and_denies_others_with_crossbars_ar466() -> None:
    allow = IpAllowList(parse_networks(["10.0.0.0/8", "2001:db8::/32"]))
    allow.check(IPv4Address("10.1.2.3"))
    allow.check(IPv6Address("2001:db8::5"))
    with pytest.raises(DeniedError) as raised:
        allow.check(IPv4Address("192.0.2.1"))
    denial = raised.value
    assert denial.message == "Request denied based on IP address."
    assert (denial.status, denial.rest_status, denial.uri) == (400, 403, FORBIDDEN)
    assert denial.compat_body() == (
        b'{"error":"Request denied based on IP address.","args":[],"kwargs":{}}'
    )


def test_an_ipv4_client_on_a_dual_stack_listener_matches_ipv4_networks() -> None:
    allow = IpAllowList(parse_networks(["10.0.0.0/8"]))
    assert allow.allows(IPv6Address("::ffff:10.1.2.3"))


def test_an_unknown_client_address_is_denied() -> None:
    with pytest.raises(DeniedError):
        IpAllowList(parse_networks(["0.0.0.0/0"])).check(None)


def test_an_empty_allow_list_is_refused_rather_than_denying_everyone() -> None:
    with pytest.raises(ValueError, match="refuse every request"):
        IpAllowList(())


def test_require_tls_refuses_plain_http_with_crossbars_ar400() -> None:
    check_tls(True)
    with pytest.raises(DeniedError) as raised:
        check_tls(False)
    denial = raised.value
    assert denial.message == "Malformed request to the REST bridge."
    assert (denial.status, denial.rest_status) == (400, 403)


# -- the client behind trusted proxies ------------------------------------------------------

PROXY = "10.0.0.1"
proxies = TrustedProxies(parse_networks(["10.0.0.0/24", "fd00::/8"]))
forwarded = TrustedProxies(parse_networks(["10.0.0.0/24", "fd00::/8"]), header="forwarded")


def test_without_headers_the_client_is_the_peer() -> None:
    assert proxies.client_ip(FakeRequest("198.51.100.9")) == ip_address("198.51.100.9")


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored() -> None:
    request = FakeRequest("198.51.100.9", {"X-Forwarded-For": ["10.0.0.5"]})
    assert proxies.client_ip(request) == ip_address("198.51.100.9")
    request = FakeRequest("198.51.100.9", {"Forwarded": ["for=10.0.0.5"]})
    assert forwarded.client_ip(request) == ip_address("198.51.100.9")


def test_a_trusted_proxy_names_the_client() -> None:
    request = FakeRequest(PROXY, {"X-Forwarded-For": ["198.51.100.9"]})
    assert proxies.client_ip(request) == ip_address("198.51.100.9")


def test_a_prefix_forged_by_the_client_is_never_read() -> None:
    # The client sent "X-Forwarded-For: 10.0.0.2, garbage"; the proxy appended what it saw.
    request = FakeRequest(PROXY, {"X-Forwarded-For": ["10.0.0.2, garbage, 198.51.100.9"]})
    assert proxies.client_ip(request) == ip_address("198.51.100.9")


def test_a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_hop() -> None:
    request = FakeRequest(
        PROXY, {"X-Forwarded-For": ["1.1.1.1, 198.51.100.9, 10.0.0.3", "10.0.0.2"]}
    )
    assert proxies.client_ip(request) == ip_address("198.51.100.9")


def test_when_every_hop_is_a_proxy_the_leftmost_is_the_client() -> None:
    request = FakeRequest(PROXY, {"X-Forwarded-For": ["10.0.0.9, 10.0.0.2"]})
    assert proxies.client_ip(request) == ip_address("10.0.0.9")


@pytest.mark.parametrize(
    "value", ["unknown", "not-an-ip", "10.0.0.2, 1.2.3.4.5", "[::1", "1.2.3.4:99999999", "é"]
)
def test_a_malformed_hop_where_it_matters_falls_back_to_the_peer(value: str) -> None:
    request = FakeRequest(PROXY, {"X-Forwarded-For": [value]})
    assert proxies.client_ip(request) == ip_address(PROXY)


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("198.51.100.9:4711", "198.51.100.9"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        (" 198.51.100.9 ,, ", "198.51.100.9"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
    ],
)
def test_x_forwarded_for_entries_may_carry_ports_and_ipv6(value: str, client: str) -> None:
    request = FakeRequest(PROXY, {"X-Forwarded-For": [value]})
    assert proxies.client_ip(request) == ip_address(client)


def test_ipv6_peers_can_be_trusted_proxies() -> None:
    request = FakeRequest("fd00::1", {"X-Forwarded-For": ["2001:db8::7"]})
    assert proxies.client_ip(request) == ip_address("2001:db8::7")


def test_an_ipv4_proxy_on_a_dual_stack_listener_is_still_trusted() -> None:
    request = FakeRequest("::ffff:10.0.0.1", {"X-Forwarded-For": ["198.51.100.9"]})
    assert proxies.client_ip(request) == ip_address("198.51.100.9")


def test_x_forwarded_for_is_ignored_when_the_proxy_speaks_forwarded() -> None:
    # The proxy maintains Forwarded and passes the client's X-Forwarded-For through.
    request = FakeRequest(
        PROXY, {"X-Forwarded-For": ["10.0.0.7"], "Forwarded": ["for=198.51.100.9"]}
    )
    assert forwarded.client_ip(request) == ip_address("198.51.100.9")
    assert proxies.client_ip(request) == ip_address("10.0.0.7")


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("for=198.51.100.9", "198.51.100.9"),
        ('For="198.51.100.9:4711";proto=https', "198.51.100.9"),
        ('for="[2001:db8::1]:4711"', "2001:db8::1"),
        ('for="[2001:db8::1]"', "2001:db8::1"),
        ("for=1.1.1.1, for=198.51.100.9;by=10.0.0.1, for=10.0.0.2", "198.51.100.9"),
        ("for=198.51.100.9;host=example.com;by=_proxy", "198.51.100.9"),
        ('for=198.51.100.9;x="a \\"quoted\\", value; with separators"', "198.51.100.9"),
        (" , for=198.51.100.9 ,", "198.51.100.9"),
    ],
)
def test_forwarded_is_read_per_rfc_7239(value: str, client: str) -> None:
    request = FakeRequest(PROXY, {"Forwarded": [value]})
    assert forwarded.client_ip(request) == ip_address(client)


def test_forwarded_header_lines_form_one_list() -> None:
    request = FakeRequest(PROXY, {"Forwarded": ["for=1.1.1.1", "for=198.51.100.9", "for=10.0.0.2"]})
    assert forwarded.client_ip(request) == ip_address("198.51.100.9")


@pytest.mark.parametrize(
    "value",
    [
        "for=unknown",
        "for=_hidden",
        'for="_hidden:4711"',
        "by=10.0.0.1",  # the hop did not say who it forwarded for
        "for=198.51.100.9;for=1.1.1.1",  # a repeated parameter
        'for="2001:db8::1"',  # IPv6 must be bracketed
        "for=198.51.100.9 proto=https",
        'for="unterminated',
        "for = 198.51.100.9",
        "=198.51.100.9",
        "for=",
    ],
)
def test_a_hidden_or_malformed_forwarded_falls_back_to_the_peer(value: str) -> None:
    request = FakeRequest(PROXY, {"Forwarded": [value]})
    assert forwarded.client_ip(request) == ip_address(PROXY)


def test_an_empty_pair_in_forwarded_is_allowed() -> None:
    request = FakeRequest(PROXY, {"Forwarded": ["for=198.51.100.9;;proto=https;"]})
    assert forwarded.client_ip(request) == ip_address("198.51.100.9")
    assert forwarded.is_secure(request)


def test_a_unix_socket_peer_is_trusted_only_when_asked() -> None:
    unix = address.UNIXAddress(b"/run/wampweb.sock")
    request = FakeRequest(unix, {"X-Forwarded-For": ["198.51.100.9"]})
    assert proxies.client_ip(request) is None
    local = TrustedProxies((), trust_unix_socket=True)
    assert local.client_ip(request) == ip_address("198.51.100.9")
    assert local.client_ip(FakeRequest(unix)) is None


def test_an_unknown_forwarding_header_is_refused() -> None:
    with pytest.raises(ValueError, match="forwarding header 'x-real-ip'"):
        TrustedProxies((), header="x-real-ip")  # type: ignore[arg-type]


def test_when_every_forwarded_hop_is_a_proxy_the_leftmost_is_the_client() -> None:
    request = FakeRequest(PROXY, {"Forwarded": ["for=10.0.0.9;proto=https, for=10.0.0.2"]})
    assert forwarded.client_ip(request) == ip_address("10.0.0.9")
    assert forwarded.is_secure(request)


def test_trusted_networks_must_be_networks() -> None:
    with pytest.raises(ValueError, match="parse_networks"):
        TrustedProxies(("10.0.0.0/8",))  # type: ignore[arg-type]


# -- TLS behind trusted proxies -------------------------------------------------------------


def test_is_secure_is_the_connections_own_without_a_trusted_proxy() -> None:
    assert proxies.is_secure(FakeRequest("198.51.100.9", secure=True))
    request = FakeRequest("198.51.100.9", {"X-Forwarded-Proto": ["https"]})
    assert not proxies.is_secure(request)  # the client cannot claim TLS


def test_a_trusted_proxy_reports_tls_in_x_forwarded_proto() -> None:
    headers = {"X-Forwarded-For": ["198.51.100.9"], "X-Forwarded-Proto": ["HTTPS"]}
    assert proxies.is_secure(FakeRequest(PROXY, headers))
    headers["X-Forwarded-Proto"] = ["http"]
    assert not proxies.is_secure(FakeRequest(PROXY, headers, secure=True))


def test_x_forwarded_proto_counts_without_x_forwarded_for() -> None:
    # A proxy set up to report only the scheme (the client is then the proxy itself).
    request = FakeRequest(PROXY, {"X-Forwarded-Proto": ["https"]})
    assert proxies.is_secure(request)
    assert proxies.client_ip(request) == ip_address(PROXY)


def test_forwarded_proto_counts_without_for() -> None:
    request = FakeRequest(PROXY, {"Forwarded": ["proto=https"]})
    assert forwarded.is_secure(request)
    assert forwarded.client_ip(request) == ip_address(PROXY)


def test_one_plain_http_leg_in_x_forwarded_proto_is_not_secure() -> None:
    # A forged "https" in front of the proxy's "http" must not pass as TLS.
    headers = {"X-Forwarded-For": ["198.51.100.9"], "X-Forwarded-Proto": ["https, http"]}
    assert not proxies.is_secure(FakeRequest(PROXY, headers))


def test_without_x_forwarded_proto_the_connection_decides() -> None:
    headers = {"X-Forwarded-For": ["198.51.100.9"]}
    assert proxies.is_secure(FakeRequest(PROXY, headers, secure=True))
    assert not proxies.is_secure(FakeRequest(PROXY, headers, secure=False))


def test_forwarded_proto_is_read_from_the_clients_hop() -> None:
    value = "for=198.51.100.9;proto=https, for=10.0.0.2;proto=http"
    assert forwarded.is_secure(FakeRequest(PROXY, {"Forwarded": [value]}))
    value = "for=198.51.100.9;proto=http, for=10.0.0.2;proto=https"
    assert not forwarded.is_secure(FakeRequest(PROXY, {"Forwarded": [value]}, secure=True))


def test_a_forwarded_hop_without_proto_leaves_it_to_the_connection() -> None:
    request = FakeRequest(PROXY, {"Forwarded": ["for=198.51.100.9"]}, secure=True)
    assert forwarded.is_secure(request)


def test_a_malformed_forwarded_leaves_tls_to_the_connection() -> None:
    request = FakeRequest(PROXY, {"Forwarded": ["for=1.1.1.1;proto=https;proto=https"]})
    assert not forwarded.is_secure(request)
    assert forwarded.client_ip(request) == ip_address(PROXY)


def test_the_client_cannot_claim_tls_through_the_header_the_proxy_ignores() -> None:
    headers = {"X-Forwarded-For": ["198.51.100.9"], "Forwarded": ["for=1.1.1.1;proto=https"]}
    assert not proxies.is_secure(FakeRequest(PROXY, headers))


# -- with a real Twisted request --------------------------------------------------------------


def fired(client: Any, deferred: Any) -> Any:
    """The result of a StubTreq Deferred, which has fired once the stub is flushed."""
    results: list[Any] = []
    deferred.addBoth(results.append)
    client.flush()
    assert len(results) == 1
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def test_a_real_twisted_request_is_read_the_same_way() -> None:
    """The fakes above stand in for ``twisted.web.server.Request``: check one real request."""
    import json

    from treq.testing import StubTreq
    from twisted.web.resource import Resource

    from wampweb._access import CorsPolicy, set_common_headers

    trusted = TrustedProxies(parse_networks(["127.0.0.1"]))  # StubTreq's peer

    class Probe(Resource):
        isLeaf = True

        def __init__(self) -> None:
            Resource.__init__(self)

        def render_POST(self, request: Any) -> bytes:
            set_common_headers(request, CorsPolicy.allow(["https://app.example.com"]))
            ip = trusted.client_ip(request)
            return json.dumps({"ip": str(ip), "tls": trusted.is_secure(request)}).encode()

    client: Any = StubTreq(Probe())  # its request methods are made at run time
    headers = {
        "Origin": ["https://app.example.com"],
        "X-Forwarded-For": ["10.9.9.9, 198.51.100.9"],
        "X-Forwarded-Proto": ["https"],
    }
    response = fired(client, client.post("http://bridge.test/", headers=headers))
    body = json.loads(fired(client, response.content()))
    assert body == {"ip": "198.51.100.9", "tls": True}
    assert response.headers.getRawHeaders("access-control-allow-origin") == [
        "https://app.example.com"
    ]
    assert response.headers.getRawHeaders("content-type") == ["application/json; charset=UTF-8"]
