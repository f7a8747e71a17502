"""
Per-client rate limits for the bridge: a token bucket per identity, in bounded memory.

Crossbar's bridge has none; a client in a loop reaches the router at full speed. The limiter
is a pure object: time comes from the ``IReactorTime`` it is given, so tests advance a
``Clock`` instead of sleeping, and nothing here schedules a timer.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import attrs
from twisted.internet.interfaces import IReactorTime

from wampweb._denial import DeniedError

__all__ = ["RATE_LIMITED", "RateLimiter", "rate_limit_identity"]

#: The REST error URI of a rate-limit refusal.
RATE_LIMITED = "wampweb.error.rate_limited"

#: How much of an IPv6 address one client is assumed to control: a /64 is what one
#: subscriber line or one host is usually given, so counting /128s would hand one client
#: 2**64 buckets (and let it fill the table).
IPV6_CLIENT_PREFIX = 64


def rate_limit_identity(key: str | None, ip: IPv4Address | IPv6Address | None) -> str:
    """
    Whose bucket a request takes from: the verified key when the request was signed,
    otherwise the client's address (an IPv6 client's /64). The kinds are prefixed so a key
    spelled like an address never shares that address's bucket. Requests with no address
    (a UNIX socket with no trusted forwarding header) share one bucket.
    """
    if key is not None:
        return f"key:{key}"
    if ip is None:
        return "ip:unknown"
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"ip:{ip.ipv4_mapped}"
        return f"ip:{IPv6Network((int(ip), IPV6_CLIENT_PREFIX), strict=False)}"
    return f"ip:{ip}"


@attrs.define
class _Bucket:
    tokens: float
    updated: float


@attrs.define(eq=False)
class RateLimiter:
    """
    ``rate`` requests per second per identity, with bursts of up to ``burst``.

    Each identity has a bucket of ``burst`` tokens that refills at ``rate`` per second; a
    request takes one token or is refused with a 429 whose ``retry_after`` is the time until
    the next token.

    Memory is bounded. A bucket untouched for ``burst / rate`` seconds is certainly full again,
    and a full bucket is the same as no bucket, so it is dropped (oldest first, a little work
    on every request, no timer). At most ``max_clients`` buckets live at once; when that many
    clients are active and another arrives, the newcomer is refused (429, retry when the
    oldest bucket expires) rather than let in unlimited: failing open would let anyone with
    many addresses switch the limit off, and evicting a live bucket would hand its owner a
    fresh burst. The cost is that a flood of distinct clients can keep new ones out for a
    while; size ``max_clients`` for the peak number of clients active within ``burst / rate``
    seconds.
    """

    rate: float
    burst: int
    clock: IReactorTime
    max_clients: int = 10_000
    _buckets: OrderedDict[str, _Bucket] = attrs.field(init=False, factory=OrderedDict)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.rate, bool) or not (
            isinstance(self.rate, int | float) and math.isfinite(self.rate) and self.rate > 0
        ):
            raise ValueError(f"rate must be a positive number of requests/s, got {self.rate!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"burst must be a whole number of at least 1, got {self.burst!r}")
        if (
            isinstance(self.max_clients, bool)
            or not isinstance(self.max_clients, int)
            or self.max_clients < 1
        ):
            raise ValueError(
                f"max_clients must be a whole number of at least 1, got {self.max_clients!r}"
            )

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to fill up, and so how long an idle one is kept."""
        return self.burst / self.rate

    def __len__(self) -> int:
        """The number of buckets held (for metrics and for the memory-bound tests)."""
        return len(self._buckets)

    def take(self, identity: str) -> None:
        """Take one token from ``identity``'s bucket, or refuse with a 429."""
        now = self.clock.seconds()
        self._drop_full(now)
        bucket = self._buckets.get(identity)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                oldest = next(iter(self._buckets.values()))
                raise DeniedError(
                    "rate limit exceeded: too many clients are active right now, retry later",
                    status=429,
                    rest_status=429,
                    uri=RATE_LIMITED,
                    retry_after=max(0.0, oldest.updated + self.refill_seconds - now),
                )
            bucket = _Bucket(tokens=float(self.burst), updated=now)
            self._buckets[identity] = bucket
        else:
            # A clock that steps back refills nothing (and takes nothing away).
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.updated = max(bucket.updated, now)
            self._buckets.move_to_end(identity)
        if bucket.tokens < 1.0:
            raise DeniedError(
                f"rate limit exceeded for {identity}: "
                f"{self.rate:g} requests/s, bursts of {self.burst}",
                status=429,
                rest_status=429,
                uri=RATE_LIMITED,
                retry_after=(1.0 - bucket.tokens) / self.rate,
            )
        bucket.tokens -= 1.0

    def _drop_full(self, now: float) -> None:
        # Buckets are kept in order of last use, so the ones idle long enough are at the front.
        horizon = now - self.refill_seconds
        while self._buckets:
            identity, bucket = next(iter(self._buckets.items()))
            if bucket.updated > horizon:
                return
            del self._buckets[identity]
