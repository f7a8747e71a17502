"""
Who may do what through the bridge: URI permissions, the client's address, IP and TLS checks.

Everything here is a pure value or a pure function of a request's headers and peer address, so
each decision is tested without a network or a reactor. Refusals raise
:class:`~wampweb._denial.DeniedError`, which carries both the Crossbar-compatible answer (Crossbar's
exact message and status where Crossbar has the case) and the REST one.

CORS lives in ``_cors.py`` and rate limits in ``_ratelimit.py``; both are re-exported here, so
``wampweb._access`` is the one place the bridge imports its access checks from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Literal, Protocol

import attrs
from twisted.internet.address import IPv4Address as TwistedIPv4Address
from twisted.internet.address import IPv6Address as TwistedIPv6Address
from twisted.internet.address import UNIXAddress
from twisted.web.http_headers import Headers

from wampweb._cors import CorsPolicy, set_common_headers
from wampweb._denial import DeniedError
from wampweb._ratelimit import RATE_LIMITED, RateLimiter, rate_limit_identity

__all__ = [
    "FORBIDDEN",
    "RATE_LIMITED",
    "Action",
    "ClientRequest",
    "CorsPolicy",
    "IpAddress",
    "IpAllowList",
    "IpNetwork",
    "MatchPolicy",
    "Permissions",
    "RateLimiter",
    "TrustedProxies",
    "UriPattern",
    "check_tls",
    "parse_networks",
    "rate_limit_identity",
    "set_common_headers",
]

IpAddress = IPv4Address | IPv6Address
IpNetwork = IPv4Network | IPv6Network
MatchPolicy = Literal["exact", "prefix", "wildcard"]
Action = Literal["publish", "call"]

#: The REST error URI of every "you may not" refusal.
FORBIDDEN = "wampweb.error.forbidden"

# ---------------------------------------------------------------------------------------------
# URI patterns

# The WAMP spec's "loose" URI rules (what routers accept by default): a component is any run of
# characters other than whitespace, "." and "#". Exact URIs have no empty component; a prefix may
# end anywhere (even at ""), a wildcard pattern marks "any one component" by leaving it empty.
_EXACT = re.compile(r"(?:[^\s.#]+\.)*[^\s.#]+")
_PREFIX = re.compile(r"(?:[^\s.#]+\.)*[^\s.#]*")
_WILDCARD = re.compile(r"(?:[^\s.#]*\.)*[^\s.#]*")
_POLICIES = ("exact", "prefix", "wildcard")


@attrs.frozen
class UriPattern:
    """
    A URI pattern with the match policy WAMP routers use for subscriptions, registrations and
    Crossbar's role permissions.

    - ``exact``: the URI is the pattern.
    - ``prefix``: the URI starts with the pattern, as a plain string (``com.example`` matches
      ``com.example.x`` *and* ``com.exampleX``, exactly as Crossbar's authorizer and the WAMP
      spec's prefix subscriptions do; write ``com.example.`` to stop at a component boundary).
      The empty prefix matches every URI.
    - ``wildcard``: same number of components, and every non-empty pattern component equal;
      an empty component matches any one non-empty component (``com..update`` matches
      ``com.x.update``, not ``com.x.y.update``).

    Patterns are validated here, so a typo is refused when the configuration is read and not
    discovered as a surprising allow (or deny) later. ``*`` is refused: in WAMP's own patterns it
    is a literal character, while a user who writes it means a wildcard; Crossbar's starred
    notation is accepted through :meth:`from_starred`.
    """

    pattern: str
    match: MatchPolicy = "exact"
    _components: tuple[str, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _validate_pattern(self.pattern, self.match)
        object.__setattr__(self, "_components", tuple(self.pattern.split(".")))

    @classmethod
    def from_starred(cls, uri: str) -> UriPattern:
        """
        Read Crossbar's starred notation (``autobahn.wamp.uri.convert_starred_uri``).

        No star: exact. One star at the very end: prefix (``com.example.*`` → prefix
        ``com.example.``; ``*`` alone → every URI). Otherwise each star must be a whole
        component and marks a wildcard (``com.*.update`` → wildcard ``com..update``).
        """
        if not isinstance(uri, str):
            raise ValueError(f"a URI pattern must be a string, got {uri!r}")
        stars = uri.count("*")
        if stars == 0:
            return cls(uri, "exact")
        if stars == 1 and uri.endswith("*"):
            return cls(uri[:-1], "prefix")
        components = uri.split(".")
        if any("*" in part and part != "*" for part in components):
            raise ValueError(
                f"invalid URI pattern {uri!r}: a '*' must stand for a whole URI component "
                "(like 'com.*.update') or end a prefix (like 'com.example.*')"
            )
        return cls(".".join("" if part == "*" else part for part in components), "wildcard")

    def matches(self, uri: str) -> bool:
        """Whether ``uri`` is covered by this pattern."""
        if self.match == "exact":
            return uri == self.pattern
        if self.match == "prefix":
            return uri.startswith(self.pattern)
        parts = uri.split(".")
        if len(parts) != len(self._components):
            return False
        return all(
            (want == part) if want else bool(part)
            for want, part in zip(self._components, parts, strict=True)
        )


def _validate_pattern(pattern: object, match: object) -> None:
    if match not in _POLICIES:
        raise ValueError(
            f"unknown match policy {match!r}: expected 'exact', 'prefix' or 'wildcard'"
        )
    if not isinstance(pattern, str):
        raise ValueError(f"a URI pattern must be a string, got {pattern!r}")
    if "*" in pattern:
        raise ValueError(
            f"invalid URI pattern {pattern!r}: '*' is not a wildcard in WAMP patterns; "
            "leave the component empty with match 'wildcard' ('com..update'), end a prefix "
            "with match 'prefix' ('com.example.'), or write Crossbar's starred form "
            "without a match policy"
        )
    if match == "exact":
        if not _EXACT.fullmatch(pattern):
            raise ValueError(
                f"invalid URI {pattern!r} for match 'exact': components must be non-empty "
                "and contain no whitespace or '#'"
            )
    elif match == "prefix":
        if not _PREFIX.fullmatch(pattern):
            raise ValueError(
                f"invalid URI prefix {pattern!r}: components before the last must be non-empty "
                "and no component may contain whitespace or '#'"
            )
    elif pattern == "":
        raise ValueError(
            "invalid wildcard pattern '': it would match only one-component URIs; "
            "to allow every URI use the prefix ''"
        )
    elif not _WILDCARD.fullmatch(pattern):
        raise ValueError(
            f"invalid wildcard pattern {pattern!r}: components may be empty (any one component) "
            "but must not contain whitespace or '#'"
        )


# ---------------------------------------------------------------------------------------------
# Permissions


def _patterns(value: Iterable[UriPattern]) -> tuple[UriPattern, ...]:
    patterns = tuple(value)
    for pattern in patterns:
        if not isinstance(pattern, UriPattern):
            raise ValueError(f"expected UriPattern values, got {pattern!r}")
    return patterns


@attrs.frozen
class Permissions:
    """
    What one bridge key may publish to and call.

    The lists only allow: a URI matching any pattern of the action is allowed, anything else
    is refused. With no deny rules there is no precedence to get wrong (Crossbar's role
    permissions need "most specific rule wins" because a rule can also forbid).

    Crossbar's bridge has no per-key permissions (every request acts as the bridge's one role),
    so this refusal has no Crossbar wording: it is a 403 in both faces. The router's own
    authorization still applies on top.
    """

    publish: tuple[UriPattern, ...] = attrs.field(default=(), converter=_patterns)
    call: tuple[UriPattern, ...] = attrs.field(default=(), converter=_patterns)

    @classmethod
    def allow_all(cls) -> Permissions:
        """Every URI, both actions: what a bridge without per-key permissions does."""
        everything = (UriPattern("", "prefix"),)
        return cls(publish=everything, call=everything)

    def allows(self, action: Action, uri: str) -> bool:
        """Whether ``action`` on ``uri`` is allowed."""
        if action == "publish":
            patterns = self.publish
        elif action == "call":
            patterns = self.call
        else:
            raise ValueError(f"unknown action {action!r}: expected 'publish' or 'call'")
        return any(pattern.matches(uri) for pattern in patterns)

    def check(self, action: Action, uri: str, *, key: str | None = None) -> None:
        """
        Refuse ``action`` on ``uri`` unless allowed.

        ``key`` is the verified key the request was signed with (``None`` for an unsigned
        request); the message names it so the client learns which credentials fell short.
        """
        if self.allows(action, uri):
            return
        who = "unsigned requests" if key is None else f"key {key!r}"
        what = "publish to" if action == "publish" else "call"
        raise DeniedError(
            f"{who} may not {what} {uri!r}", status=403, rest_status=403, uri=FORBIDDEN
        )


# ---------------------------------------------------------------------------------------------
# Networks, the allow list and TLS


def parse_networks(values: Sequence[str]) -> tuple[IpNetwork, ...]:
    """
    Read ``require_ip``-style entries: a plain IP (``127.0.0.1``, ``::1``), CIDR
    (``10.0.0.0/8``), or the netmask form Crossbar's docs show (``192.168.1.1/255.255.255.0``).

    Python's strict ``ip_network`` refuses the documented ``192.168.1.1/255.255.255.0`` and
    ``192.168.1.1/24`` ("has host bits set"), which is crossbar-examples#113. The intent of
    both is unambiguous (the network that address is in), so they are accepted and normalized
    to ``192.168.1.0/24``; the normalized value is what ``repr`` and logs show. A hostmask
    (``10.0.0.0/0.0.0.255``) is read the way Python reads it. An empty list gives ``()``: what
    that means (Crossbar: no restriction) is the caller's decision.
    """
    if isinstance(values, str | bytes):
        raise ValueError(f"expected a list of addresses or networks, got the string {values!r}")
    networks: list[IpNetwork] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected an IP address or network, got {value!r}")
        try:
            networks.append(ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not an IP address or network "
                "(expected e.g. '10.0.0.1', '10.0.0.0/8', '10.0.0.0/255.0.0.0' or '2001:db8::/32')"
            ) from exc
    return tuple(networks)


def _networks(value: Iterable[IpNetwork]) -> tuple[IpNetwork, ...]:
    networks = tuple(value)
    for network in networks:
        if not isinstance(network, IPv4Network | IPv6Network):
            raise ValueError(f"expected ip_network values (see parse_networks), got {network!r}")
    return networks


def _unmapped(ip: IpAddress) -> IpAddress:
    """
    ``::ffff:10.0.0.1`` is how an IPv4 client looks on a dual-stack ``::`` listener; it is
    the IPv4 client, and must match ``10.0.0.0/8`` in an allow list or a proxy list.
    """
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _in_any(ip: IpAddress, networks: tuple[IpNetwork, ...]) -> bool:
    # A version mismatch is simply "not in"; ipaddress answers False rather than raising.
    return any(ip in network for network in networks)


@attrs.frozen
class IpAllowList:
    """
    Crossbar's ``require_ip``: only clients in one of ``networks`` get through.

    An empty list is refused: as a value it could only mean "refuse everyone", which nobody
    configures on purpose (Crossbar reads ``require_ip: []`` as "no restriction"; the
    configuration layer maps that to "no allow list").
    """

    networks: tuple[IpNetwork, ...] = attrs.field(converter=_networks)

    def __attrs_post_init__(self) -> None:
        if not self.networks:
            raise ValueError(
                "an empty IP allow list would refuse every request; leave it out to allow all"
            )

    def allows(self, ip: IpAddress | None) -> bool:
        """Whether ``ip`` is in the list; an unknown address (``None``) never is."""
        return ip is not None and _in_any(_unmapped(ip), self.networks)

    def check(self, ip: IpAddress | None) -> None:
        """Refuse with Crossbar's AR466 unless ``ip`` is allowed (400 compat, 403 REST)."""
        if not self.allows(ip):
            raise DeniedError(
                "Request denied based on IP address.", status=400, rest_status=403, uri=FORBIDDEN
            )


def check_tls(secure: bool) -> None:
    """
    Crossbar's ``require_tls``: refuse a request that did not arrive over TLS.

    Crossbar answers this with its generic AR400 text; the REST face is a 403 with a URI that
    says what is missing. Pass :meth:`TrustedProxies.is_secure` so TLS ended at a trusted
    proxy counts.
    """
    if not secure:
        raise DeniedError(
            "Malformed request to the REST bridge.",
            status=400,
            rest_status=403,
            uri="wampweb.error.tls_required",
        )


# ---------------------------------------------------------------------------------------------
# The client behind trusted proxies


class ClientRequest(Protocol):
    """
    What :class:`TrustedProxies` reads from a request: its peer, headers and TLS. A Twisted
    ``Request`` (any ``IRequest``) is one; so is a five-line fake in a test.
    """

    requestHeaders: Headers

    def getClientAddress(self) -> object: ...

    def isSecure(self) -> bool: ...


ForwardingHeader = Literal["x-forwarded-for", "forwarded"]


@attrs.frozen
class _Hop:
    """
    Where the client was found: its address, whether the peer is a trusted proxy (so its
    headers count) and, for ``Forwarded``, the ``proto=`` of the client's hop.
    """

    ip: IpAddress | None
    trusted_peer: bool = False
    proto: str | None = None


@attrs.frozen
class TrustedProxies:
    """
    The client's address and scheme, believing forwarding headers only from trusted proxies.

    A forwarding header is just text the client can write. It counts only when the TCP peer
    is in ``networks``; then the chain is read from the right (each proxy appends the address
    it saw) and the client is the rightmost address that is not itself a trusted proxy.
    Everything left of it was written by the client and is never read, so a forged prefix
    cannot change the answer. When every address is a trusted proxy, the leftmost is the
    client.

    ``header`` names the one header your proxy maintains: ``"x-forwarded-for"`` (with
    ``X-Forwarded-Proto``; nginx, HAProxy, Traefik and cloud load balancers by default) or
    ``"forwarded"`` (RFC 7239, ``for=`` and ``proto=``). Only one is believed: a proxy that
    maintains one usually passes the other through from the client untouched, and believing
    that one would let the client choose its address.

    A header that is malformed where it matters, or a hop the proxy hid (``for=unknown``,
    ``for=_hidden``), is ignored and the TCP peer is the answer: wrong headers never become
    a 500 and never become a client-chosen address.

    ``trust_unix_socket`` makes a peer on a UNIX socket a trusted proxy (only local
    processes can connect there). A peer with no IP address gives ``None``, which an
    :class:`IpAllowList` refuses.
    """

    networks: tuple[IpNetwork, ...] = attrs.field(default=(), converter=_networks)
    header: ForwardingHeader = attrs.field(default="x-forwarded-for")
    trust_unix_socket: bool = False

    @header.validator
    def _check_header(self, _attribute: object, value: object) -> None:
        if value not in ("x-forwarded-for", "forwarded"):
            raise ValueError(
                f"unknown forwarding header {value!r}: expected 'x-forwarded-for' or 'forwarded'"
            )

    def client_ip(self, request: ClientRequest) -> IpAddress | None:
        """The client's address: the peer's, or the forwarded one if the peer is trusted."""
        return self._resolve(request).ip

    def is_secure(self, request: ClientRequest) -> bool:
        """
        Whether the client's own connection used TLS.

        From a trusted peer: with ``Forwarded``, the ``proto=`` of the hop where the client
        was found; with ``X-Forwarded-Proto``, true only if every value is ``https`` (when
        proxies append one value per hop, a client's forged ``https`` can only make the
        answer "not secure", and a plain-HTTP leg anywhere is not hidden by a later TLS leg).
        Without that information, the connection's own ``isSecure()``.
        """
        hop = self._resolve(request)
        if hop.trusted_peer and self.header == "forwarded" and hop.proto is not None:
            return hop.proto.lower() == "https"
        if hop.trusted_peer and self.header == "x-forwarded-for":
            values = _list_values(_header_text(request, b"x-forwarded-proto"))
            if values:
                return all(value.lower() == "https" for value in values)
        return bool(request.isSecure())

    def _trusted(self, ip: IpAddress) -> bool:
        return _in_any(ip, self.networks)

    def _resolve(self, request: ClientRequest) -> _Hop:
        peer = request.getClientAddress()
        if isinstance(peer, TwistedIPv4Address | TwistedIPv6Address):
            peer_ip = _parse_ip(str(peer.host))
            trusted = peer_ip is not None and self._trusted(peer_ip)
        else:
            peer_ip = None
            trusted = self.trust_unix_socket and isinstance(peer, UNIXAddress)
        if not trusted:
            return _Hop(peer_ip)
        if self.header == "forwarded":
            return self._from_forwarded(request, peer_ip)
        return self._from_x_forwarded_for(request, peer_ip)

    def _from_x_forwarded_for(self, request: ClientRequest, peer_ip: IpAddress | None) -> _Hop:
        entries = _list_values(_header_text(request, b"x-forwarded-for"))
        ip: IpAddress | None = peer_ip
        for entry in reversed(entries):
            ip = _parse_node(entry, rfc7239=False)
            if ip is None:
                return _Hop(peer_ip, trusted_peer=True)
            if not self._trusted(ip):
                break
        # Without a header, the peer; when every hop is a trusted proxy, the leftmost one.
        return _Hop(ip, trusted_peer=True)

    def _from_forwarded(self, request: ClientRequest, peer_ip: IpAddress | None) -> _Hop:
        elements = _parse_forwarded(_header_text(request, b"forwarded") or "")
        if not elements:  # absent, or malformed: ignored as a whole
            return _Hop(peer_ip, trusted_peer=True)
        for element in reversed(elements):
            node = element.get("for")
            ip = None if node is None else _parse_node(node, rfc7239=True)
            if ip is None:
                return _Hop(peer_ip, trusted_peer=True, proto=element.get("proto"))
            if not self._trusted(ip):
                break
        # When every hop is a trusted proxy, the leftmost one; its element ends the loop.
        return _Hop(ip, trusted_peer=True, proto=element.get("proto"))


def _header_text(request: ClientRequest, name: bytes) -> str | None:
    """
    All values of a header as one comma-joined string (RFC 9110: repeated field lines are
    one list), or ``None``. Latin-1 never fails to decode; odd bytes then fail to parse.
    """
    values = request.requestHeaders.getRawHeaders(name)
    if not values:
        return None
    return ",".join(value.decode("latin-1") for value in values)


def _list_values(text: str | None) -> list[str]:
    """A comma list's elements, empty ones dropped (RFC 9110 list syntax allows them)."""
    if text is None:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse_ip(text: str) -> IpAddress | None:
    try:
        return _unmapped(ip_address(text))
    except ValueError:
        return None


_IPV4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3}):(?:\d{1,5}|_[A-Za-z0-9._-]+)")
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(?:\d{1,5}|_[A-Za-z0-9._-]+))?")


def _parse_node(text: str, *, rfc7239: bool) -> IpAddress | None:
    """
    One hop's address, or ``None`` when it is hidden (``unknown``, ``_obfuscated``) or
    malformed. Accepts what proxies write: ``192.0.2.1``, ``192.0.2.1:4711``, ``[2001:db8::1]``,
    ``[2001:db8::1]:4711`` and, outside ``Forwarded`` (whose RFC requires brackets), a bare IPv6.
    Scope ids (``fe80::1%eth0``) are refused: no proxy forwards one and they never match a network.
    """
    match = _BRACKETED.fullmatch(text)
    if match:
        return _parse_ip(match.group(1))
    match = _IPV4_PORT.fullmatch(text)
    if match:
        return _parse_ip(match.group(1))
    if "%" in text or (rfc7239 and ":" in text):
        return None
    return _parse_ip(text)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_OWS = re.compile(r"[ \t]+")
_QUOTED_PAIR = re.compile(r"\\(.)")


def _skip_ows(text: str, pos: int) -> int:
    match = _OWS.match(text, pos)
    return pos if match is None else match.end()


def _parse_forwarded(text: str) -> list[dict[str, str]] | None:
    """
    RFC 7239 ``Forwarded``: a list of elements, each ``name=value`` pairs joined by ``;``,
    a value being a token or a quoted string. Returns ``None`` when the header does not parse
    or an element repeats a parameter (the RFC forbids it, and which one to believe would be
    a guess). Parameter names are case-insensitive; empty elements are dropped.
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos = 0
    end = len(text)
    while True:
        pos = _skip_ows(text, pos)
        if pos >= end:
            break
        char = text[pos]
        if char in ",;":
            if char == "," and current:
                elements.append(current)
                current = {}
            pos += 1
            continue
        name_match = _TOKEN.match(text, pos)
        if name_match is None:
            return None
        name = name_match.group().lower()
        pos = name_match.end()
        if pos >= end or text[pos] != "=":
            return None
        pos += 1
        token = _TOKEN.match(text, pos)
        if token is not None:
            value = token.group()
            pos = token.end()
        else:
            quoted = _QUOTED.match(text, pos)
            if quoted is None:
                return None
            value = _QUOTED_PAIR.sub(r"\1", quoted.group(1))
            pos = quoted.end()
        if name in current:
            return None
        current[name] = value
        pos = _skip_ows(text, pos)
        if pos < end and text[pos] not in ",;":
            return None
    if current:
        elements.append(current)
    return elements
