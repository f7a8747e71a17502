"""Rate limits: a token bucket per client, refilled by the clock, in bounded memory."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from wampweb._access import RATE_LIMITED, RateLimiter, rate_limit_identity
from wampweb._denial import DeniedError


def refusal(limiter: RateLimiter, identity: str) -> DeniedError:
    with pytest.raises(DeniedError) as raised:
        limiter.take(identity)
    return raised.value


def test_a_client_may_burst_then_is_refused_with_a_429() -> None:
    limiter = RateLimiter(rate=2.0, burst=3, clock=Clock())
    for _ in range(3):
        limiter.take("ip:192.0.2.1")
    denial = refusal(limiter, "ip:192.0.2.1")
    assert (denial.status, denial.rest_status, denial.uri) == (429, 429, RATE_LIMITED)
    assert denial.message.startswith("rate limit exceeded for ip:192.0.2.1")
    assert denial.retry_after == pytest.approx(0.5)  # one token at 2/s


def test_retry_after_is_the_time_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=0.1, burst=1, clock=clock)
    limiter.take("k")
    assert refusal(limiter, "k").retry_after == pytest.approx(10.0)
    clock.advance(4)
    assert refusal(limiter, "k").retry_after == pytest.approx(6.0)
    clock.advance(6)
    limiter.take("k")


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    limiter.take("k")
    limiter.take("k")
    clock.advance(1)
    limiter.take("k")
    refusal(limiter, "k")
    clock.advance(100)  # a long pause refills to the burst, not beyond
    limiter.take("k")
    limiter.take("k")
    refusal(limiter, "k")


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    limiter.take("k")
    for _ in range(5):
        refusal(limiter, "k")
    clock.advance(1)
    limiter.take("k")


def test_clients_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
    limiter.take("key:a")
    limiter.take("key:b")
    refusal(limiter, "key:a")


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = Clock()
    clock.advance(100)
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    limiter.take("k")
    clock.rightNow = 50.0
    refusal(limiter, "k")
    clock.rightNow = 101.0
    limiter.take("k")


def test_idle_buckets_are_dropped_once_surely_full() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=5, clock=clock)
    for n in range(100):
        limiter.take(f"ip:{n}")
    assert len(limiter) == 100
    clock.advance(4.9)
    limiter.take("ip:new")
    assert len(limiter) == 101
    clock.advance(0.1)  # five seconds since the first hundred: their buckets are full again
    limiter.take("ip:newer")
    assert len(limiter) == 2


def test_a_dropped_bucket_comes_back_full() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    limiter.take("k")
    limiter.take("k")
    clock.advance(2)
    limiter.take("other")
    assert len(limiter) == 1
    limiter.take("k")
    limiter.take("k")
    refusal(limiter, "k")


def test_when_the_table_is_full_a_new_client_is_refused_and_known_ones_continue() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=10, clock=clock, max_clients=3)
    for name in "abc":
        limiter.take(name)
        clock.advance(1)
    denial = refusal(limiter, "d")
    assert (denial.status, denial.uri) == (429, RATE_LIMITED)
    assert "too many clients" in denial.message
    assert denial.retry_after == pytest.approx(7.0)  # "a" idle since t=0, full at t=10
    limiter.take("b")
    assert len(limiter) == 3
    clock.advance(7)  # "a" is full again and is dropped
    limiter.take("d")
    assert len(limiter) == 3


@given(
    steps=st.lists(st.tuples(st.integers(0, 50), st.floats(0, 3, allow_nan=False)), max_size=200)
)
def test_the_table_never_outgrows_its_bound(steps: list[tuple[int, float]]) -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=4, clock=clock, max_clients=8)
    waits: list[float | None] = []
    for client, pause in steps:
        clock.advance(pause)
        try:
            limiter.take(f"ip:{client}")
        except DeniedError as denial:
            waits.append(denial.retry_after)
        assert len(limiter) <= 8
    assert all(wait is not None and 0 < wait <= limiter.refill_seconds for wait in waits)


@given(gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=100))
def test_no_more_than_burst_plus_rate_times_elapsed_are_let_through(gaps: list[float]) -> None:
    clock = Clock()
    limiter = RateLimiter(rate=3.0, burst=2, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.advance(gap)
        try:
            limiter.take("k")
            allowed += 1
        except DeniedError:
            pass
    assert allowed <= 2 + 3.0 * clock.seconds() + 1e-9


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"rate": 0, "burst": 1}, "rate"),
        ({"rate": float("inf"), "burst": 1}, "rate"),
        ({"rate": float("nan"), "burst": 1}, "rate"),
        ({"rate": 1, "burst": 0}, "burst"),
        ({"rate": 1, "burst": 1.5}, "burst"),
        ({"rate": 1, "burst": 1, "max_clients": 0}, "max_clients"),
    ],
)
def test_nonsense_limits_are_refused(arguments: dict[str, float], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RateLimiter(clock=Clock(), **arguments)  # type: ignore[arg-type]


def test_identities_are_the_key_or_the_address() -> None:
    assert rate_limit_identity("frontend", IPv4Address("192.0.2.1")) == "key:frontend"
    assert rate_limit_identity(None, IPv4Address("192.0.2.1")) == "ip:192.0.2.1"
    assert rate_limit_identity(None, None) == "ip:unknown"
    # a key spelled like an address never shares that address's bucket
    assert rate_limit_identity("192.0.2.1", None) != rate_limit_identity(
        None, IPv4Address("192.0.2.1")
    )


def test_an_ipv6_client_is_counted_by_its_slash_64() -> None:
    one = rate_limit_identity(None, IPv6Address("2001:db8:1:2::1"))
    other = rate_limit_identity(None, IPv6Address("2001:db8:1:2:ffff::9"))
    elsewhere = rate_limit_identity(None, IPv6Address("2001:db8:1:3::1"))
    assert one == other == "ip:2001:db8:1:2::/64"
    assert elsewhere != one
    assert rate_limit_identity(None, IPv6Address("::ffff:192.0.2.1")) == "ip:192.0.2.1"
    assert rate_limit_identity(None, IPv6Address("fe80::1%eth0")) == "ip:fe80::/64"
