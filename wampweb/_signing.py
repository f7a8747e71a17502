"""
Signed HTTP bridge requests: Crossbar.io's scheme, verified more carefully.

Crossbar's HTTP bridge signs a request with query parameters ``key``,
``timestamp``, ``seq``, ``nonce`` and ``signature``, where ``signature`` is
``urlsafe_b64encode(HMAC-SHA256(secret, key ‖ timestamp ‖ seq ‖ nonce ‖ body))``
with ``=`` padding, every field being the exact bytes the client sent. Existing
clients (crossbarconnect, crossbarhttp, the PHP bundles) sign exactly that, so
wampweb checks the same parameters in the same order and refuses with the same
messages (``AR459``-``AR464`` of Crossbar's ``_log_categories.py``).

Where Crossbar is weak, wampweb does better without changing the wire:

- the signature is compared in constant time (Crossbar uses ``!=``);
- a signed request is remembered until its timestamp leaves the window, and a
  repeat is refused (Crossbar never looks at ``nonce`` or ``seq``, so anything
  captured can be replayed for as long as the window lasts);
- the replay memory is bounded, and when it is full of requests that still
  matter it refuses new ones (503 with ``Retry-After``) rather than forgetting
  one, because forgetting is what would let a replay through;
- a window of 0 (Crossbar: "no window") with signing keys is refused unless
  replay protection is turned off on purpose: without a window the memory
  would have to last forever.

Lenient modes (off by default) accept what real clients get slightly wrong:
an unpadded or standard-alphabet signature (crossbar#1705) and a timestamp
without fractional seconds (``datetime.isoformat()`` drops them when the
microsecond is 0, which crossbarhttp3 sends about once in a million requests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

import attrs
from twisted.internet.interfaces import IReactorTime

from wampweb._denial import DeniedError
from wampweb._errors import ConfigError

#: What Crossbar parses the timestamp with (``datetime.strptime``); 1-6 fraction digits.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
#: The example Crossbar's own error message gives.
TIMESTAMP_EXAMPLE = "2011-10-14T16:59:51.123Z"
_NO_FRACTION_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

#: Crossbar's default window, in seconds (its docs say 0; its code says 300).
DEFAULT_TIMESTAMP_DELTA_LIMIT = 300.0

# Crossbar's wording (crossbar/_log_categories.py). Clients match these strings.
_AR459 = "REST bridge signature secret not valid."
_AR460 = "REST bridge signature key not valid."
_AR461 = "REST bridge signature was invalid (missing mandatory field - {reason})."
_AR462 = "REST bridge signature was invalid ({reason})."
_AR464 = "Request expired, too old timestamp."

_UNAUTHORIZED = "wampweb.error.unauthorized"
_REPLAYED = "wampweb.error.replayed"
_CACHE_FULL = "wampweb.error.replay_cache_full"

# What ``int(bytes)`` accepts, minus its 4300-digit safety limit: ASCII whitespace
# around, an optional sign, digits with single underscores between them.
_INTEGER = re.compile(rb"\A[ \t\n\r\x0b\x0c]*([+-]?)([0-9]+(?:_[0-9]+)*)[ \t\n\r\x0b\x0c]*\Z")

# Query values are echoed in error messages as Crossbar does; a cap keeps a
# hostile megabyte-long parameter out of the answer and the log.
_SHOWN_LIMIT = 200


# -- the signature ---------------------------------------------------------------------


def _digest(secret: bytes, parts: Iterable[bytes]) -> bytes:
    mac = hmac.new(secret, None, hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def compute_signature(
    secret: bytes, key: str, timestamp: str, seq: str, nonce: str, body: bytes
) -> str:
    """
    The ``signature`` a Crossbar-compatible client sends for this request.

    Fields are concatenated with no separator, exactly as Crossbar does; the
    result is URL-safe base64 *with* ``=`` padding, the only form Crossbar accepts.
    """
    fields = (key, timestamp, seq, nonce)
    digest = _digest(secret, [*(field.encode("utf-8") for field in fields), body])
    return base64.urlsafe_b64encode(digest).decode("ascii")


def _accepted_forms(digest: bytes, *, lenient: bool) -> list[bytes]:
    padded = base64.urlsafe_b64encode(digest)
    if not lenient:
        return [padded]
    standard = base64.b64encode(digest)
    # A standard-alphabet signature put in a query string without escaping
    # arrives with its '+' decoded to a space: still the same digest.
    return [
        padded,
        padded.rstrip(b"="),
        standard,
        standard.rstrip(b"="),
        standard.replace(b"+", b" "),
        standard.rstrip(b"=").replace(b"+", b" "),
    ]


def _signature_matches(presented: bytes, digest: bytes, *, lenient: bool) -> bool:
    # Every accepted form is compared, with no early exit, so the time taken
    # does not say which form (or how much of one) matched.
    matched = False
    for form in _accepted_forms(digest, lenient=lenient):
        matched |= hmac.compare_digest(presented, form)
    return matched


# -- the timestamp ---------------------------------------------------------------------


def parse_timestamp(text: str, *, lenient: bool = False) -> datetime:
    """
    The UTC instant of a signing ``timestamp``, or ``ValueError``.

    Strict mode accepts exactly what Crossbar accepts from ASCII input: its
    ``strptime(TIMESTAMP_FORMAT)``, so 1-6 fraction digits and a trailing ``Z``
    (and, being ``strptime``, also unpadded fields and a lower-case ``t``/``z``).
    ``+00:00`` and a missing fraction are refused, as Crossbar refuses them.
    ``lenient`` also accepts a missing fraction, which ``isoformat()``-based
    clients send when the microsecond happens to be 0.

    Non-ASCII text is refused: ``strptime`` would read other scripts' digits,
    and Crossbar fails on non-ASCII before it parses.
    """
    if not text.isascii():
        raise ValueError(f"timestamp {text!r} is not ASCII")
    try:
        parsed = datetime.strptime(text, TIMESTAMP_FORMAT)
    except ValueError:
        if not lenient:
            raise
        parsed = datetime.strptime(text, _NO_FRACTION_FORMAT)
    return parsed.replace(tzinfo=UTC)


def format_timestamp(when: datetime) -> str:
    """``when`` as clients send it: UTC, milliseconds, ``Z`` (as autobahn's ``utcnow()``)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- keys ------------------------------------------------------------------------------


def _secret_bytes(value: str | bytes) -> bytes:
    # Crossbar's config holds the secret as a string and signs with its UTF-8.
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _non_empty(instance: object, attribute: attrs.Attribute[bytes], value: bytes) -> None:
    # Crossbar silently turns signing off when the secret is "" (`if self._secret:`);
    # here an empty secret is a mistake, not a switch.
    if not value:
        raise ValueError("a signing secret must not be empty")


@attrs.frozen
class SigningKey:
    """
    One key clients may sign with: the public ``key`` they send and the secret.

    Several keys may share a ``key`` (the same client name with an old and a new
    secret during rotation). The secret never appears in ``repr``, so a logged
    config cannot leak it.
    """

    key: str
    secret: bytes = attrs.field(converter=_secret_bytes, validator=_non_empty, repr=False)


# -- the replay memory ----------------------------------------------------------------

_Identity = tuple[str, str, bytes]


class _ReplayMemory:
    """
    The signed requests seen within the window, refusing any repeat.

    A request is remembered until its timestamp leaves the window (``ts +
    window``): after that the window check refuses a replay on its own. The
    entries sit in a deque in arrival order; to make expiry a pop from the left
    (amortised O(1)), each entry's expiry is raised to at least that of the
    entry before it. A request is therefore remembered at least as long as it
    must be and, since a timestamp is at most one window in the future, never
    longer than two windows after it arrived.

    When ``capacity`` live entries are held, new requests are refused rather
    than one being forgotten: forgetting one would reopen it to replay.
    """

    def __init__(self, capacity: int, window: float) -> None:
        self._capacity = capacity
        self._window = window
        self._order: deque[tuple[float, tuple[_Identity, ...]]] = deque()
        self._seen: set[_Identity] = set()

    def __len__(self) -> int:
        return len(self._order)

    def _expire(self, now: float) -> None:
        order, seen = self._order, self._seen
        while order and order[0][0] < now:
            _, identities = order.popleft()
            seen.difference_update(identities)

    def admit(self, key: str, digest: bytes, nonce: bytes, timestamp: float, now: float) -> None:
        """Remember this request, or raise the :class:`DeniedError` that refuses it."""
        self._expire(now)
        same_request: _Identity = ("signature", key, digest)
        same_nonce: _Identity = ("nonce", key, nonce)
        if same_request in self._seen:
            raise _replayed("this exact signed request was already seen")
        if same_nonce in self._seen:
            shown = _shown(nonce)
            raise _replayed(f"nonce '{shown}' was already used with key '{key}'")
        if len(self._order) >= self._capacity:
            wait = self._order[0][0] - now
            # Whole seconds, strictly past the expiry: the entry is still live
            # at the instant it expires, and Retry-After is rounded up anyway.
            retry_after = float(math.floor(max(wait, 0.0)) + 1)
            raise DeniedError(
                f"Too many signed requests within the timestamp window to remember "
                f"for replay protection ({self._capacity} held); refusing this one "
                f"rather than forgetting an earlier one. Retry after {retry_after:g} s.",
                status=503,
                rest_status=503,
                uri=_CACHE_FULL,
                retry_after=retry_after,
            )
        expires = timestamp + self._window
        if self._order and self._order[-1][0] > expires:
            expires = self._order[-1][0]
        identities = (same_request, same_nonce)
        self._order.append((expires, identities))
        self._seen.update(identities)


def _replayed(what: str) -> DeniedError:
    return DeniedError(
        f"Replayed request refused: {what} within the timestamp window. Sign every "
        f"request with a fresh nonce and timestamp. (Crossbar.io's HTTP bridge "
        f"accepted such replays; wampweb does not.)",
        status=401,
        rest_status=401,
        uri=_REPLAYED,
    )


# -- verifying -------------------------------------------------------------------------


def _first(args: Mapping[bytes, Sequence[bytes]], name: bytes) -> bytes | None:
    # Twisted gives every value of a repeated parameter; Crossbar uses the first.
    values = args.get(name)
    return values[0] if values else None


def _shown(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    return text if len(text) <= _SHOWN_LIMIT else text[:_SHOWN_LIMIT] + "…"


def _canonical_integer(value: bytes) -> bytes | None:
    """The integer ``value`` denotes, as canonical ASCII digits, or None if it is none."""
    match = _INTEGER.match(value)
    if match is None:
        return None
    sign, digits = match.groups()
    digits = digits.replace(b"_", b"").lstrip(b"0") or b"0"
    return b"-" + digits if sign == b"-" and digits != b"0" else digits


def _unauthorized(message: str, status: int) -> DeniedError:
    return DeniedError(message, status=status, rest_status=401, uri=_UNAUTHORIZED)


def _missing(reason: str) -> DeniedError:
    return _unauthorized(_AR461.format(reason=reason), 400)


def _invalid(reason: str) -> DeniedError:
    return _unauthorized(_AR462.format(reason=reason), 400)


def _invalid_timestamp(value: bytes) -> DeniedError:
    return _invalid(
        f"invalid timestamp '{_shown(value)}' (must be UTC/ISO-8601, e.g. '{TIMESTAMP_EXAMPLE}')"
    )


def _invalid_seq(value: bytes) -> DeniedError:
    return _invalid(f"invalid sequence number '{_shown(value)}' (must be an integer)")


def _invalid_nonce(value: bytes) -> DeniedError:
    return _invalid(f"invalid nonce '{_shown(value)}' (must be an integer)")


def _required(args: Mapping[bytes, Sequence[bytes]], name: bytes, reason: str) -> bytes:
    value = _first(args, name)
    if value is None:
        raise _missing(reason)
    return value


def _check_integer(value: bytes | None, refusal: Callable[[bytes], DeniedError]) -> bytes:
    """The canonical form of ``value`` (b"" when absent), or the refusal for it."""
    if value is None:
        return b""
    canonical = _canonical_integer(value)
    if canonical is None:
        raise refusal(value)
    return canonical


class RequestVerifier:
    """
    Checks the signing parameters of bridge requests, in Crossbar's order.

    With no keys, requests are unsigned, but any ``timestamp``, ``seq`` or
    ``nonce`` present must still be well-formed and the timestamp within the
    window, as Crossbar checks them. With keys, every parameter is required,
    any configured key may sign (rotation), and each verified request is
    remembered so that a repeat is refused.

    ``clock`` gives "now" (``clock.seconds()``, POSIX time), so tests advance
    a ``Clock`` instead of sleeping.
    """

    def __init__(
        self,
        keys: Sequence[SigningKey] = (),
        *,
        timestamp_delta_limit: float = DEFAULT_TIMESTAMP_DELTA_LIMIT,
        clock: IReactorTime,
        replay_cache_size: int = 100_000,
        lenient_signature: bool = False,
        lenient_timestamp: bool = False,
        replay_protection: bool = True,
    ) -> None:
        if not timestamp_delta_limit >= 0 or math.isinf(timestamp_delta_limit):
            raise ConfigError(
                f"must be a finite number of seconds >= 0 (0 disables the window), "
                f"not {timestamp_delta_limit!r}",
                key="timestamp_delta_limit",
            )
        self._keys: dict[bytes, list[SigningKey]] = {}
        for signing_key in keys:
            self._keys.setdefault(signing_key.key.encode("utf-8"), []).append(signing_key)
        self._window = float(timestamp_delta_limit)
        self._clock = clock
        self._lenient_signature = lenient_signature
        self._lenient_timestamp = lenient_timestamp
        self._memory: _ReplayMemory | None = None
        if self._keys and replay_protection:
            if self._window == 0:
                raise ConfigError(
                    "a window of 0 turns the timestamp check off, and then replay "
                    "protection would have to remember every signed request forever. "
                    "Set a window (Crossbar's default is 300 s), or turn replay "
                    "protection off explicitly (replay_protection = false) and accept "
                    "that a captured signed request can be replayed at any time",
                    key="timestamp_delta_limit",
                )
            if replay_cache_size < 1:
                raise ConfigError(
                    f"must be at least 1 while replay protection is on, not {replay_cache_size!r}",
                    key="replay_cache_size",
                )
            self._memory = _ReplayMemory(replay_cache_size, self._window)

    @property
    def remembered(self) -> int:
        """How many signed requests the replay memory holds (expired ones included until swept)."""
        return 0 if self._memory is None else len(self._memory)

    @property
    def signed(self) -> bool:
        """Whether requests must be signed (keys are configured)."""
        return bool(self._keys)

    def verify(self, args: Mapping[bytes, Sequence[bytes]], body: bytes) -> str | None:
        """
        The key that signed this request, or None if no keys are configured.

        ``args`` is Twisted's ``request.args``; ``body`` the exact request bytes.
        Raises :class:`~wampweb._denial.DeniedError` for the first failed check, in
        Crossbar's order (spec a.2, rows 8-14), then for a replay.
        """
        if not self._keys:
            # Unsigned: nothing is required, but what is there must be well-formed
            # (and a timestamp within the window), as Crossbar checks it.
            timestamp = _first(args, b"timestamp")
            if timestamp is not None:
                self._check_timestamp(timestamp)
            _check_integer(_first(args, b"seq"), _invalid_seq)
            _check_integer(_first(args, b"nonce"), _invalid_nonce)
            return None

        key = _required(args, b"key", "'key' field missing")
        timestamp = _required(
            args, b"timestamp", "signed request required, but mandatory 'timestamp' field missing"
        )
        instant = self._check_timestamp(timestamp)
        seq = _required(args, b"seq", "'seq' field missing")
        _check_integer(seq, _invalid_seq)
        nonce = _required(args, b"nonce", "'nonce' field missing")
        canonical_nonce = _check_integer(nonce, _invalid_nonce)
        signature = _required(args, b"signature", "'signature' field missing")

        candidates = self._keys.get(key)
        if not candidates:
            raise _unauthorized(_AR460, 401)
        for candidate in candidates:
            digest = _digest(candidate.secret, (key, timestamp, seq, nonce, body))
            if _signature_matches(signature, digest, lenient=self._lenient_signature):
                break
        else:
            raise _unauthorized(_AR459, 401)

        if self._memory is not None:
            now = self._clock.seconds()
            self._memory.admit(candidate.key, digest, canonical_nonce, instant, now)
        return candidate.key

    def _check_timestamp(self, raw: bytes) -> float:
        try:
            instant = parse_timestamp(raw.decode("ascii"), lenient=self._lenient_timestamp)
        except ValueError:  # UnicodeDecodeError included
            raise _invalid_timestamp(raw) from None
        seconds = instant.timestamp()
        if self._window and abs(self._clock.seconds() - seconds) > self._window:
            # Crossbar says "too old" for a timestamp in the future too.
            raise _unauthorized(_AR464, 400)
        return seconds


# -- explaining ------------------------------------------------------------------------


def explain(
    args: Mapping[bytes, Sequence[bytes]],
    body: bytes,
    keys: Sequence[SigningKey],
    *,
    now: datetime,
    timestamp_delta_limit: float,
) -> list[str]:
    """
    Every reason a strict verifier would refuse this signed request; empty if none.

    Unlike :meth:`RequestVerifier.verify`, which stops at the first failure with
    Crossbar's terse wording, this is for a person debugging a client: it says
    what is wrong and how it usually happens. It does not know about replays.
    ``now`` is taken as UTC when naive.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    reasons: list[str] = []
    fields = {name: _first(args, name.encode()) for name in _FIELDS}
    for name in _FIELDS:
        if fields[name] is None:
            reasons.append(f"the '{name}' query parameter is missing")

    timestamp = fields["timestamp"]
    if timestamp is not None:
        reasons += _explain_timestamp(timestamp, now, timestamp_delta_limit)
    for name in ("seq", "nonce"):
        value = fields[name]
        if value is not None and _canonical_integer(value) is None:
            reasons.append(f"{name} '{_shown(value)}' is not an integer")

    key = fields["key"]
    candidates = [k for k in keys if key is not None and k.key.encode("utf-8") == key]
    if key is not None and not candidates:
        known = ", ".join(f"'{k.key}'" for k in keys) or "none"
        reasons.append(f"key '{_shown(key)}' is not one of the configured keys ({known})")

    signature = fields["signature"]
    if candidates and signature is not None and None not in fields.values():
        signed = [fields[name] or b"" for name in ("key", "timestamp", "seq", "nonce")]
        reasons += _explain_signature(signature, signed, body, candidates)
    return reasons


_FIELDS = ("key", "timestamp", "seq", "nonce", "signature")


def _explain_timestamp(raw: bytes, now: datetime, window: float) -> list[str]:
    shown = _shown(raw)
    example = (
        f"UTC ISO-8601 with 1-6 fractional digits and a trailing 'Z', e.g. '{TIMESTAMP_EXAMPLE}'"
    )
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return [f"timestamp '{shown}' has non-ASCII characters; it must be {example}"]
    try:
        instant = parse_timestamp(text)
    except ValueError:
        return [_timestamp_format_advice(text, example)]
    if not window:
        return []
    delta = (now - instant).total_seconds()
    if abs(delta) <= window:
        return []
    when = "in the past" if delta > 0 else "in the future"
    return [
        f"timestamp '{text}' is {abs(delta):.1f} s {when}, outside the ±{window:g} s "
        f"window by {abs(delta) - window:.1f} s (is the clock right, and is it UTC?)"
    ]


def _timestamp_format_advice(text: str, example: str) -> str:
    try:
        parse_timestamp(text, lenient=True)
    except ValueError:
        pass
    else:
        return (
            f"timestamp '{text}' has no fractional seconds; Crossbar requires them "
            f"({example}). datetime.isoformat() drops them when the microsecond is 0; "
            f"wampweb accepts this form only with lenient timestamps"
        )
    if re.search(r"[+-]\d\d:?\d\d\Z", text):
        return f"timestamp '{text}' has a UTC offset; end it with 'Z' instead ({example})"
    if re.search(r"\.\d{7,}Z\Z", text):
        return f"timestamp '{text}' has more than 6 fractional digits ({example})"
    return f"timestamp '{text}' is not in the expected format: {example}"


def _explain_signature(
    presented: bytes, fields: list[bytes], body: bytes, candidates: list[SigningKey]
) -> list[str]:
    digests = [_digest(k.secret, (*fields, body)) for k in candidates]
    if any(_signature_matches(presented, digest, lenient=False) for digest in digests):
        return []
    for digest in digests:
        padded = base64.urlsafe_b64encode(digest)
        standard = base64.b64encode(digest)
        if presented == padded.rstrip(b"="):
            return [
                "the signature lacks its '=' padding; Crossbar compares it exactly "
                "(crossbar#1705); wampweb accepts it only with lenient signatures"
            ]
        if presented in (standard, standard.rstrip(b"=")):
            return [
                "the signature uses the standard base64 alphabet ('+', '/'); it must be "
                "the URL-safe one ('-', '_'), with padding: base64.urlsafe_b64encode"
            ]
        if b" " in presented and presented.replace(b" ", b"+") in (standard, standard.rstrip(b"=")):
            return [
                "the signature uses the standard base64 alphabet, and its '+' arrived as "
                "a space because it was not percent-encoded; use base64.urlsafe_b64encode"
            ]
    reasons = []
    for variant, what in _body_variants(body):
        if any(
            _signature_matches(presented, _digest(k.secret, (*fields, variant)), lenient=True)
            for k in candidates
        ):
            reasons.append(f"the signature was computed over the body {what}")
    expected = base64.urlsafe_b64encode(digests[0]).decode("ascii")
    reasons.append(
        "the signature does not match: the secret differs from the one that signed, or "
        "the key, timestamp, seq, nonce or body signed are not byte for byte the ones "
        f"sent (with this secret the signature would be '{expected}')"
    )
    return reasons


def _body_variants(body: bytes) -> list[tuple[bytes, str]]:
    # The usual way a body changes between signing and sending: a file's final newline.
    if body.endswith(b"\n"):
        return [(body.rstrip(b"\r\n"), "without its final newline, but sent with it")]
    return [
        (body + b"\n", "with a final newline, but sent without it"),
        (body + b"\r\n", "with a final CRLF, but sent without it"),
    ]
