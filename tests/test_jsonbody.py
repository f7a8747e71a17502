"""Request bodies: a payload every WAMP peer can carry, or a precise 400."""

from __future__ import annotations

import importlib.util
import json
import math
import runpy
import time
from pathlib import Path
from typing import Any

import autobahn.twisted  # noqa: F401 (selects txaio's Twisted flavour, which serializers use)
import pytest
from autobahn.wamp import message
from autobahn.wamp.exception import ProtocolError
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wampweb._denial import DeniedError
from wampweb._jsonbody import (
    INT_MAX,
    INT_MIN,
    MISSING_KEY,
    NOT_A_DICT,
    NOT_JSON,
    NOT_UTF8,
    Payload,
    check_payload_value,
    decode_utf8,
    parse_body,
)

SERIALIZERS = [JsonSerializer(), MsgPackSerializer(), CBORSerializer()]


def refusal(raw: bytes, required: str = "topic", **kwargs: Any) -> DeniedError:
    with pytest.raises(DeniedError) as caught:
        parse_body(raw, required, **kwargs)
    assert caught.value.status == 400
    assert caught.value.rest_status == 400
    return caught.value


def outcome(raw: bytes, required: str = "topic", **kwargs: Any) -> Payload | DeniedError:
    try:
        return parse_body(raw, required, **kwargs)
    except DeniedError as denial:
        return denial


def roundtrip(serializer: Any, payload: Payload) -> message.Publish:
    publish = message.Publish(1, payload.uri, args=list(payload.args), kwargs=dict(payload.kwargs))
    (back,) = serializer.unserialize(*serializer.serialize(publish))
    assert isinstance(back, message.Publish)
    return back


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (True is not 1, 1.0 is not 1)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


# --- Crossbar's checks, in Crossbar's order, with Crossbar's words -------------------------


def test_the_crossbar_messages_are_crossbars_own() -> None:
    # Read from Crossbar.io's source without importing the crossbar package (slow, noisy).
    crossbar = importlib.util.find_spec("crossbar")
    assert crossbar is not None
    assert crossbar.origin is not None
    source = Path(crossbar.origin).parent / "_log_categories.py"
    log_categories = runpy.run_path(str(source))["log_categories"]
    assert log_categories["AR451"] == NOT_UTF8
    assert log_categories["AR453"] == NOT_JSON
    assert log_categories["AR454"] == NOT_A_DICT
    assert log_categories["AR455"] == MISSING_KEY
    assert MISSING_KEY.format(key="topic") == (
        "Request body was valid JSON, but not well formed (missing key 'topic')."
    )


@pytest.mark.parametrize(
    ("raw", "required", "expected"),
    [
        (b'{"topic": "caf\xe9"}', "topic", NOT_UTF8),
        (b"\xed\xa0\x80", "topic", NOT_UTF8),  # a surrogate written as UTF-8 bytes
        (b"\xff[1]", "topic", NOT_UTF8),  # UTF-8 comes before JSON
        (b"", "topic", NOT_JSON),
        (b"   ", "topic", NOT_JSON),
        (b"{", "topic", NOT_JSON),
        (b'{"topic": "a.b"} x', "topic", NOT_JSON),
        (b"{'topic': 'a.b'}", "topic", NOT_JSON),
        (b'\xef\xbb\xbf{"topic": "a.b"}', "topic", NOT_JSON),  # a BOM, as Crossbar
        (b"[" + b"9" * 5000 + b"]", "topic", NOT_JSON),  # Python refuses 4300+ digits
        (b'{"topic": "a.b", "args": [1, {"x": 1, "x": 2}', "topic", NOT_JSON),  # JSON first
        (b'{"topic": NaN', "topic", NOT_JSON),
        (b"[1]", "topic", NOT_A_DICT),
        (b'"topic"', "topic", NOT_A_DICT),
        (b"null", "procedure", NOT_A_DICT),
        (b"[NaN]", "topic", NOT_A_DICT),  # a dict comes before wampweb's own checks
        (b'[{"x": 1, "x": 2}]', "topic", NOT_A_DICT),
        (b"{}", "topic", MISSING_KEY.format(key="topic")),
        (b'{"procedure": "a.b"}', "topic", MISSING_KEY.format(key="topic")),
        (b'{"topic": "a.b"}', "procedure", MISSING_KEY.format(key="procedure")),
        (b'{"args": [NaN], "x": 1, "x": 2}', "topic", MISSING_KEY.format(key="topic")),
    ],
)
def test_crossbars_refusals_come_first_in_crossbars_order(
    raw: bytes, required: str, expected: str
) -> None:
    denial = refusal(raw, required)
    assert denial.message == expected
    assert denial.uri == "wampweb.error.bad_request"
    assert json.loads(denial.compat_body())["error"] == expected


def test_decode_utf8_is_crossbars_first_check_alone() -> None:
    assert decode_utf8("Grüße, 世界 😀".encode()) == "Grüße, 世界 😀"
    assert decode_utf8(b"") == ""
    for raw in [b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]:
        with pytest.raises(DeniedError) as caught:
            decode_utf8(raw)
        assert (caught.value.message, caught.value.status) == (NOT_UTF8, 400)


# --- wampweb's own refusals: each names the place and shows the value ----------------------

B = '{"topic": "com.example.t", '  # the start of a publish body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # keys repeated in any object
        (
            '{"topic": "a.b", "topic": "c.d"}',
            'Object at the top of the request body has the key "topic" more than once.',
        ),
        (
            B + '"args": [1, {"name": "a", "id": 2, "name": "b"}]}',
            'Object at args[1] has the key "name" more than once.',
        ),
        (
            B + '"kwargs": {"deep": [{"a b": {"k": 1, "k": 1}}]}}',
            'Object at kwargs.deep[0]["a b"] has the key "k" more than once.',
        ),
        (
            B + '"ignored": {"x": 1, "x": 2}}',
            'Object at ignored has the key "x" more than once.',
        ),
        # the constants that are not JSON
        (
            B + '"args": [1, NaN]}',
            "Request body has NaN at args[1]: it is not JSON, and not every WAMP peer can read it.",
        ),
        (
            B + '"kwargs": {"limit": Infinity}}',
            "Request body has Infinity at kwargs.limit: it is not JSON, "
            "and not every WAMP peer can read it.",
        ),
        (
            B + '"options": {"x": [-Infinity]}}',
            "Request body has -Infinity at options.x[0]: it is not JSON, "
            "and not every WAMP peer can read it.",
        ),
        (
            '{"topic": NaN}',
            "Request body has NaN at topic: it is not JSON, and not every WAMP peer can read it.",
        ),
        # integers past what msgpack carries
        (
            B + '"args": [18446744073709551616]}',
            "Integer at args[0] is out of range: 18446744073709551616 "
            "(WAMP serializers carry -2**63 to 2**64-1).",
        ),
        (
            B + '"args": [-9223372036854775809]}',
            "Integer at args[0] is out of range: -9223372036854775809 "
            "(WAMP serializers carry -2**63 to 2**64-1).",
        ),
        (
            B + '"kwargs": {"n": ' + "1" * 60 + "}}",
            "Integer at kwargs.n is out of range: "
            + "1" * 40
            + "... (60 digits) (WAMP serializers carry -2**63 to 2**64-1).",
        ),
        # numbers that overflow a float
        (
            B + '"args": [1e400]}',
            "Number at args[0] is not a finite 64-bit float: Infinity.",
        ),
        (
            B + '"args": [[-1.5E+0309]]}',
            "Number at args[0][0] is not a finite 64-bit float: -Infinity.",
        ),
        (
            B + '"args": [' + "9" * 400 + ".5]}",
            "Number at args[0] is not a finite 64-bit float: Infinity.",
        ),
        # lone surrogates, in values and in keys
        (
            B + '"args": ["ab\\ud800"]}',
            "String at args[0] has a lone surrogate \\ud800 at index 2, "
            'which UTF-8 cannot encode: "ab\\ud800".',
        ),
        (
            B + '"args": ["\\uDFFF\\uD83D"]}',  # a pair the wrong way round
            "String at args[0] has a lone surrogate \\udfff at index 0, "
            'which UTF-8 cannot encode: "\\udfff\\ud83d".',
        ),
        (
            B + '"kwargs": {"k\\udc00": 1}}',
            'Key "k\\udc00" of the object at kwargs has a lone surrogate \\udc00 at index 1, '
            "which UTF-8 cannot encode.",
        ),
        (
            B + '"args": ["' + "x" * 50 + '\\ud800"]}',
            "String at args[0] has a lone surrogate \\ud800 at index 50, "
            'which UTF-8 cannot encode: "' + "x" * 40 + '...".',
        ),
        (
            '{"topic": "a.\\ud800"}',
            "String at topic has a lone surrogate \\ud800 at index 2, "
            'which UTF-8 cannot encode: "a.\\ud800".',
        ),
        # strings that start with NUL: binary to Autobahn's JSON serializer
        (
            B + '"args": ["\\u0000abc"]}',
            "String at args[0] starts with NUL (\\u0000), which Autobahn's JSON serializer "
            'reads as base64-encoded binary: "\\u0000abc".',
        ),
        (
            B + '"kwargs": {"\\u0000k": 1}}',
            'Key "\\u0000k" of the object at kwargs starts with NUL (\\u0000), '
            "which Autobahn's JSON serializer reads as base64-encoded binary.",
        ),
        (
            '{"topic": "\\u0000a.b"}',
            "String at topic starts with NUL (\\u0000), which Autobahn's JSON serializer "
            'reads as base64-encoded binary: "\\u0000a.b".',
        ),
        # the topic or procedure: a WAMP URI as Autobahn's publish()/call() check it
        ('{"topic": null}', "Request body field 'topic' must be a string (a WAMP URI), not null."),
        (
            '{"topic": 42}',
            "Request body field 'topic' must be a string (a WAMP URI), not the number 42.",
        ),
        (
            '{"topic": ["a.b"]}',
            "Request body field 'topic' must be a string (a WAMP URI), not an array of 1 item.",
        ),
        ('{"topic": ""}', "Request body field 'topic' must not be empty."),
        (
            '{"topic": "a..b"}',
            "Request body field 'topic' is not a WAMP URI: \"a..b\" (its dot-separated parts "
            "must be non-empty, without whitespace or '#').",
        ),
        (
            '{"topic": "com.example."}',
            "Request body field 'topic' is not a WAMP URI: \"com.example.\" (its dot-separated "
            "parts must be non-empty, without whitespace or '#').",
        ),
        (
            '{"topic": "a b"}',
            "Request body field 'topic' is not a WAMP URI: \"a b\" (its dot-separated parts "
            "must be non-empty, without whitespace or '#').",
        ),
        (
            '{"topic": "a.#"}',
            "Request body field 'topic' is not a WAMP URI: \"a.#\" (its dot-separated parts "
            "must be non-empty, without whitespace or '#').",
        ),
        # args, kwargs, options
        (
            B + '"args": "abc"}',
            "Request body field 'args' must be an array (the positional arguments), "
            'not the string "abc".',
        ),
        (
            B + '"args": false}',
            "Request body field 'args' must be an array (the positional arguments), "
            "not the boolean false.",
        ),
        (
            B + '"args": 0}',
            "Request body field 'args' must be an array (the positional arguments), "
            "not the number 0.",
        ),
        (
            B + '"args": {"a": 1}}',
            "Request body field 'args' must be an array (the positional arguments), "
            "not an object of 1 key.",
        ),
        (
            B + '"kwargs": [1, 2]}',
            "Request body field 'kwargs' must be an object (the keyword arguments), "
            "not an array of 2 items.",
        ),
        (
            B + '"kwargs": ""}',
            "Request body field 'kwargs' must be an object (the keyword arguments), "
            'not the string "".',
        ),
        (
            B + '"options": true}',
            "Request body field 'options' must be an object, not the boolean true.",
        ),
        (
            B + '"options": ["exclude_me"]}',
            "Request body field 'options' must be an object, not an array of 1 item.",
        ),
        (
            B + '"kwargs": {"options": {"exclude_me": false}}}',
            "Request body field 'kwargs' may not have the key 'options': Autobahn's publish() "
            "and call() take 'options' as their own argument, so it would never reach "
            "the subscribers.",
        ),
        (
            B + '"kwargs": {"topic": null}}',
            "Request body field 'kwargs' may not have the key 'topic': Autobahn's publish() "
            "and call() take 'topic' as their own argument, so it would never reach "
            "the subscribers.",
        ),
        (
            B + '"kwargs": {"f": 1}}',
            "Request body field 'kwargs' may not have the key 'f': Autobahn peers on Twisted "
            "hand keyword arguments to their handlers through maybeDeferred(f, ...) and "
            "txaio's as_future(fun, ...), so this key would break the session of the "
            "subscribers.",
        ),
        (
            B + '"kwargs": {"self": 1}}',
            "Request body field 'kwargs' may not have the key 'self': Autobahn's publish() "
            "and call() take 'self' as their own argument, so it would never reach "
            "the subscribers.",
        ),
    ],
)
def test_wampwebs_refusals_name_the_place_and_the_value(body: str, expected: str) -> None:
    denial = refusal(body.encode())
    assert denial.message == expected
    assert denial.message.isascii()  # a lone surrogate never reaches the answer's encoder
    assert json.loads(denial.compat_body())["error"] == expected
    assert json.loads(denial.rest_body())["args"] == [expected]


def test_a_kwarg_named_options_would_never_reach_the_callee() -> None:
    denial = refusal(b'{"procedure": "a.b", "kwargs": {"options": 1}}', "procedure")
    assert denial.message.endswith("so it would never reach the callee.")


@pytest.mark.parametrize("body", ['{"topic": 1}', '{"topic": ""}', '{"topic": "a..b"}'])
def test_a_bad_uri_is_wamps_invalid_uri_to_rest_clients(body: str) -> None:
    assert refusal(body.encode()).uri == "wamp.error.invalid_uri"


def test_the_procedure_is_checked_as_the_topic_is() -> None:
    denial = refusal(b'{"procedure": "com..add"}', "procedure")
    assert denial.message.startswith("Request body field 'procedure' is not a WAMP URI")


def test_a_refused_uri_stays_refused_after_good_ones() -> None:
    for index in range(3000):  # past the remembered URIs' bound
        assert parse_body(f'{{"topic": "a.t{index}"}}'.encode(), "topic").uri == f"a.t{index}"
    refusal(b'{"topic": "a..b"}')
    assert parse_body(b'{"topic": "a.t1"}', "topic").uri == "a.t1"


def test_the_first_unsafe_value_in_document_order_is_named() -> None:
    body = B + '"args": [[1, {"k": "\\u0000", "j": NaN}], 1e999], "kwargs": {"a": 1, "a": 2}}'
    assert refusal(body.encode()).message.startswith("String at args[0][1].k starts with NUL")


def test_the_values_come_before_the_fields() -> None:
    body = '{"topic": 5, "args": "x", "kwargs": {"n": 18446744073709551616}}'
    assert refusal(body.encode()).message.startswith("Integer at kwargs.n is out of range")


def test_the_fields_are_checked_topic_args_kwargs_options() -> None:
    body = '{"options": 1, "kwargs": 1, "args": 1, "topic": 1}'
    assert "'topic'" in refusal(body.encode()).message
    body = '{"options": 1, "kwargs": 1, "args": 1, "topic": "a"}'
    assert "'args'" in refusal(body.encode()).message
    body = '{"options": 1, "kwargs": 1, "topic": "a"}'
    assert "'kwargs'" in refusal(body.encode()).message


# --- what is accepted ------------------------------------------------------------------------


def test_a_publish_body_becomes_a_payload() -> None:
    raw = (
        b'{"topic": "com.example.orders", "args": [1, "two", {"three": 3.0}], '
        b'"kwargs": {"who": null}, "options": {"exclude_me": false}, "extra": [1]}'
    )
    assert parse_body(raw, "topic") == Payload(
        uri="com.example.orders",
        args=(1, "two", {"three": 3.0}),
        kwargs={"who": None},
        options={"exclude_me": False},
    )


def test_a_call_body_becomes_a_payload() -> None:
    payload = parse_body(b'{"procedure": "com.example.add", "args": [1, 2]}', "procedure")
    assert payload == Payload(uri="com.example.add", args=(1, 2), kwargs={}, options=None)


@pytest.mark.parametrize(
    ("fields", "args", "kwargs", "options"),
    [
        ("", (), {}, None),
        (', "args": null, "kwargs": null, "options": null', (), {}, None),
        (', "args": [], "kwargs": {}, "options": {}', (), {}, {}),
        # Crossbar reads any falsy value as none; PHP writes an empty map as []
        (', "args": {}, "kwargs": [], "options": []', (), {}, {}),
    ],
)
def test_null_and_empty_args_kwargs_and_options_are_none_as_in_crossbar(
    fields: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any] | None
) -> None:
    payload = parse_body(f'{{"topic": "a.b"{fields}}}'.encode(), "topic")
    assert (payload.args, payload.kwargs, payload.options) == (args, kwargs, options)


@pytest.mark.parametrize(
    "value",
    [
        INT_MIN,
        INT_MAX,
        2**53 + 1,
        -0,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        5e-324,
        -0.0,
        1e-400,  # underflows to 0.0: finite
        "",
        "a\u0000b",  # NUL inside, not first
        "0xdeadbeef",  # "0x" marks binary only with use_binary_hex_encoding, off by default
        "\\u0000",  # six characters, no NUL
        "caf\u00e9 \U0001f600 \uffff",
        {"": None, " ": [True, False]},
    ],
)
def test_values_every_serializer_carries_are_accepted_unchanged(value: Any) -> None:
    raw = json.dumps({"topic": "a.b", "args": [value]}).encode()
    payload = parse_body(raw, "topic")
    assert same(payload.args, (value,))
    for serializer in SERIALIZERS:
        assert same(roundtrip(serializer, payload).args, [value])


@pytest.mark.parametrize(
    "raw",
    [
        b'{"topic": "a.b", "args": ["\\uD83D\\uDE00", "\\ud83d\\ude00", "\\uDBFF\\uDFFF"]}',
        b'{"topic": "a.b", "args": [123456789012345678901.5, 1.5E+300, 1e-0400]}',
        b'{"topic": "a.b", "args": [-9223372036854775808, 18446744073709551615]}',
        b'{"topic": "a.b", "args": ["\\\\u0000", "\\\\ud800"]}',
    ],
)
def test_escapes_and_long_numbers_that_are_safe_pass(raw: bytes) -> None:
    parse_body(raw, "topic")


def test_wamp_topics_are_left_to_the_router() -> None:
    # Autobahn publishes there; Crossbar answers wamp.error.invalid_uri to non-trusted roles.
    assert parse_body(b'{"topic": "wamp.session.on_join"}', "topic").uri == "wamp.session.on_join"
    assert parse_body(b'{"procedure": "wamp.session.get"}', "procedure").uri == "wamp.session.get"


@pytest.mark.parametrize("uri", ["a", "com.example.t", "com.Example-1.t:x", "ü.b", "a/b"])
def test_loose_uris_pass_as_in_autobahn(uri: str) -> None:
    assert parse_body(json.dumps({"topic": uri}).encode(), "topic").uri == uri


def test_parse_body_wants_topic_or_procedure_and_a_positive_depth() -> None:
    with pytest.raises(ValueError, match="required must be 'topic' or 'procedure'"):
        parse_body(b'{"uri": "a"}', "uri")
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        parse_body(b'{"topic": "a"}', "topic", max_depth=0)


# --- depth -----------------------------------------------------------------------------------


def nested(levels: int) -> bytes:
    """A publish body nesting arrays ``levels`` deep, the body's own object included."""
    inner = levels - 1
    return b'{"topic": "a.b", "args": ' + b"[" * inner + b"]" * inner + b"}"


def test_a_body_as_deep_as_the_limit_passes() -> None:
    payload = parse_body(nested(32), "topic")
    value: Any = payload.args
    levels = 2  # the body's object, then args
    while value:
        (value,) = value
        levels += 1
    assert levels == 32


def test_a_body_one_deeper_than_the_limit_is_refused_where_it_goes_past() -> None:
    raw = nested(33)
    offset = raw.index(b"[") + 31
    assert raw[offset : offset + 1] == b"["
    assert refusal(raw).message == (
        f"Request body nests arrays and objects more than 32 deep (at byte offset {offset})."
    )


def test_the_depth_limit_can_be_set() -> None:
    parse_body(nested(5), "topic", max_depth=5)
    assert "more than 4 deep" in refusal(nested(5), max_depth=4).message
    parse_body(nested(200), "topic", max_depth=200)


def test_brackets_inside_strings_do_not_count() -> None:
    noise = '[{\\"[{' * 30
    raw = f'{{"topic": "a.b", "args": ["{noise}", {{"k{noise}": "]]]"}}]}}'.encode()
    assert parse_body(raw, "topic").args[0] == noise.replace("\\", "")


def test_the_offset_counts_the_strings_before_it() -> None:
    raw = b'{"x": "' + b"]" * 100 + b'", "topic": "a", "args": ' + b"[" * 40 + b"]" * 40 + b"}"
    offset = raw.index(b"[", raw.index(b"args")) + 31
    assert refusal(raw).message.endswith(f"(at byte offset {offset}).")


def test_the_depth_comes_before_json_as_nothing_too_deep_is_parsed() -> None:
    assert "more than 32 deep" in refusal(b"[" * 40).message
    assert "more than 32 deep" in refusal(b"[" * 40 + b"]" * 40).message  # not a dict


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 1_000_000,
        b"[" * 500_000 + b"]" * 500_000,
        b"{" + b'"a":{' * 200_000,
        b"[[]" * 300_000,
        (b"[" * 30 + b"]" * 30 + b",") * 16_000,
    ],
    ids=["open", "closed", "objects", "stairs", "many-at-30"],
)
def test_a_megabyte_of_nesting_is_answered_within_a_bound(raw: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(DeniedError):
        parse_body(raw, "topic")
    assert time.perf_counter() - started < 1.0  # in practice a few milliseconds


def reference_depth_offset(raw: bytes, limit: int) -> int | None:
    """Byte by byte: where the nesting outside strings first goes past ``limit``."""
    depth, in_string, escaped = 0, False, False
    for offset, byte in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif byte == ord("\\"):
                escaped = True
            elif byte == ord('"'):
                in_string = False
        elif byte == ord('"'):
            in_string = True
        elif byte in b"[{":
            depth += 1
            if depth > limit:
                return offset
        elif byte in b"]}":
            depth -= 1
    return None


@settings(max_examples=500)
@given(
    raw=st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b","]))
    .map(b"".join)
    .filter(lambda raw: raw.count(b"[") + raw.count(b"{") > 3),
    limit=st.integers(min_value=1, max_value=6),
)
@example(raw=b'"\\"[[[[[[[[', limit=3)
@example(raw=b'[[["[[[[[', limit=3)
@example(raw=b"]]]][[[[[[", limit=3)
def test_the_depth_scan_agrees_with_a_byte_by_byte_one(raw: bytes, limit: int) -> None:
    offset = reference_depth_offset(raw, limit)
    result = outcome(raw, max_depth=limit)
    assert isinstance(result, DeniedError)  # none of these is a publish body
    deep = f"more than {limit} deep (at byte offset {offset})."
    assert result.message.endswith(deep) == (offset is not None)


# --- check_payload_value, for any value --------------------------------------------------


def test_check_payload_value_names_places_under_the_given_path() -> None:
    check_payload_value({"a": [1, "b", None, True, 2.5, b"bytes", (1, 2)]}, "kwargs")
    with pytest.raises(DeniedError) as caught:
        check_payload_value({"a": [1, {"b c": 2**64}]}, "args[2]")
    assert caught.value.message.startswith('Integer at args[2].a[1]["b c"] is out of range')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.nan, "Number at x is not a finite 64-bit float: NaN."),
        (
            {1: "a"},
            "Object at x has a key that is not a string: 1.",
        ),
        (
            {"a": {1, 2}},
            "Value at x.a is a set, which WAMP serializers do not carry.",
        ),
        (
            [2**20000],
            "Integer at x[0] is out of range: a 20001-bit integer "
            "(WAMP serializers carry -2**63 to 2**64-1).",
        ),
    ],
)
def test_check_payload_value_refuses_what_json_cannot_say(value: Any, expected: str) -> None:
    with pytest.raises(DeniedError) as caught:
        check_payload_value(value, "x")
    assert caught.value.message == expected


def test_check_payload_value_ends_a_cycle_at_the_depth_limit() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(DeniedError) as caught:
        check_payload_value(cycle, "args", max_depth=3)
    assert (
        caught.value.message == "Value at args[0][0][0] nests arrays and objects more than 3 deep."
    )


# --- what the serializers carry: the limits above, found by trying them ----------------------


def serializes(serializer: Any, value: Any) -> bool:
    try:
        serializer.serialize(message.Publish(1, "a.b", args=[value]))
    except (OverflowError, UnicodeEncodeError, ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize("value", [INT_MIN, INT_MAX])
def test_every_serializer_carries_the_integer_limits(value: int) -> None:
    assert all(serializes(serializer, value) for serializer in SERIALIZERS)


@pytest.mark.parametrize("value", [INT_MIN - 1, INT_MAX + 1])
def test_msgpack_cannot_carry_an_integer_past_the_limits(value: int) -> None:
    assert not serializes(MsgPackSerializer(), value)
    assert serializes(JsonSerializer(), value)
    assert serializes(CBORSerializer(), value)  # as a bignum, which a msgpack peer cannot take


def test_no_serializer_carries_a_lone_surrogate() -> None:
    assert not any(serializes(serializer, "a\ud800") for serializer in SERIALIZERS)


def test_json_writes_infinity_and_nan_which_are_not_json() -> None:
    data, _ = JsonSerializer().serialize(message.Publish(1, "a.b", args=[math.inf, math.nan]))
    assert data.endswith(b"[Infinity,NaN]]")


def test_a_string_starting_with_nul_breaks_a_json_peer_or_turns_into_bytes() -> None:
    serializer = JsonSerializer()
    with pytest.raises(ProtocolError):
        serializer.unserialize(*serializer.serialize(message.Publish(1, "a.b", args=["\0abc"])))
    publish = message.Publish(1, "a.b", args=["\0AAAA"])
    (back,) = serializer.unserialize(*serializer.serialize(publish))
    assert back.args == [b"\0\0\0"]
    (back,) = serializer.unserialize(
        *serializer.serialize(message.Publish(1, "a.b", args=[], kwargs={"\0k": "a\0"}))
    )
    assert back.kwargs == {"\0k": "a\0"}  # keys and later NULs are left alone


# --- properties ------------------------------------------------------------------------------

# Every character, lone surrogates (category Cs) and NUL included.
any_text = st.text(st.characters(exclude_categories=()), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**66), max_value=2**66)
    | st.floats()
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=24,
)


def carried(value: Any, depth: int = 1) -> bool:
    """The rule, written plainly: what parse_body must accept inside ``args``."""
    if isinstance(value, str):
        return not value.startswith("\0") and not any(
            0xD800 <= ord(char) <= 0xDFFF for char in value
        )
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return INT_MIN <= value <= INT_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if depth > 30:  # the body's object and args come first
        return False
    if isinstance(value, list):
        return all(carried(item, depth + 1) for item in value)
    return all(carried(key) and carried(item, depth + 1) for key, item in value.items())


@settings(max_examples=300)
@given(value=json_values, ascii_only=st.booleans())
@example(value=["\0x"], ascii_only=True)
@example(value={"\ud800": 1}, ascii_only=True)
@example(value=2**64, ascii_only=True)
@example(value=-(2**63) - 1, ascii_only=False)
@example(value=1e308 * 10, ascii_only=True)
@example(value="\ud83d\ude00", ascii_only=True)  # a pair, escaped: JSON reads one character
@example(value="\ud83d\ude00", ascii_only=False)  # a pair written as UTF-8 bytes: not UTF-8
def test_a_value_is_passed_unchanged_or_refused_and_what_passes_every_serializer_carries(
    value: Any, ascii_only: bool
) -> None:
    text = json.dumps({"topic": "a.b", "args": [value]}, ensure_ascii=ascii_only)
    raw = text.encode("utf-8", "surrogatepass")
    result = outcome(raw)
    try:
        # What the body says, as plain json reads it (an escaped pair is one character).
        meant = json.loads(raw.decode("utf-8"))["args"][0]
    except UnicodeDecodeError:
        assert isinstance(result, DeniedError)
        assert result.message == NOT_UTF8
        return
    if not carried(meant):
        assert isinstance(result, DeniedError)
        assert result.status == 400
        return
    assert isinstance(result, Payload)
    assert same(result.args, (meant,))
    for serializer in SERIALIZERS:
        assert same(roundtrip(serializer, result).args, [meant])


@settings(max_examples=300)
@given(
    raw=st.binary(max_size=64)
    | st.lists(
        st.sampled_from(
            [
                '{"topic":',
                '"a.b"',
                ',"args":',
                ",",
                "[",
                "]",
                "{",
                "}",
                ":",
                '"k"',
                "NaN",
                "1e999",
                "18446744073709551616",
                '"\\ud800"',
                '"\\u0000"',
                "null",
                "true",
                "-0",
                '"x"',
            ]
        ),
        max_size=20,
    ).map(lambda parts: "".join(parts).encode())
)
def test_any_body_is_a_payload_or_a_denial_never_another_error(raw: bytes) -> None:
    for required in ("topic", "procedure"):
        result = outcome(raw, required, max_depth=4)  # anything else fails the test
        assert isinstance(result, Payload) or result.status == 400
