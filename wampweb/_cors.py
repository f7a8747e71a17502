"""
CORS for the bridge, and the headers every bridge answer carries.

Crossbar's bridge answers every request with ``Access-Control-Allow-Origin`` set to the
request's ``Origin`` and ``Access-Control-Allow-Credentials: true``: any web page a logged-in
user visits may read the answers. :meth:`CorsPolicy.crossbar` keeps that, because existing
deployments rely on it; :meth:`CorsPolicy.allow` names the origins that may.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, Protocol
from urllib.parse import urlsplit

import attrs

from wampweb._denial import DeniedError

__all__ = ["CorsPolicy", "CorsRequest", "set_common_headers"]

#: The REST error URI of a refusal (``wampweb._access.FORBIDDEN``; this module must not
#: import that one, which re-exports this one).
_FORBIDDEN = "wampweb.error.forbidden"
#: The methods the bridge serves, in Crossbar's spelling.
_METHODS = b"POST,PUT,OPTIONS"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 9110 field names, comma-separated: what Access-Control-Request-Headers may contain.
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_LIST = re.compile(rb"[ \t]*" + _TOKEN + rb"(?:[ \t]*,[ \t]*" + _TOKEN + rb")*[ \t]*")


class CorsRequest(Protocol):
    """What CORS reads and writes: headers and the status. Any Twisted ``IRequest`` is one."""

    def getHeader(self, key: bytes) -> bytes | None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def setResponseCode(self, code: int) -> None: ...


def _normalize_origin(origin: str) -> str:
    """
    A configured origin in the form browsers send: lower-case scheme and host, no default
    port, nothing after the authority. Anything else is refused with the reason, because an
    origin that can never equal what a browser sends is an allow rule that silently never
    allows.
    """
    if not isinstance(origin, str) or not origin:
        raise ValueError(f"expected an origin like 'https://app.example.com', got {origin!r}")
    if origin == "null":
        raise ValueError(
            "the origin 'null' is shared by sandboxed frames and local files; allowing it "
            "allows any page that chooses to be 'null'"
        )
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{origin!r} is not an origin: {exc}") from exc
    if not parts.scheme or not parts.hostname or "*" in origin:
        raise ValueError(
            f"{origin!r} is not an origin: expected scheme://host[:port], "
            "like 'https://app.example.com' (use '*' alone for any origin)"
        )
    if parts.path or parts.query or parts.fragment or origin.endswith(("?", "#")):
        raise ValueError(
            f"{origin!r} is not an origin: an origin has no path, query or fragment "
            f"(write {parts.scheme}://{parts.netloc})"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{origin!r} is not an origin: an origin has no user or password")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@attrs.frozen
class CorsPolicy:
    """
    Which web pages may read the bridge's answers.

    Build one with :meth:`crossbar` or :meth:`allow`. Call :meth:`apply` on every answer
    (or :func:`set_common_headers`, which does), :meth:`preflight` to answer ``OPTIONS``, and
    :meth:`check_origin` before acting on a request.
    """

    mode: Literal["crossbar", "allow"]
    origins: frozenset[str] = frozenset()
    any_origin: bool = False
    credentials: bool = False
    max_age: int | None = None

    def __attrs_post_init__(self) -> None:
        # The class methods are the way in; this keeps a hand-built policy just as sound.
        if self.mode == "crossbar":
            if self.origins or self.any_origin or not self.credentials or self.max_age is not None:
                raise ValueError("the crossbar policy has no options: use CorsPolicy.crossbar()")
            return
        if self.mode != "allow":
            raise ValueError(f"unknown CORS mode {self.mode!r}: expected 'crossbar' or 'allow'")
        if self.max_age is not None and (
            not isinstance(self.max_age, int) or isinstance(self.max_age, bool) or self.max_age < 0
        ):
            raise ValueError(
                f"max_age must be a non-negative whole number of seconds, got {self.max_age!r}"
            )
        if self.any_origin and self.credentials:
            raise ValueError(
                "the origin '*' cannot allow credentials: name the origins that may send them"
            )
        if not self.any_origin and not self.origins:
            raise ValueError("no origins given: list the origins that may call, or '*'")
        for origin in self.origins:
            if _normalize_origin(origin) != origin:
                raise ValueError(f"origin {origin!r} is not normalized: use CorsPolicy.allow()")

    @classmethod
    def crossbar(cls) -> CorsPolicy:
        """
        Crossbar's policy, header for header: echo ``Origin`` (``*`` when absent or ``null``),
        ``Access-Control-Allow-Credentials: true``, echo ``Access-Control-Request-Headers``.
        ``Vary: Origin`` is added, since the answer depends on it.
        """
        return cls(mode="crossbar", credentials=True)

    @classmethod
    def allow(
        cls, origins: Sequence[str], credentials: bool = False, max_age: int | None = None
    ) -> CorsPolicy:
        """
        Only ``origins`` may read answers: exact origins like ``https://app.example.com``, or
        ``*`` for any origin. ``*`` cannot go with ``credentials``: browsers refuse that
        combination, and "any origin with the user's cookies" is the hole this policy closes.
        ``max_age`` lets browsers cache a preflight for that many seconds.
        """
        if isinstance(origins, str):
            raise ValueError(f"expected a list of origins, got the string {origins!r}")
        any_origin = "*" in origins
        normalized = frozenset(_normalize_origin(origin) for origin in origins if origin != "*")
        return cls(
            mode="allow",
            origins=normalized,
            any_origin=any_origin,
            credentials=credentials,
            max_age=max_age,
        )

    def allows(self, origin: bytes | None) -> bool:
        """Whether a request with this ``Origin`` header (``None``: no header) may be answered."""
        if origin is None or self.mode == "crossbar" or self.any_origin:
            return True
        return origin.decode("latin-1").lower() in self.origins

    def apply(self, request: CorsRequest) -> None:
        """
        Set the CORS headers of an answer to ``request``.

        A disallowed origin gets no CORS header at all (the browser then hides the answer
        from the page), only ``Vary: Origin``, so a cache never serves one origin's answer to
        another.
        """
        origin: bytes | None = request.getHeader(b"origin") or None
        if self.mode == "crossbar":
            allowed = origin if origin is not None and origin != b"null" else b"*"
            request.setHeader(b"access-control-allow-origin", allowed)
            request.setHeader(b"access-control-allow-credentials", b"true")
            asked = request.getHeader(b"access-control-request-headers")
            if asked:
                request.setHeader(b"access-control-allow-headers", asked)
            request.setHeader(b"vary", b"Origin")
            return
        if self.any_origin:
            request.setHeader(b"access-control-allow-origin", b"*")
        else:
            request.setHeader(b"vary", b"Origin")
            if origin is None or not self.allows(origin):
                return
            request.setHeader(b"access-control-allow-origin", origin)
            if self.credentials:
                request.setHeader(b"access-control-allow-credentials", b"true")
        # Retry-After is not a CORS-safelisted header: without this a page cannot read it.
        request.setHeader(b"access-control-expose-headers", b"Retry-After")

    def check_origin(self, request: CorsRequest) -> None:
        """
        Refuse a request from a disallowed origin before it acts.

        CORS only hides the answer; the request itself is still sent, and a form post
        (no preflight) from any page would publish. Requests without ``Origin`` (not from a
        browser page) pass. The crossbar policy never refuses.
        """
        origin: bytes | None = request.getHeader(b"origin") or None
        if not self.allows(origin):
            raise self._refusal(origin)

    def preflight(self, request: CorsRequest) -> bytes:
        """
        Answer an ``OPTIONS`` request: 200 with an empty body, ``Allow`` and
        ``Access-Control-Allow-Methods: POST,PUT,OPTIONS`` (Crossbar's answer).

        For an allow list, a preflight from a disallowed origin raises a 403
        :class:`DeniedError` (both faces: Crossbar never refuses one, so there is no wording to
        keep); an allowed one also gets ``Access-Control-Allow-Headers`` (the requested
        headers, if they are a well-formed list) and ``Access-Control-Max-Age``.
        """
        self.check_origin(request)
        self.apply(request)
        request.setResponseCode(200)
        request.setHeader(b"allow", _METHODS)
        request.setHeader(b"access-control-allow-methods", _METHODS)
        if self.mode == "allow":
            asked = request.getHeader(b"access-control-request-headers")
            if asked and _HEADER_LIST.fullmatch(asked):
                request.setHeader(b"access-control-allow-headers", asked.strip())
            if self.max_age is not None:
                request.setHeader(b"access-control-max-age", str(self.max_age).encode())
        return b""

    def _refusal(self, origin: bytes | None) -> DeniedError:
        shown = "" if origin is None else origin.decode("latin-1")
        return DeniedError(
            f"origin {shown!r} may not use this endpoint",
            status=403,
            rest_status=403,
            uri=_FORBIDDEN,
        )


def set_common_headers(request: CorsRequest, cors: CorsPolicy) -> None:
    """
    The headers of every bridge answer (spec a.3): no caching anywhere, JSON in UTF-8 (even
    for the webhook's plain ``OK``, as Crossbar does), and the CORS headers of ``cors``.
    """
    cors.apply(request)
    request.setHeader(b"cache-control", b"no-store,no-cache,must-revalidate,max-age=0")
    request.setHeader(b"content-type", b"application/json; charset=UTF-8")
