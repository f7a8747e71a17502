"""
From a raw HTTP body to a WAMP payload that the router and every peer can carry.

:func:`parse_body` answers a bridge request body with a :class:`Payload`, or
refuses it with a :class:`~wampweb._denial.DeniedError` (a 400) whose message names
the place and shows the value. It checks in Crossbar.io's order, with Crossbar's
exact messages, then adds checks of its own:

1. not UTF-8: ``Non-decodable request body, was not UTF-8.`` (AR451)
2. arrays and objects nested deeper than ``max_depth`` (wampweb; the body's
   own object is level 1): found by a scan of the raw bytes *before* parsing,
   with C-speed byte operations only, so a megabyte of ``[[[[`` is refused in
   about 3 ms and nothing too deep reaches the (recursive) parser. Being first,
   this refusal wins over 3-5 for such a body.
3. not JSON, or empty: ``Request body was invalid JSON.`` (AR453)
4. not an object: ``Request body was valid JSON, but not well formed (must be a dict).``
5. no ``topic``/``procedure``:
   ``Request body was valid JSON, but not well formed (missing key 'topic').``
   (with the full stop: that is what Crossbar sends, from ``_log_categories.py``)
6. every value in the body, in document order (wampweb): a key repeated in an
   object; ``NaN``, ``Infinity``, ``-Infinity``; an integer outside
   [-2**63, 2**64-1]; a number that overflows a float (``1e400``); a string or
   key with a lone surrogate, or that starts with NUL.
7. the fields (wampweb): ``topic``/``procedure`` a string that is a WAMP URI as
   Autobahn's ``publish()``/``call()`` check it (loose, no empty component);
   ``args`` an array, ``kwargs`` and ``options`` objects, and no ``kwargs`` key
   named ``options``.

Crossbar takes ``null``, ``[]`` and ``{}`` for ``args``, ``kwargs`` and
``options`` as "none" (it tests truthiness); so does wampweb, as PHP clients
write an empty map as ``[]``. Other falsy values (``false``, ``0``, ``""``),
which Crossbar silently takes as none, are refused.

What the serializers carry (autobahn 26.10.2, found by serializing a
``message.Publish``; ``tests/test_jsonbody.py`` pins it):

- Integers: JSON and CBOR take any size (CBOR as a bignum tag past 64 bits);
  msgpack only [-2**63, 2**64-1], beyond which it raises ``OverflowError:
  Integer value out of range``. A router forwarding between serializers breaks
  on the first one that cannot carry the value, so the limit is msgpack's.
  (JavaScript peers read integers past 2**53 inexactly: carried, not refused.)
- Floats: infinity and NaN serialize everywhere, but JSON writes them as
  ``Infinity``/``NaN``, which are not JSON and which a browser's ``JSON.parse``
  refuses. Python reads ``1e400`` as infinity, so that is refused too.
- Strings: a lone surrogate (JSON allows the escape ``"\\ud800"``) makes
  JSON, msgpack, CBOR and UBJSON all raise ``UnicodeEncodeError``. A string
  value starting with NUL is base64-decoded into bytes by Autobahn's JSON
  unserializer (its marker for binary; the ``"0x"`` marker applies only with
  ``use_binary_hex_encoding``, which is off by default, so it is not refused):
  ``"\\u0000abc"`` makes the receiving peer fail with ``ProtocolError``
  (incorrect padding), ``"\\u0000AAAA"`` silently arrives as
  ``b"\\x00\\x00\\x00"``. Object keys are not decoded that way by Autobahn, but
  the WAMP convention is about strings, so NUL-led keys are refused as well.
- Publishing to ``wamp.*`` topics is *not* refused here: Autobahn does not, and
  Crossbar.io answers an acknowledged publish from a non-``trusted`` role with
  the WAMP error ``wamp.error.invalid_uri``, which the bridge relays as
  Crossbar's own bridge does (and a trusted session may publish there).

Speed (measured 2026-11-26, CPython 3.11, best of 7, shared machine): a
101-byte publish body takes 5.1 us against 2.5 us for ``json.loads`` (+2.7 us),
a 67-byte call body 4.3 us against 2.2 us, and a 1 KB body of 15 objects
20.6 us against 11.3 us. Duplicate keys and the constants are caught by parser
hooks (about 0.3 us per object). The depth scan runs only when the body has more
than ``max_depth`` brackets, and needs a few rounds of ``bytes.replace`` for
a shallow body. The walk over the values (about 0.3 us per value) runs only when
the raw bytes could hold a value it refuses: a ``\\u0000`` or ``\\uD800``-
``\\uDFFF`` escape (the only ways to write a NUL or a surrogate in valid UTF-8
JSON), a run of 19 digits (2**63 has 19; 18 never leave the range), or an
exponent of three digits (the only other way to overflow a float). URIs that
passed the check are remembered (up to 1024), as a gateway sees the same few.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping
from itertools import accumulate, compress, count, repeat
from typing import Any, Final, TypeAlias

import attrs
from autobahn.wamp.exception import InvalidUriError
from autobahn.wamp.message import check_or_raise_uri

from wampweb._denial import DeniedError, bad_request

# Crossbar.io's messages (crossbar/_log_categories.py): wire format, verbatim.
NOT_UTF8: Final = "Non-decodable request body, was not UTF-8."  # AR451
NOT_JSON: Final = "Request body was invalid JSON."  # AR453
NOT_A_DICT: Final = "Request body was valid JSON, but not well formed (must be a dict)."  # AR454
MISSING_KEY: Final = "Request body was valid JSON, but not well formed (missing key '{key}')."

#: The integers every WAMP serializer carries (msgpack's range).
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1
DEFAULT_MAX_DEPTH: Final = 32

_INVALID_URI: Final = "wamp.error.invalid_uri"
_SHOW = 40  # characters of a value shown in a message
_RECEIVERS: Final = {"topic": "the subscribers", "procedure": "the callee"}


@attrs.frozen
class Payload:
    """What a bridge request asks to publish or call, checked and ready for Autobahn."""

    #: The topic or procedure URI.
    uri: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    #: As sent (``[]`` read as ``{}``), or None when absent or null; typed elsewhere.
    options: Mapping[str, Any] | None


def decode_utf8(raw: bytes) -> str:
    """The body as text, or Crossbar's AR451 refusal."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(NOT_UTF8) from None


def parse_body(raw: bytes, required: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Payload:
    """
    The payload of a publisher (``required="topic"``) or caller
    (``required="procedure"``) request body, or a :class:`DeniedError`.
    """
    if required not in _RECEIVERS:
        raise ValueError(f"required must be 'topic' or 'procedure', not {required!r}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be at least 1, not {max_depth!r}")
    text = decode_utf8(raw)
    _check_depth(raw, max_depth)
    marked = False
    try:
        body = _STRICT.decode(text)
    except _MarkedError:
        # A repeated key or a constant: parse again, marking them instead, so
        # that the earlier checks come first and the refusal can name a place.
        body = _parse_marking(text)
        marked = True
    except (ValueError, RecursionError):  # JSONDecodeError, or over 4300 digits
        raise bad_request(NOT_JSON) from None
    if not isinstance(body, dict):
        raise bad_request(NOT_A_DICT)
    if required not in body:
        raise bad_request(MISSING_KEY.format(key=required))
    if marked or _risky(raw):
        unsafe = _first_unsafe(body, "", max_depth)
        if unsafe is not None:
            raise unsafe
    return Payload(
        uri=_uri(body[required], required),
        args=_args(body.get("args")),
        kwargs=_kwargs(body.get("kwargs"), required),
        options=_options(body.get("options")),
    )


def check_payload_value(value: Any, path: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """
    Refuse ``value`` (a :class:`DeniedError` naming the place under ``path``) unless
    every WAMP serializer carries it unchanged: JSON-like types only, string
    keys, integers in [-2**63, 2**64-1], finite floats, no string or key with a
    lone surrogate or a leading NUL, and no deeper than ``max_depth`` levels
    of arrays and objects (which also ends a cyclic structure).
    """
    unsafe = _first_unsafe(value, path, max_depth)
    if unsafe is not None:
        raise unsafe


# --- depth, before parsing ---------------------------------------------------

#: A string, escapes and all; one left open runs to the end (the parser then refuses it).
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
#: Brackets to signed-byte depth changes: +1 opens, -1 (0xff) closes, 0 for the rest.
_DELTAS: Final = bytes(1 if b in b"[{" else 0xFF if b in b"]}" else 0 for b in range(256))
_PAIR: Final = b"\x01\xff"


def _check_depth(raw: bytes, max_depth: int) -> None:
    """Refuse arrays and objects nested deeper than ``max_depth``, in O(n) C-speed steps."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return
    outside = _STRING_LITERAL.sub(b'""', raw)  # brackets in strings do not count
    deltas = outside.translate(_DELTAS)
    brackets = deltas.replace(b"\x00", b"")
    # Each round takes out the innermost pairs: a body no deeper than max_depth
    # is left with nothing within max_depth rounds (a shallow one within a few).
    # A run of max_depth + 1 openers left means too deep: count exactly to say where.
    too_deep = b"\x01" * (max_depth + 1)
    remaining = brackets
    for _ in range(max_depth):
        if too_deep in remaining:
            break
        shorter = remaining.replace(_PAIR, b"")
        if len(shorter) == len(remaining):
            break  # unbalanced: count exactly
        if not shorter:
            return
        remaining = shorter
    past = _first_past(brackets, max_depth)
    if past is None:
        return  # unbalanced but no deeper than allowed: the JSON parser refuses it
    at = _nth_nonzero(deltas, past)
    # In ``outside`` each string is two bytes long: add back what those before ``at`` had.
    strings_before = outside.count(b'"', 0, at) // 2
    shrunk = 0  # (a count of 0 would have re.sub replace them all)
    if strings_before:
        shrunk = len(raw) - len(_STRING_LITERAL.sub(b'""', raw, count=strings_before))
    raise bad_request(
        f"Request body nests arrays and objects more than {max_depth} deep "
        f"(at byte offset {at + shrunk})."
    )


def _nth_nonzero(data: bytes, n: int) -> int:
    """The index in ``data`` of its ``n``-th (from 0) non-zero byte, by bisection."""
    low, high = n, len(data) - 1
    while low < high:
        middle = (low + high) // 2
        if middle + 1 - data.count(b"\x00", 0, middle + 1) > n:
            high = middle
        else:
            low = middle + 1
    return low


def _first_past(deltas: bytes, limit: int) -> int | None:
    """Where the running sum of ``deltas`` (signed bytes) first passes ``limit``, if it does."""
    depths = accumulate(memoryview(deltas).cast("b"))
    return next(compress(count(), map(operator.gt, depths, repeat(limit))), None)


# --- parsing -----------------------------------------------------------------


class _MarkedError(Exception):
    """A repeated key or a non-JSON constant: parse again to find where."""


class _Repeated(dict[str, Any]):
    """An object that had a key twice (the last value kept, as ``json`` does)."""

    def __init__(self, pairs: dict[str, Any], key: str) -> None:
        super().__init__(pairs)
        self.repeated = key


@attrs.frozen
class _Constant:
    """``NaN``, ``Infinity`` or ``-Infinity``, where the body had one."""

    name: str


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _MarkedError
    return obj


def _refuse_constant(name: str) -> Any:
    raise _MarkedError


def _marking_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:  # pragma: no branch (one key repeats)
        if key in seen:
            return _Repeated(obj, key)
        seen.add(key)
    raise AssertionError("unreachable")  # pragma: no cover


_STRICT = json.JSONDecoder(object_pairs_hook=_strict_pairs, parse_constant=_refuse_constant)
_MARKING = json.JSONDecoder(object_pairs_hook=_marking_pairs, parse_constant=_Constant)


def _parse_marking(text: str) -> Any:
    try:
        return _MARKING.decode(text)
    except (ValueError, RecursionError):
        raise bad_request(NOT_JSON) from None


# --- values ------------------------------------------------------------------

#: A ``\\u`` escape that writes a NUL or a surrogate (the only ways to put one in UTF-8 JSON).
_RISKY_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
#: Digits to "0", "E" to "e", signs dropped: a long digit run or exponent is then one search.
_NUMBERS: Final = bytes.maketrans(b"123456789E", b"000000000e")
_NINETEEN_DIGITS: Final = b"0" * 19  # 2**63 has 19 digits; 18 never leave the range


def _risky(raw: bytes) -> bool:
    """
    Whether ``raw`` may hold a value :func:`_first_unsafe` refuses: a risky
    escape, an integer of 19 digits or more, or an exponent of three digits
    (the only ways for a float to overflow once 19-digit runs are out).
    """
    if b"\\u" in raw and _RISKY_ESCAPE.search(raw) is not None:
        return True
    numbers = raw.translate(_NUMBERS, b"+-")
    return _NINETEEN_DIGITS in numbers or b"e000" in numbers


_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

#: Where a value sits: the caller's path, then a step per array index or object key.
_Path: TypeAlias = "str | tuple[_Path, str | int]"


def _first_unsafe(value: Any, root: str, max_depth: int) -> DeniedError | None:
    """The refusal of the first unsafe value in document order, or None."""
    stack: list[tuple[Any, _Path, int]] = [(value, root, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, path, depth = pop()
        kind = type(value)
        if kind is str:
            if value and (value[0] == "\x00" or not value.isascii()):
                problem = _string_problem(value)
                if problem is not None:
                    return bad_request(f"String {_at(path)} {problem}: {_show(value)}.")
        elif kind is int:
            if not INT_MIN <= value <= INT_MAX:
                return bad_request(
                    f"Integer {_at(path)} is out of range: {_show(value)} "
                    "(WAMP serializers carry -2**63 to 2**64-1)."
                )
        elif kind is float:
            if not math.isfinite(value):
                return bad_request(
                    f"Number {_at(path)} is not a finite 64-bit float: {_show(value)}."
                )
        elif kind is list or kind is tuple:
            if depth > max_depth:
                return _too_deep(path, max_depth)
            for index in range(len(value) - 1, -1, -1):
                push((value[index], (path, index), depth + 1))
        elif isinstance(value, Mapping):
            if depth > max_depth:
                return _too_deep(path, max_depth)
            if isinstance(value, _Repeated):
                return bad_request(
                    f"Object {_at(path)} has the key {_show(value.repeated)} more than once."
                )
            items = list(value.items())
            for key, _ in items:
                if type(key) is not str:
                    return bad_request(
                        f"Object {_at(path)} has a key that is not a string: {key!r:.{_SHOW}}."
                    )
                if key and (key[0] == "\x00" or not key.isascii()):
                    problem = _string_problem(key)
                    if problem is not None:
                        return bad_request(f"Key {_show(key)} of the object {_at(path)} {problem}.")
            for key, item in reversed(items):
                push((item, (path, key), depth + 1))
        elif kind is _Constant:
            return bad_request(
                f"Request body has {value.name} {_at(path)}: it is not JSON, "
                "and not every WAMP peer can read it."
            )
        elif value is None or kind is bool or kind is bytes:
            pass
        else:
            return bad_request(
                f"Value {_at(path)} is a {kind.__name__}, which WAMP serializers do not carry."
            )
    return None


def _string_problem(text: str) -> str | None:
    if text[0] == "\x00":
        return (
            "starts with NUL (\\u0000), which Autobahn's JSON serializer reads as "
            "base64-encoded binary"
        )
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:
        return (
            f"has a lone surrogate \\u{ord(surrogate.group()):04x} at index "
            f"{surrogate.start()}, which UTF-8 cannot encode"
        )
    return None


def _too_deep(path: _Path, max_depth: int) -> DeniedError:
    return bad_request(f"Value {_at(path)} nests arrays and objects more than {max_depth} deep.")


def _render(path: _Path) -> str:
    steps: list[str | int] = []
    while isinstance(path, tuple):
        path, step = path
        steps.append(step)
    rendered = path
    for step in reversed(steps):
        if isinstance(step, int):
            rendered += f"[{step}]"
        elif _PLAIN_KEY.match(step):
            rendered += f".{step}" if rendered else step
        else:
            rendered += f"[{_show(step)}]"
    return rendered


def _at(path: _Path) -> str:
    rendered = _render(path)
    return f"at {rendered}" if rendered else "at the top of the request body"


def _show(value: Any) -> str:
    """A short, ASCII-only rendering of a value as JSON would write it."""
    if isinstance(value, str):
        if len(value) > _SHOW:
            return json.dumps(value[:_SHOW])[:-1] + '..."'
        return json.dumps(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        if value.bit_length() > 10_000:  # str() refuses past 4300 digits
            return f"a {value.bit_length()}-bit integer"
        shown = str(value)
        return shown if len(shown) <= _SHOW else f"{shown[:_SHOW]}... ({len(shown)} digits)"
    if isinstance(value, float):
        return json.dumps(value)  # Infinity, -Infinity, NaN for the others
    if isinstance(value, list):
        return f"an array of {_count(len(value), 'item')}" if value else "[]"
    if isinstance(value, dict):
        return f"an object of {_count(len(value), 'key')}" if value else "{}"
    return f"{value!r:.{_SHOW}}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {_show(value)}"
    if isinstance(value, int | float):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    return _show(value)


# --- fields ------------------------------------------------------------------


#: URIs that passed the check: a gateway sees the same few again and again.
_KNOWN_URIS: set[str] = set()
_KNOWN_URIS_MAX: Final = 1024


def _uri(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise DeniedError(
            f"Request body field '{field}' must be a string (a WAMP URI), not {_json_kind(value)}.",
            uri=_INVALID_URI,
        )
    if not value:
        raise DeniedError(f"Request body field '{field}' must not be empty.", uri=_INVALID_URI)
    if value in _KNOWN_URIS:
        return value
    try:
        # The strictness Autobahn's publish() and call() apply.
        check_or_raise_uri(value, strict=False, allow_empty_components=False, allow_none=False)
    except InvalidUriError:
        raise DeniedError(
            f"Request body field '{field}' is not a WAMP URI: {_show(value)} (its "
            "dot-separated parts must be non-empty, without whitespace or '#').",
            uri=_INVALID_URI,
        ) from None
    if len(_KNOWN_URIS) >= _KNOWN_URIS_MAX:
        _KNOWN_URIS.clear()
    _KNOWN_URIS.add(value)
    return value


def _args(value: Any) -> tuple[Any, ...]:
    if isinstance(value, list):
        return tuple(value)
    if value is None or value == {}:
        return ()
    raise bad_request(
        f"Request body field 'args' must be an array (the positional arguments), "
        f"not {_json_kind(value)}."
    )


#: Keyword names that break an Autobahn peer receiving them (its dispatch's own parameters).
RECEIVER_RESERVED = ("f", "fun")


def _kwargs(value: Any, required: str) -> Mapping[str, Any]:
    if isinstance(value, dict):
        for name in ("options", required, "self"):
            if name in value:
                raise bad_request(
                    f"Request body field 'kwargs' may not have the key '{name}': Autobahn's "
                    f"publish() and call() take '{name}' as their own argument, so it "
                    f"would never reach {_RECEIVERS[required]}."
                )
        for name in RECEIVER_RESERVED:
            if name in value:
                raise bad_request(
                    f"Request body field 'kwargs' may not have the key '{name}': Autobahn "
                    f"peers on Twisted hand keyword arguments to their handlers through "
                    f"maybeDeferred(f, ...) and txaio's as_future(fun, ...), so this key "
                    f"would break the session of {_RECEIVERS[required]}."
                )
        return value
    if value is None or value == []:
        return {}
    raise bad_request(
        f"Request body field 'kwargs' must be an object (the keyword arguments), "
        f"not {_json_kind(value)}."
    )


def _options(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, dict):
        return value
    if value is None:
        return None
    if value == []:
        return {}
    raise bad_request(f"Request body field 'options' must be an object, not {_json_kind(value)}.")
