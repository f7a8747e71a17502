"""Signed bridge requests: Crossbar's scheme, order and wording, plus replay protection."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from wampweb._denial import DeniedError
from wampweb._errors import ConfigError
from wampweb._signing import (
    RequestVerifier,
    SigningKey,
    compute_signature,
    explain,
    format_timestamp,
    parse_timestamp,
)

# The test vector of spec a.4.
KEY = "foobar"
SECRET = b"secret"
TIMESTAMP = "2011-10-14T16:59:51.123Z"
SEQ = "1"
NONCE = "123456"
BODY = b'{"topic":"com.myapp.topic1","args":["Hello, world"]}'
SIGNATURE = "CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA="
STANDARD_SIGNATURE = "CtkX/B8rsSt/wM7B0ybn8Te4NfbupfjN8BWd2AllYZA="

Args = dict[bytes, list[bytes]]


def at(timestamp: str) -> Clock:
    """A clock showing the instant ``timestamp`` names."""
    clock = Clock()
    clock.advance(parse_timestamp(timestamp).timestamp())
    return clock


def signed(
    *,
    key: str = KEY,
    secret: bytes = SECRET,
    timestamp: str = TIMESTAMP,
    seq: str = SEQ,
    nonce: str = NONCE,
    body: bytes = BODY,
    signature: str | None = None,
) -> Args:
    """Query arguments as Twisted's ``request.args`` holds them, signed unless told."""
    if signature is None:
        signature = compute_signature(secret, key, timestamp, seq, nonce, body)
    fields = {"key": key, "timestamp": timestamp, "seq": seq, "nonce": nonce}
    args = {name.encode(): [value.encode()] for name, value in fields.items()}
    args[b"signature"] = [signature.encode()]
    return args


def stamp(clock: Clock) -> str:
    """The timestamp a client would send now, by ``clock``."""
    return format_timestamp(datetime.fromtimestamp(clock.seconds(), UTC))


def verifier(clock: Clock | None = None, **options: object) -> RequestVerifier:
    keys = options.pop("keys", [SigningKey(KEY, SECRET)])
    return RequestVerifier(keys, clock=clock or at(TIMESTAMP), **options)  # type: ignore[arg-type]


def refusal(check: Callable[[], object]) -> DeniedError:
    with pytest.raises(DeniedError) as caught:
        check()
    return caught.value


def missing(reason: str) -> str:
    return f"REST bridge signature was invalid (missing mandatory field - {reason})."


def invalid(reason: str) -> str:
    return f"REST bridge signature was invalid ({reason})."


EXPIRED = "Request expired, too old timestamp."
BAD_KEY = "REST bridge signature key not valid."
BAD_SIGNATURE = "REST bridge signature secret not valid."


# -- the signature ---------------------------------------------------------------------


def test_the_spec_vector_signs_to_the_published_signature() -> None:
    assert compute_signature(SECRET, KEY, TIMESTAMP, SEQ, NONCE, BODY) == SIGNATURE


def test_the_spec_vector_verifies_and_names_its_key() -> None:
    assert verifier().verify(signed(signature=SIGNATURE), BODY) == KEY


def test_the_signature_is_the_url_safe_alphabet_with_padding() -> None:
    digest = base64.urlsafe_b64decode(SIGNATURE)
    assert base64.b64encode(digest).decode() == STANDARD_SIGNATURE
    assert SIGNATURE.endswith("=")
    assert "_" in SIGNATURE
    assert "/" not in SIGNATURE


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SIGNATURE.rstrip("="), id="unpadded"),
        pytest.param(STANDARD_SIGNATURE, id="standard-alphabet"),
        pytest.param(STANDARD_SIGNATURE.rstrip("="), id="standard-unpadded"),
    ],
)
def test_other_encodings_of_the_digest_are_refused_as_crossbar_refuses_them(form: str) -> None:
    denial = refusal(lambda: verifier().verify(signed(signature=form), BODY))
    assert (denial.status, denial.message) == (401, BAD_SIGNATURE)


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(SIGNATURE, id="canonical"),
        pytest.param(SIGNATURE.rstrip("="), id="unpadded"),
        pytest.param(STANDARD_SIGNATURE, id="standard-alphabet"),
        pytest.param(STANDARD_SIGNATURE.rstrip("="), id="standard-unpadded"),
    ],
)
def test_lenient_signatures_accept_every_encoding_of_the_same_digest(form: str) -> None:
    assert verifier(lenient_signature=True).verify(signed(signature=form), BODY) == KEY


def test_lenient_signatures_accept_a_plus_that_the_query_string_turned_into_a_space() -> None:
    digest = base64.urlsafe_b64decode(compute_signature(SECRET, KEY, TIMESTAMP, SEQ, "7", BODY))
    standard = base64.b64encode(digest).decode()
    # Try nonces until the standard form has a '+', so the case is really exercised.
    nonce = 7
    while "+" not in standard:
        nonce += 1
        signature = compute_signature(SECRET, KEY, TIMESTAMP, SEQ, str(nonce), BODY)
        standard = base64.b64encode(base64.urlsafe_b64decode(signature)).decode()
    args = signed(nonce=str(nonce), signature=standard.replace("+", " "))
    assert verifier(lenient_signature=True).verify(args, BODY) == KEY
    assert refusal(lambda: verifier().verify(args, BODY)).message == BAD_SIGNATURE


def test_lenient_signatures_still_refuse_a_different_digest() -> None:
    wrong = compute_signature(b"other", KEY, TIMESTAMP, SEQ, NONCE, BODY)
    check = verifier(lenient_signature=True)
    for form in (wrong, wrong.rstrip("="), wrong.replace("-", "+").replace("_", "/")):
        with pytest.raises(DeniedError, match="signature secret not valid"):
            check.verify(signed(signature=form), BODY)


# -- rows 8-14: each check, its wording and both faces ----------------------------------


def without(name: str) -> Args:
    args = signed()
    del args[name.encode()]
    return args


def replaced(name: str, value: str) -> Args:
    args = signed()
    args[name.encode()] = [value.encode()]
    return args


ROWS = [
    pytest.param(without("key"), 400, missing("'key' field missing"), id="8-key-missing"),
    pytest.param(
        replaced("timestamp", "notatimestamp"),
        400,
        invalid(
            "invalid timestamp 'notatimestamp' "
            "(must be UTC/ISO-8601, e.g. '2011-10-14T16:59:51.123Z')"
        ),
        id="9-timestamp-malformed",
    ),
    pytest.param(
        signed(timestamp="2011-10-14T16:54:51.122Z"), 400, EXPIRED, id="9b-timestamp-expired"
    ),
    pytest.param(
        without("timestamp"),
        400,
        missing("signed request required, but mandatory 'timestamp' field missing"),
        id="9c-timestamp-missing",
    ),
    pytest.param(
        replaced("seq", "notaseq"),
        400,
        invalid("invalid sequence number 'notaseq' (must be an integer)"),
        id="10-seq-malformed",
    ),
    pytest.param(without("seq"), 400, missing("'seq' field missing"), id="10-seq-missing"),
    pytest.param(
        replaced("nonce", "notanonce"),
        400,
        invalid("invalid nonce 'notanonce' (must be an integer)"),
        id="11-nonce-malformed",
    ),
    pytest.param(without("nonce"), 400, missing("'nonce' field missing"), id="11-nonce-missing"),
    pytest.param(
        without("signature"), 400, missing("'signature' field missing"), id="12-signature-missing"
    ),
    pytest.param(signed(key="bazapp"), 401, BAD_KEY, id="13-unknown-key"),
    pytest.param(signed(secret=b"wrong"), 401, BAD_SIGNATURE, id="14-wrong-secret"),
]


@pytest.mark.parametrize(("args", "status", "message"), ROWS)
def test_each_check_refuses_with_crossbars_status_and_wording(
    args: Args, status: int, message: str
) -> None:
    denial = refusal(lambda: verifier().verify(args, BODY))
    assert (denial.status, denial.message) == (status, message)
    assert json.loads(denial.compat_body()) == {"error": message, "args": [], "kwargs": {}}


@pytest.mark.parametrize(("args", "status", "message"), ROWS)
def test_each_check_is_a_401_unauthorized_on_a_rest_mount(
    args: Args, status: int, message: str
) -> None:
    denial = refusal(lambda: verifier().verify(args, BODY))
    assert (denial.rest_status, denial.uri) == (401, "wampweb.error.unauthorized")
    assert denial.retry_after is None


# Failures in the order Crossbar checks them: applying two, the earlier one is reported.
FAILURES: list[tuple[str, Callable[[Args], None], str]] = [
    ("key-missing", lambda a: a.pop(b"key"), missing("'key' field missing")),
    ("timestamp-malformed", lambda a: a.update({b"timestamp": [b"x"]}), "invalid timestamp 'x'"),
    (
        "timestamp-expired",
        lambda a: a.update({b"timestamp": [b"2001-01-01T00:00:00.0Z"]}),
        EXPIRED,
    ),
    ("seq-malformed", lambda a: a.update({b"seq": [b"s"]}), "invalid sequence number 's'"),
    ("seq-missing", lambda a: a.pop(b"seq"), missing("'seq' field missing")),
    ("nonce-malformed", lambda a: a.update({b"nonce": [b"n"]}), "invalid nonce 'n'"),
    ("nonce-missing", lambda a: a.pop(b"nonce"), missing("'nonce' field missing")),
    ("signature-missing", lambda a: a.pop(b"signature"), missing("'signature' field missing")),
    ("key-unknown", lambda a: a.update({b"key": [b"bazapp"]}), BAD_KEY),
    ("signature-wrong", lambda a: a.update({b"signature": [SIGNATURE.encode()]}), BAD_SIGNATURE),
]
# Alternatives for the same parameter cannot be combined.
_SAME_FIELD = [{"key-missing", "key-unknown"}, {"timestamp-malformed", "timestamp-expired"}]
_SAME_FIELD += [{"seq-malformed", "seq-missing"}, {"nonce-malformed", "nonce-missing"}]
_SAME_FIELD += [{"signature-missing", "signature-wrong"}]
PAIRS = [
    pytest.param(first, second, id=f"{first[0]}+{second[0]}")
    for i, first in enumerate(FAILURES)
    for second in FAILURES[i + 1 :]
    if {first[0], second[0]} not in _SAME_FIELD
]


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_of_two_failures_the_one_crossbar_checks_first_is_reported(
    first: tuple[str, Callable[[Args], None], str], second: tuple[str, Callable[[Args], None], str]
) -> None:
    args = signed(nonce="99")  # so that the vector's own signature is a wrong one
    first[1](args)
    second[1](args)
    assert first[2] in refusal(lambda: verifier().verify(args, BODY)).message


def test_only_the_first_value_of_a_repeated_parameter_counts() -> None:
    args = signed()
    args[b"key"].append(b"bazapp")
    args[b"signature"].append(b"garbage")
    assert verifier().verify(args, BODY) == KEY
    args = signed()
    args[b"key"].insert(0, b"bazapp")
    assert refusal(lambda: verifier().verify(args, BODY)).message == BAD_KEY


def test_an_empty_value_is_present_not_missing() -> None:
    denial = refusal(lambda: verifier().verify(replaced("signature", ""), BODY))
    assert denial.message == BAD_SIGNATURE
    denial = refusal(lambda: verifier().verify(replaced("seq", ""), BODY))
    assert denial.message == invalid("invalid sequence number '' (must be an integer)")


def test_a_non_ascii_value_is_a_400_not_crossbars_500() -> None:
    args = signed()
    args[b"nonce"] = ["٣".encode()]
    assert refusal(lambda: verifier().verify(args, BODY)).message == invalid(
        "invalid nonce '٣' (must be an integer)"
    )
    args = signed()
    args[b"timestamp"] = [b"\xff"]
    assert refusal(lambda: verifier().verify(args, BODY)).status == 400


def test_a_huge_value_is_shown_cut_short() -> None:
    args = replaced("seq", "x" * 10_000)
    message = refusal(lambda: verifier().verify(args, BODY)).message
    assert len(message) < 400
    assert "…" in message


@pytest.mark.parametrize(
    "value", ["0", "-5", "+5", " 12 ", "1_000", "9" * 5000, "007", "\t3\n", str(2**63)]
)
def test_seq_and_nonce_are_any_integer_python_reads(value: str) -> None:
    args = signed(seq=value, nonce=value)
    assert verifier().verify(args, BODY) == KEY


@pytest.mark.parametrize("value", ["", "1.0", "0x10", "1__2", "_1", "1_", "1e3", "- 1", "\u0661"])
def test_seq_and_nonce_refuse_what_is_not_an_integer(value: str) -> None:
    denial = refusal(lambda: verifier().verify(signed(seq=value), BODY))
    assert denial.message == invalid(f"invalid sequence number '{value}' (must be an integer)")


def test_seq_is_never_required_to_increase() -> None:
    check = verifier()
    for seq, nonce in (("7", "1"), ("3", "2"), ("3", "3"), ("-1", "4")):
        assert check.verify(signed(seq=seq, nonce=nonce), BODY) == KEY


# -- timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2011-10-14T16:59:51.123Z", datetime(2011, 10, 14, 16, 59, 51, 123000, UTC)),
        ("2011-10-14T16:59:51.123456Z", datetime(2011, 10, 14, 16, 59, 51, 123456, UTC)),
        ("2011-10-14T16:59:51.1Z", datetime(2011, 10, 14, 16, 59, 51, 100000, UTC)),
        # What Crossbar's strptime also takes: unpadded fields, lower-case t and z.
        ("2011-1-4t6:9:1.5z", datetime(2011, 1, 4, 6, 9, 1, 500000, UTC)),
    ],
)
def test_timestamps_crossbar_accepts_parse_strictly(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert parse_timestamp(text, lenient=True) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2011-10-14T16:59:51.123+00:00",
        "2011-10-14T16:59:51+00:00",
        "2011-10-14T16:59:51.1234567Z",
        "2011-10-14 16:59:51.123Z",
        "2011-10-14T16:59:51.123",
        "٢٠١١-10-14T16:59:51.123Z",
        "2011-02-30T16:59:51.123Z",
        "1318611591",
        "",
    ],
)
def test_timestamps_crossbar_refuses_are_refused_even_leniently(text: str) -> None:
    with pytest.raises(ValueError, match=r"ASCII|does not match|out of range"):
        parse_timestamp(text)
    with pytest.raises(ValueError, match=r"ASCII|does not match|out of range"):
        parse_timestamp(text, lenient=True)


def test_a_timestamp_without_fraction_is_refused_unless_lenient() -> None:
    with pytest.raises(ValueError, match="does not match"):
        parse_timestamp("2011-10-14T16:59:51Z")
    assert parse_timestamp("2011-10-14T16:59:51Z", lenient=True) == datetime(
        2011, 10, 14, 16, 59, 51, tzinfo=UTC
    )
    args = signed(timestamp="2011-10-14T16:59:51Z")
    denial = refusal(lambda: verifier().verify(args, BODY))
    assert "invalid timestamp '2011-10-14T16:59:51Z'" in denial.message
    assert verifier(lenient_timestamp=True).verify(args, BODY) == KEY


def test_format_timestamp_writes_milliseconds_in_utc() -> None:
    when = datetime(2011, 10, 14, 18, 59, 51, 123456, tzinfo=timezone_plus_two())
    assert format_timestamp(when) == "2011-10-14T16:59:51.123Z"
    assert parse_timestamp(format_timestamp(datetime(2020, 1, 1, tzinfo=UTC))).year == 2020


def timezone_plus_two() -> object:
    from datetime import timezone

    return timezone(timedelta(hours=2))


@pytest.mark.parametrize("offset", [-300.001, 300.001, -4000, 4000])
def test_a_timestamp_outside_the_window_is_refused_in_the_past_and_the_future(
    offset: float,
) -> None:
    clock = at(TIMESTAMP)
    clock.advance(offset)
    denial = refusal(lambda: verifier(clock).verify(signed(), BODY))
    assert (denial.status, denial.rest_status, denial.message) == (400, 401, EXPIRED)


@pytest.mark.parametrize("offset", [-300, -299.5, 0, 299.5, 300])
def test_a_timestamp_inside_the_window_or_on_its_edge_is_accepted(offset: float) -> None:
    clock = at(TIMESTAMP)
    clock.advance(offset)
    assert verifier(clock).verify(signed(), BODY) == KEY


def test_the_window_is_checked_even_without_keys() -> None:
    clock = at(TIMESTAMP)
    clock.advance(301)
    unsigned = {b"timestamp": [TIMESTAMP.encode()]}
    denial = refusal(lambda: RequestVerifier(clock=clock).verify(unsigned, BODY))
    assert denial.message == EXPIRED
    assert RequestVerifier(clock=clock, timestamp_delta_limit=0).verify(unsigned, BODY) is None


def test_a_window_of_zero_with_keys_needs_replay_protection_turned_off() -> None:
    with pytest.raises(ConfigError, match="remember every signed request forever"):
        verifier(timestamp_delta_limit=0)
    clock = at(TIMESTAMP)
    clock.advance(10 * 365 * 86400)
    check = verifier(clock, timestamp_delta_limit=0, replay_protection=False)
    assert check.verify(signed(), BODY) == KEY
    assert check.verify(signed(), BODY) == KEY  # no memory: as Crossbar, by choice
    assert check.remembered == 0


@pytest.mark.parametrize("limit", [-1, float("nan"), float("inf")])
def test_a_window_that_is_not_a_finite_positive_number_is_refused(limit: float) -> None:
    with pytest.raises(ConfigError, match="timestamp_delta_limit"):
        RequestVerifier(clock=Clock(), timestamp_delta_limit=limit)


def test_a_replay_memory_of_no_size_is_refused() -> None:
    with pytest.raises(ConfigError, match="replay_cache_size"):
        verifier(replay_cache_size=0)


# -- without keys ----------------------------------------------------------------------


def test_without_keys_an_unsigned_request_passes_and_names_no_key() -> None:
    assert RequestVerifier(clock=at(TIMESTAMP)).verify({}, BODY) is None


def test_without_keys_signing_parameters_are_not_checked_but_must_be_well_formed() -> None:
    check = RequestVerifier(clock=at(TIMESTAMP))
    assert check.verify(signed(key="anyone", signature="nonsense"), BODY) is None
    assert check.verify(signed(), BODY) is None
    assert check.verify(signed(), BODY) is None  # nothing verified, nothing remembered
    denial = refusal(lambda: check.verify({b"seq": [b"x"]}, BODY))
    assert denial.message == invalid("invalid sequence number 'x' (must be an integer)")
    denial = refusal(lambda: check.verify({b"nonce": [b"x"]}, BODY))
    assert denial.message == invalid("invalid nonce 'x' (must be an integer)")
    denial = refusal(lambda: check.verify({b"timestamp": [b"x"]}, BODY))
    assert denial.message.startswith(invalid("invalid timestamp 'x'")[:-2])


# -- several keys ----------------------------------------------------------------------


def test_any_configured_key_may_sign() -> None:
    keys = [SigningKey("alice", b"a-secret"), SigningKey("bob", b"b-secret")]
    check = verifier(keys=keys)
    assert check.verify(signed(key="alice", secret=b"a-secret"), BODY) == "alice"
    assert check.verify(signed(key="bob", secret=b"b-secret"), BODY) == "bob"
    denial = refusal(lambda: check.verify(signed(key="alice", secret=b"b-secret"), BODY))
    assert denial.message == BAD_SIGNATURE


def test_a_key_rotating_its_secret_is_accepted_with_either_secret() -> None:
    keys = [SigningKey(KEY, b"old"), SigningKey(KEY, b"new")]
    check = verifier(keys=keys)
    assert check.verify(signed(secret=b"old", nonce="1"), BODY) == KEY
    assert check.verify(signed(secret=b"new", nonce="2"), BODY) == KEY
    assert refusal(lambda: check.verify(signed(secret=b"neither"), BODY)).status == 401


def test_a_signing_key_never_shows_its_secret_and_must_have_one() -> None:
    assert "secret" not in repr(SigningKey(KEY, b"hunter2"))
    assert "hunter2" not in repr(SigningKey(KEY, b"hunter2"))
    assert SigningKey(KEY, "sécret").secret == "sécret".encode()
    with pytest.raises(ValueError, match="empty"):
        SigningKey(KEY, b"")


# -- replays ---------------------------------------------------------------------------


def test_a_replayed_request_is_refused_with_401() -> None:
    check = verifier()
    assert check.verify(signed(), BODY) == KEY
    denial = refusal(lambda: check.verify(signed(), BODY))
    assert (denial.status, denial.rest_status, denial.uri) == (401, 401, "wampweb.error.replayed")
    assert "Replayed request refused" in denial.message
    assert "Crossbar.io's HTTP bridge accepted such replays" in denial.message


def test_a_reused_nonce_is_refused_even_for_a_different_body() -> None:
    check = verifier()
    check.verify(signed(), BODY)
    other = b'{"topic":"com.myapp.topic2"}'
    denial = refusal(lambda: check.verify(signed(body=other, seq="2"), other))
    assert "nonce '123456' was already used with key 'foobar'" in denial.message


def test_a_nonce_is_the_integer_it_denotes() -> None:
    check = verifier()
    check.verify(signed(nonce="123456"), BODY)
    assert refusal(lambda: check.verify(signed(nonce="0_123_456"), BODY)).uri == (
        "wampweb.error.replayed"
    )


def test_moving_digits_between_seq_and_nonce_is_still_a_replay() -> None:
    # The fields are concatenated with no separator, so seq "1" + nonce "123456"
    # and seq "11" + nonce "23456" carry the same signature.
    check = verifier()
    check.verify(signed(signature=SIGNATURE), BODY)
    shifted = signed(seq="11", nonce="23456", signature=SIGNATURE)
    assert verifier().verify(shifted, BODY) == KEY  # the signature really is valid
    denial = refusal(lambda: check.verify(shifted, BODY))
    assert "this exact signed request was already seen" in denial.message


def test_the_same_nonce_under_another_key_is_not_a_replay() -> None:
    keys = [SigningKey("alice", b"a"), SigningKey("bob", b"b")]
    check = verifier(keys=keys)
    assert check.verify(signed(key="alice", secret=b"a"), BODY) == "alice"
    assert check.verify(signed(key="bob", secret=b"b"), BODY) == "bob"


def test_a_refused_request_is_not_remembered() -> None:
    check = verifier()
    refusal(lambda: check.verify(signed(secret=b"wrong"), BODY))
    assert check.remembered == 0
    assert check.verify(signed(), BODY) == KEY


def test_once_its_timestamp_leaves_the_window_a_nonce_may_be_used_again() -> None:
    clock = at(TIMESTAMP)
    check = verifier(clock)
    check.verify(signed(), BODY)
    clock.advance(300)
    later = stamp(clock)
    assert refusal(lambda: check.verify(signed(timestamp=later), BODY)).status == 401
    clock.advance(0.001)
    later = stamp(clock)
    assert check.verify(signed(timestamp=later), BODY) == KEY
    assert check.remembered == 1


def test_a_request_from_the_future_is_remembered_until_its_own_window_ends() -> None:
    clock = at(TIMESTAMP)
    check = verifier(clock)
    future = format_timestamp(parse_timestamp(TIMESTAMP) + timedelta(seconds=250))
    check.verify(signed(timestamp=future), BODY)
    clock.advance(540)  # 290 s past that timestamp: a replay would pass the window
    assert refusal(lambda: check.verify(signed(timestamp=future), BODY)).status == 401


def test_a_full_memory_refuses_new_requests_with_503_and_recovers() -> None:
    clock = at(TIMESTAMP)
    check = verifier(clock, replay_cache_size=2)
    check.verify(signed(nonce="1"), BODY)
    clock.advance(10)
    second = signed(nonce="2", timestamp=stamp(clock))
    check.verify(second, BODY)
    denial = refusal(lambda: check.verify(signed(nonce="3", timestamp=stamp(clock)), BODY))
    assert (denial.status, denial.rest_status) == (503, 503)
    assert denial.uri == "wampweb.error.replay_cache_full"
    # The oldest entry is remembered until 300 s after its timestamp; 10 s have passed.
    assert denial.retry_after == 291
    # Nothing live was forgotten to make room.
    assert refusal(lambda: check.verify(signed(nonce="1"), BODY)).status == 401
    assert refusal(lambda: check.verify(second, BODY)).status == 401

    clock.advance(denial.retry_after)
    assert check.verify(signed(nonce="3", timestamp=stamp(clock)), BODY) == KEY
    assert check.remembered == 2  # the second is still remembered
    assert refusal(lambda: check.verify(second, BODY)).uri == "wampweb.error.replayed"


def test_a_replay_into_a_full_memory_is_still_called_a_replay() -> None:
    check = verifier(replay_cache_size=1)
    check.verify(signed(), BODY)
    assert refusal(lambda: check.verify(signed(), BODY)).uri == "wampweb.error.replayed"


def test_expiry_keeps_up_with_a_steady_stream() -> None:
    clock = at(TIMESTAMP)
    check = verifier(clock, timestamp_delta_limit=10, replay_cache_size=25)
    for n in range(1000):
        now = stamp(clock)
        assert check.verify(signed(nonce=str(n), timestamp=now), BODY) == KEY
        clock.advance(1)
    assert check.remembered <= 22


# -- round trips -----------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    key=texts,
    secret=st.binary(min_size=1, max_size=64),
    body=st.binary(max_size=512),
    seq=st.integers(),
    nonce=st.integers(min_value=-(2**70), max_value=2**70),
    lenient=st.booleans(),
)
def test_whatever_is_signed_verifies(
    key: str, secret: bytes, body: bytes, seq: int, nonce: int, lenient: bool
) -> None:
    args = signed(key=key, secret=secret, body=body, seq=str(seq), nonce=str(nonce))
    check = verifier(keys=[SigningKey(key, secret)], lenient_signature=lenient)
    assert check.verify(args, body) == key
    assert explain(args, body, [SigningKey(key, secret)], now=NOW, timestamp_delta_limit=300) == []


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=64), flip=st.integers(min_value=0, max_value=43))
def test_a_changed_signature_or_body_never_verifies(body: bytes, flip: int) -> None:
    signature = compute_signature(SECRET, KEY, TIMESTAMP, SEQ, NONCE, body)
    changed = signature[:flip] + ("A" if signature[flip] != "A" else "B") + signature[flip + 1 :]
    check = verifier()
    assert refusal(lambda: check.verify(signed(body=body, signature=changed), body)).status == 401
    assert refusal(lambda: check.verify(signed(body=body), body + b" ")).status == 401


# -- explain ---------------------------------------------------------------------------

NOW = parse_timestamp(TIMESTAMP)


def reasons(args: Args, body: bytes = BODY, **options: object) -> list[str]:
    keys = options.pop("keys", [SigningKey(KEY, SECRET)])
    return explain(
        args,
        body,
        keys,  # type: ignore[arg-type]
        now=options.pop("now", NOW),  # type: ignore[arg-type]
        timestamp_delta_limit=options.pop("limit", 300),  # type: ignore[arg-type]
    )


def test_explain_has_nothing_to_say_about_a_good_request() -> None:
    assert reasons(signed()) == []
    assert reasons(signed(), now=NOW.replace(tzinfo=None)) == []


def test_explain_names_a_missing_padding() -> None:
    [reason] = reasons(signed(signature=SIGNATURE.rstrip("=")))
    assert "lacks its '=' padding" in reason


def test_explain_names_the_standard_alphabet() -> None:
    [reason] = reasons(signed(signature=STANDARD_SIGNATURE))
    assert "standard base64 alphabet" in reason
    assert "urlsafe_b64encode" in reason


def test_explain_names_a_plus_turned_into_a_space() -> None:
    nonce = 1
    while True:
        signature = compute_signature(SECRET, KEY, TIMESTAMP, SEQ, str(nonce), BODY)
        standard = base64.b64encode(base64.urlsafe_b64decode(signature)).decode()
        if "+" in standard:
            break
        nonce += 1
    [reason] = reasons(signed(nonce=str(nonce), signature=standard.replace("+", " ")))
    assert "arrived as a space" in reason


def test_explain_gives_the_expected_timestamp_format() -> None:
    [reason] = reasons(signed(timestamp="2011-10-14T16:59:51.123+00:00"))
    assert "UTC offset" in reason
    assert "2011-10-14T16:59:51.123Z" in reason
    [reason] = reasons(signed(timestamp="2011-10-14T16:59:51Z"))
    assert "no fractional seconds" in reason
    assert "isoformat" in reason
    [reason] = reasons(signed(timestamp="yesterday"))
    assert "e.g. '2011-10-14T16:59:51.123Z'" in reason


def test_explain_says_how_far_outside_the_window() -> None:
    [reason] = reasons(signed(), now=NOW + timedelta(seconds=412.5))
    assert "412.5 s in the past" in reason
    assert "by 112.5 s" in reason
    [reason] = reasons(signed(), now=NOW - timedelta(seconds=301))
    assert "in the future" in reason
    assert reasons(signed(), now=NOW + timedelta(days=9), limit=0) == []


def test_explain_names_an_unknown_key_and_a_secret_mismatch() -> None:
    [reason] = reasons(signed(key="bazapp", secret=b"x"))
    assert "key 'bazapp' is not one of the configured keys ('foobar')" in reason
    [reason] = reasons(signed(secret=b"not the secret"))
    assert "secret differs" in reason
    assert SIGNATURE in reason  # what it would be with this secret


def test_explain_spots_a_final_newline_on_one_side_only() -> None:
    sent = BODY + b"\n"
    found = reasons(signed(body=BODY), sent)
    assert any("without its final newline, but sent with it" in r for r in found)
    found = reasons(signed(body=sent), BODY)
    assert any("with a final newline, but sent without it" in r for r in found)


def test_explain_lists_every_problem_at_once() -> None:
    args = signed(signature=SIGNATURE.rstrip("="), seq="x")
    del args[b"nonce"]
    found = reasons(args, now=NOW + timedelta(hours=1))
    assert len(found) == 3
    assert found[0] == "the 'nonce' query parameter is missing"
    assert "in the past" in found[1]
    assert "seq 'x' is not an integer" in found[2]


@pytest.mark.parametrize(("args", "status", "message"), ROWS)
def test_explain_finds_fault_with_every_request_the_verifier_refuses(
    args: Args, status: int, message: str
) -> None:
    assert reasons(args) != []
    for good in (signed(), signed(nonce="7", seq="-3"), signed(timestamp="2011-10-14T16:55:00.0Z")):
        assert reasons(good) == []
        assert verifier().verify(good, BODY) == KEY


# -- against Crossbar itself -----------------------------------------------------------


class _CrossbarRequest:
    """Just enough of a Twisted request for Crossbar's ``_render_request``."""

    def __init__(self, args: Args, body: bytes) -> None:
        from io import BytesIO

        from twisted.web.http_headers import Headers

        self.args = args
        self.content = BytesIO(body)
        self.requestHeaders = Headers({b"content-type": [b"application/json"]})
        self.code = 200

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def getClientIP(self) -> str:
        return "127.0.0.1"

    def isSecure(self) -> bool:
        return False


def _crossbar_answer(options: dict[str, object], args: Args, body: bytes) -> tuple[int, str] | None:
    common = pytest.importorskip("crossbar.bridge.rest.common")

    class Resource(common._CommonResource):  # type: ignore[misc,name-defined]
        def _process(self, request: object, event: object) -> bytes:
            return b"ACCEPTED"

    request = _CrossbarRequest(args, body)
    answer = Resource(options, session=None)._render_request(request)
    if answer == b"ACCEPTED":
        return None
    return request.code, json.loads(answer)["error"]


def _now_variants() -> list[tuple[str, Args]]:
    now = datetime.now(UTC)
    ts = format_timestamp(now)

    def sign(**fields: str) -> Args:
        return signed(**{"timestamp": ts, **fields})  # type: ignore[arg-type]

    def drop(args: Args, *names: str) -> Args:
        for name in names:
            del args[name.encode()]
        return args

    cases = [
        ("good", sign()),
        ("unpadded", sign(signature=compute_signature(SECRET, KEY, ts, SEQ, NONCE, BODY)[:-1])),
        ("µs", sign(timestamp=now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))),
        ("1 digit", sign(timestamp=now.strftime("%Y-%m-%dT%H:%M:%S.") + "1Z")),
        ("no fraction", sign(timestamp=now.strftime("%Y-%m-%dT%H:%M:%SZ"))),
        ("+00:00", sign(timestamp=now.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"))),
        ("lower z", sign(timestamp=ts.replace("Z", "z"))),
        ("old", sign(timestamp=format_timestamp(now - timedelta(seconds=400)))),
        ("future", sign(timestamp=format_timestamp(now + timedelta(seconds=400)))),
        ("bad seq", sign(seq="1.5")),
        ("neg nonce", sign(nonce="-12")),
        ("spaced nonce", sign(nonce=" 12_3 ")),
        ("bad nonce", sign(nonce="0x1")),
        ("wrong key", sign(key="bazapp")),
        ("wrong secret", sign(secret=b"nope")),
        ("empty signature", sign(signature="")),
        ("key + bad ts", drop(sign(timestamp="x"), "key")),
        ("bad ts + no seq", drop(sign(timestamp="x"), "seq")),
        ("old + bad nonce", sign(timestamp="2001-01-01T00:00:00.0Z", nonce="x")),
    ]
    names = ["key", "timestamp", "seq", "nonce", "signature"]
    for mask in range(1, 32):
        dropped = [name for bit, name in enumerate(names) if mask & (1 << bit)]
        cases.append(("without " + ",".join(dropped), drop(sign(), *dropped)))
    return cases


@pytest.mark.parametrize("secret", [True, False], ids=["with-secret", "without-secret"])
def test_every_answer_matches_crossbars_own_code(secret: bool) -> None:
    options: dict[str, object] = {"timestamp_delta_limit": 300}
    if secret:
        options |= {"key": KEY, "secret": SECRET.decode()}
    clock = Clock()
    clock.advance(time.time())
    for name, args in _now_variants():
        theirs = _crossbar_answer(options, args, BODY)
        keys = [SigningKey(KEY, SECRET)] if secret else []
        try:
            RequestVerifier(keys, clock=clock).verify(args, BODY)
        except DeniedError as denial:
            ours: tuple[int, str] | None = (denial.status, denial.message)
        else:
            ours = None
        assert ours == theirs, name
