"""
A property-based fuzz of the bridge: hypothesis makes the requests, a live
wampweb app answers them over real TCP, and a real Crossbar.io router carries
what gets through to real peers.

The app serves a publisher, a caller and a webhook in both dialects, plus
mounts that sign, limit bodies, check CORS, client address and rate, forget
signed requests early, and check GitHub signatures (:data:`MOUNTS`). Two peers
subscribe to everything under ``fuzz``: a callee that speaks JSON over
WebSocket (and registers a few procedures), and a witness that speaks msgpack
over RawSocket. A payload that one serializer cannot carry shows up as a peer
that lost its session; a barrier publication after every 2xx makes sure that
shows up on the request that did it.

Requests are anything at all (bodies of raw bytes and of hand-made JSON text
with NaN, huge integers, lone surrogates, NUL-led strings, deep nesting and
repeated keys; odd headers, query strings, paths and methods; hang-ups), valid
requests with the answer they must get, and valid requests with one thing
changed. For every one of them:

- an answer arrives within :data:`ANSWER_BOUND` seconds, well-formed HTTP;
- its status is never a 5xx other than 502, 503 and 504 (a 500 is a bug), and
  a 503 or a 429 carries ``Retry-After``;
- its body is JSON (an error in the ``{error, args, kwargs}`` envelope), or
  the webhook's plain ``OK``/``NOT OK``, or empty for a CORS preflight; never a
  traceback or a file path;
- a valid request gets its 200/202, a call echoes its arguments exactly, a
  publication reaches both peers, a rightly signed request is never a 401 and
  its replay always is;
- wampweb's session and every peer's session survive it.

And at the end: the same wampweb session as at the start (one join), nothing
in flight (WAMP operations and HTTP requests), ``GET /health`` answers 200,
and the process has not leaked file descriptors.

Hypothesis cannot drive a test that waits on the reactor, so it runs in a
worker thread (``deferToThread``) and hands each request to the reactor with
``blockingCallFromThread``. The CI run is derandomized; a violation fails the
example and hypothesis shrinks it to a minimal request. ``FOUND`` keeps the
requests it found so far. ``benchmarks/fuzz_bridge.py`` runs the same
properties for many more cases with random seeds.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import itertools
import json
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

import attrs
import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions, SubscribeOptions
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from tests.waiting import within
from wampweb import WampWeb
from wampweb._access import IpAllowList, Permissions, TrustedProxies, UriPattern, parse_networks
from wampweb._bridge import (
    DEFAULT_BODY_LIMIT,
    BridgeKind,
    BridgeMode,
    BridgeResource,
    BridgeSettings,
)
from wampweb._cors import CorsPolicy
from wampweb._ratelimit import RateLimiter
from wampweb._router import EmbeddedRouter
from wampweb._signing import RequestVerifier, SigningKey

pytestmark = pytest.mark.integration

#: Generated requests in the CI run (the benchmark script takes ``--cases``).
CI_CASES = 400
#: How long any answer may take: the slowest legitimate one is a call deadline (2 s).
ANSWER_BOUND = 10.0
#: The deadline of the caller mounts: fuzz.hang runs into it, fuzz.slow does not (and
#: neither does any other call on a loaded machine).
CALL_TIMEOUT = 2.0
SLOW_SECONDS = 0.1
REALM = "realm1"
SIGNING_KEY = "fuzzkey"
SIGNING_SECRET = b"fuzz-secret"
GITHUB_SECRET = b"gh-secret"
ALLOWED_ORIGIN = "https://app.example.com"
#: A name no generated payload uses, for the witnesses' event details.
DETAILS_ARG = "_fuzz_witness_details"
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1
#: What a file path or a traceback in an answer looks like.
LEAK_MARKERS = (
    b"Traceback (most recent call last)",
    b'File "/',
    b"site-packages",
    b"/work/main",
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))).encode(),
)


# -- the app under test ------------------------------------------------------------------------


@attrs.frozen
class Mount:
    """One bridge mount of the app, and what the checks need to know about it."""

    path: str
    kind: BridgeKind
    mode: BridgeMode = BridgeMode.CROSSBAR
    body_limit: int = DEFAULT_BODY_LIMIT
    signed: bool = False
    legacy_202: bool = False
    #: CORS allowlist, require_ip behind a trusted proxy, and a rate limit.
    guarded: bool = False
    github: bool = False
    topic: str = "fuzz.hook"
    #: How many signed requests the replay memory holds (then: 503 + Retry-After).
    replay_cache_size: int = 100_000

    @property
    def accepts_valid(self) -> bool:
        """Whether a valid request must succeed here (no limits it could run into)."""
        limited = self.guarded or self.github or self.replay_cache_size < 100_000
        return not limited and self.body_limit == DEFAULT_BODY_LIMIT

    def settings(self, reactor: Any) -> BridgeSettings:
        keys = [SigningKey(SIGNING_KEY, SIGNING_SECRET)] if self.signed else []
        extra: dict[str, Any] = {}
        if self.signed:
            fuzz = (UriPattern("fuzz.", "prefix"),)
            extra["permissions"] = {SIGNING_KEY: Permissions(publish=fuzz, call=fuzz)}
        if self.guarded:
            extra["cors"] = CorsPolicy.allow([ALLOWED_ORIGIN])
            extra["proxies"] = TrustedProxies(parse_networks(["127.0.0.1/32"]))
            extra["require_ip"] = IpAllowList(parse_networks(["10.0.0.0/8", "127.0.0.0/8"]))
            extra["rate_limiter"] = RateLimiter(5.0, 3, reactor)
        if self.github:
            extra["github_secret"] = GITHUB_SECRET
        if self.kind is BridgeKind.CALLER:
            extra["call_timeout"] = CALL_TIMEOUT
            extra["max_call_timeout"] = 3.0
        return BridgeSettings(
            kind=self.kind,
            mode=self.mode,
            legacy_202=self.legacy_202,
            body_limit=self.body_limit,
            verifier=RequestVerifier(keys, clock=reactor, replay_cache_size=self.replay_cache_size),
            topic=self.topic,
            success_response="OK",
            error_response="NOT OK",
            **extra,
        )


_PUB, _CALL, _HOOK = BridgeKind.PUBLISHER, BridgeKind.CALLER, BridgeKind.WEBHOOK
_CB, _REST = BridgeMode.CROSSBAR, BridgeMode.REST

MOUNTS: tuple[Mount, ...] = (
    Mount("/cb/publish", _PUB),
    Mount("/cb/call", _CALL),
    Mount("/cb/webhook", _HOOK, topic="fuzz.hook.cb"),
    Mount("/rest/publish", _PUB, _REST),
    Mount("/rest/call", _CALL, _REST),
    Mount("/rest/webhook", _HOOK, _REST, topic="fuzz.hook.rest"),
    Mount("/signed/publish", _PUB, signed=True),
    Mount("/signed/call", _CALL, _REST, signed=True),
    Mount("/forgetful/publish", _PUB, signed=True, replay_cache_size=2),
    Mount("/small/publish", _PUB, body_limit=64),
    Mount("/small/call", _CALL, _REST, body_limit=64),
    Mount("/small/webhook", _HOOK, body_limit=16),
    Mount("/legacy/publish", _PUB, legacy_202=True),
    Mount("/guarded/publish", _PUB, _REST, guarded=True),
    Mount("/github/webhook", _HOOK, _REST, github=True, topic="fuzz.hook.github"),
)
MOUNT_BY_PATH = {mount.path: mount for mount in MOUNTS}


@attrs.define(eq=False)
class Peer:
    """A plain Autobahn Component beside the app: the callee, or a witness of events."""

    name: str
    component: Component
    joins: int = 0
    leaves: int = 0
    readies: int = 0
    last_leave: str = ""
    publications: set[int] = attrs.field(factory=set)
    barrier: int = -1
    ready: Deferred[None] = attrs.field(factory=Deferred)
    done: Deferred[Any] | None = None

    @classmethod
    def create(cls, name: str, transport: dict[str, Any]) -> Peer:
        peer = cls(name, Component(transports=[transport], realm=REALM))
        peer.component.on("join", peer._joined)
        peer.component.on("leave", peer._left)
        peer.component.on("ready", peer._ready)
        peer.component.subscribe(
            "fuzz", options=SubscribeOptions(match="prefix", details_arg=DETAILS_ARG)
        )(peer._event)
        return peer

    def _joined(self, _session: object, _details: object) -> None:
        self.joins += 1

    def _left(self, _session: object, details: Any) -> None:
        self.leaves += 1
        reason = getattr(details, "reason", None)
        message = (getattr(details, "message", None) or "").splitlines()[:1]
        self.last_leave = f"{reason} {message[0][:120] if message else ''}".strip()

    def _ready(self, _session: object) -> None:
        self.readies += 1
        if not self.ready.called:
            self.ready.callback(None)

    def _event(self, *args: Any, **kwargs: Any) -> None:
        details = kwargs.pop(DETAILS_ARG, None)
        if details is not None and details.publication is not None:
            self.publications.add(details.publication)
        if details is not None and details.topic == "fuzz.barrier" and args:
            self.barrier = max(self.barrier, args[0])

    @property
    def healthy(self) -> bool:
        return self.joins == 1 and self.leaves == 0

    @property
    def up(self) -> bool:
        """Joined, with every registration and subscription in place."""
        return self.joins > self.leaves and self.readies == self.joins

    def start(self, reactor: Any) -> None:
        self.done = self.component.start(reactor)
        self.done.addErrback(lambda _: None)


def _echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def _fail(*args: Any, **kwargs: Any) -> None:
    raise ApplicationError("fuzz.error.raised", "the callee says no", len(args), sorted(kwargs))


@attrs.define(eq=False)
class Live:
    """The app, its Component and the peers, all up; :meth:`exchange` sends one request."""

    reactor: Any
    router: EmbeddedRouter
    web: WampWeb = attrs.field(init=False)
    backend: Any = attrs.field(init=False)
    callee: Peer = attrs.field(init=False)
    witness: Peer = attrs.field(init=False)
    port: int = 0
    nonces: Any = attrs.field(factory=lambda: itertools.count(int(time.time() * 1000)))
    barriers: Any = attrs.field(factory=itertools.count)
    #: Every failure logged in this process while the fuzz runs, summed up in a line.
    logged: list[str] = attrs.field(factory=list)

    def _observe(self, event: dict[str, Any]) -> None:
        failure = event.get("log_failure")
        if isinstance(failure, Failure):
            self.logged.append(summarize_failure(failure))

    @property
    def peers(self) -> tuple[Peer, Peer]:
        return (self.callee, self.witness)

    async def start(self) -> None:
        reactor, router = self.reactor, self.router
        globalLogPublisher.addObserver(self._observe)
        self.web = WampWeb(
            listen="tcp:0:interface=127.0.0.1", reactor=reactor, call_timeout=CALL_TIMEOUT
        )
        transport = {"url": router.url, "initial_retry_delay": 0.5, "max_retry_delay": 2.0}
        self.backend = self.web.add_component(
            "default", Component(transports=[transport], realm=REALM)
        )
        for mount in MOUNTS:
            self.web.mount(mount.path, BridgeResource(self.backend, mount.settings(reactor)))
        self.web.add_health_routes()

        retry = {"initial_retry_delay": 0.1, "max_retry_delay": 0.5, "retry_delay_jitter": 0.1}
        self.callee = Peer.create(
            "JSON callee", {"url": router.url, "serializers": ["json"], **retry}
        )

        def slow(*args: Any, **kwargs: Any) -> Deferred[dict[str, Any]]:
            return deferLater(reactor, SLOW_SECONDS, _echo, *args, **kwargs)

        def hang(*_args: Any, **_kwargs: Any) -> Deferred[None]:
            return Deferred(lambda d: None)

        register = self.callee.component.register
        register("fuzz.echo")(_echo)
        register("fuzz.fail")(_fail)
        register("fuzz.slow")(slow)
        register("fuzz.hang")(hang)
        register("fuzz.prefix.", options=RegisterOptions(match="prefix"))(_echo)
        rawsocket = {
            "type": "rawsocket",
            "url": router.rawsocket_url,
            "serializer": "msgpack",
            **retry,
        }
        self.witness = Peer.create("msgpack witness", rawsocket)
        for peer in self.peers:
            peer.start(reactor)
        self.web.startService()
        await within(self.backend.wait_for_session(20.0), 21, "wampweb joining", reactor)
        for peer in self.peers:
            await within(peer.ready, 20, f"{peer.name} joining", reactor)
        assert self.web.port is not None
        self.port = self.web.port.getHost().port

    async def stop(self) -> None:
        globalLogPublisher.removeObserver(self._observe)
        await self.web.stopService()
        for peer in self.peers:
            if peer.done is not None and not peer.done.called:
                await peer.component.stop()

    # -- one request ---------------------------------------------------------------------

    async def exchange(self, request: FuzzRequest) -> Exchange:
        # A peer broken by an earlier request rejoins first: every request meets the same
        # system, so hypothesis can replay (and shrink) the one that broke it.
        deadline = time.monotonic() + 20.0
        while not all(peer.up for peer in self.peers) and time.monotonic() < deadline:
            await deferLater(self.reactor, 0.02, lambda: None)
        before = self.state()
        logged_before = len(self.logged)
        raw = request.render(now=datetime.now(UTC), nonce=next(self.nonces))
        started = time.monotonic()
        answer: Answer | str
        if request.hang_up_after is not None:
            answer = await send_and_hang_up(self.reactor, self.port, raw, request.hang_up_after)
        else:
            answer = await send_raw(self.reactor, self.port, raw, ANSWER_BOUND)
        elapsed = time.monotonic() - started
        replayed: Answer | str | None = None
        if request.signing is not None and request.signing.replay:
            replayed = await send_raw(self.reactor, self.port, raw, ANSWER_BOUND)
        delivered = await self._barrier(answer, request, before)
        logged = tuple(self.logged[logged_before:])
        logged += tuple(
            f"{peer.name} left: {peer.last_leave}"
            for peer in self.peers
            if peer.leaves != before.leaves(peer.name)
        )
        return Exchange(raw, answer, elapsed, replayed, delivered, before, self.state(), logged)

    async def _barrier(
        self, answer: Answer | str, request: FuzzRequest, before: State
    ) -> frozenset[str]:
        """
        After anything that may have published: publish a barrier and wait until every
        witness has it (events from one publisher on one subscription arrive in order), so
        that a payload that breaks a peer is caught on the request that sent it. Answers
        the peers that got the publication the request expected delivered.
        """
        if not isinstance(answer, Answer) or not 200 <= answer.status < 300:
            return frozenset()
        if not self.backend.ready:
            return frozenset()
        number = next(self.barriers)
        try:
            await self.backend.publish("fuzz.barrier", [number])
        except Exception:  # the state check reports a session that went away
            return frozenset()
        waiting = [peer for peer in self.peers if before.up(peer.name)]
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            waiting = [
                peer
                for peer in waiting
                if peer.barrier < number and peer.leaves == before.leaves(peer.name)
            ]
            if not waiting:
                break
            await deferLater(self.reactor, 0.002, lambda: None)
        publication = request.expect.publication_of(answer)
        if publication is None:
            return frozenset()
        return frozenset(peer.name for peer in self.peers if publication in peer.publications)

    def state(self) -> State:
        try:
            session_id = self.backend.session_now().session_id
        except Exception:
            session_id = None
        return State(
            session_id=session_id,
            joins=self.backend.tracker.join_count,
            peers=tuple((peer.name, peer.joins, peer.leaves) for peer in self.peers),
        )


def summarize_failure(failure: Failure) -> str:
    """The exception and where in wampweb (or else at all) it was raised, on one line."""
    frames = failure.frames
    ours = [frame for frame in frames if "/wampweb/" in frame[1]]
    function, filename, line = (ours or frames or [("?", "?", 0)])[-1][:3]
    message = str(failure.value).splitlines()[0][:100] if str(failure.value) else ""
    where = f"{function} at {os.path.basename(filename)}:{line}"
    return f"{type(failure.value).__name__} in {where}: {message}"


@attrs.frozen
class State:
    session_id: int | None
    joins: int
    #: (name, joins, leaves) of each peer.
    peers: tuple[tuple[str, int, int], ...]

    def _peer(self, name: str) -> tuple[int, int]:
        for peer, joins, leaves in self.peers:
            if peer == name:
                return joins, leaves
        raise KeyError(name)

    def up(self, name: str) -> bool:
        joins, leaves = self._peer(name)
        return joins > leaves

    def leaves(self, name: str) -> int:
        return self._peer(name)[1]


# -- raw HTTP ---------------------------------------------------------------------------------


@attrs.frozen
class Answer:
    status: int
    headers: dict[bytes, list[bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = self.headers.get(name)
        return values[0] if values else None


class _MalformedAnswerError(Exception):
    pass


def _dechunk(data: bytes) -> bytes | None:
    body, pos = bytearray(), 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(data[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            return bytes(body) if data.find(b"\r\n", pos) >= 0 else None
        if len(data) < pos + size + 2:
            return None
        body += data[pos : pos + size]
        pos += size + 2


def parse_answer(data: bytes, *, closed: bool) -> Answer | None:
    """The final answer in ``data`` (1xx skipped), or None while it is incomplete."""
    rest = data
    while True:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            if closed:
                raise _MalformedAnswerError(f"no complete head in {data[:200]!r}")
            return None
        status_line, *lines = rest[:end].split(b"\r\n")
        rest = rest[end + 4 :]
        version, status_text, *_ = [*status_line.split(b" ", 2), b""]
        if not version.startswith(b"HTTP/1.") or not status_text.isdigit():
            raise _MalformedAnswerError(f"bad status line {status_line!r}")
        status = int(status_text)
        headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if 100 <= status < 200:
            continue
        encoding = headers.get(b"transfer-encoding", [b""])[-1].lower()
        if b"chunked" in encoding:
            body = _dechunk(rest)
        elif b"content-length" in headers:
            length = int(headers[b"content-length"][0])
            body = rest[:length] if len(rest) >= length else None
        else:
            body = rest if closed else None
        if body is None and closed:
            raise _MalformedAnswerError(f"truncated body after {status_line!r}")
        return None if body is None else Answer(status, headers, body)


class _RawClient(Protocol):
    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = bytearray()
        self.finished: Deferred[Answer | str] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self._settle(closed=False)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._settle(closed=True)

    def _settle(self, *, closed: bool) -> None:
        if self.finished.called:
            return
        if closed and not self.received:
            self.finished.callback("the connection closed with no answer")
            return
        try:
            answer = parse_answer(bytes(self.received), closed=closed)
        except (_MalformedAnswerError, ValueError) as error:
            self.finished.callback(f"malformed HTTP answer: {error}")
            return
        if answer is None and closed:
            self.finished.callback("the connection closed with no answer")
        elif answer is not None:
            self.finished.callback(answer)
            if not closed and self.transport is not None:
                self.transport.loseConnection()


#: What an exchange answers when the client hung up on purpose.
ABANDONED = "abandoned by the client"


async def send_and_hang_up(reactor: Any, port: int, payload: bytes, after: float) -> str:
    """Send a request and close the connection ``after`` seconds later, answered or not."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=ANSWER_BOUND)
    try:
        client = await connectProtocol(endpoint, Protocol())
    except Exception as error:
        return f"could not connect: {error}"
    assert client.transport is not None
    client.transport.write(payload)
    await deferLater(reactor, after, lambda: None)
    client.transport.loseConnection()
    return ABANDONED


async def send_raw(reactor: Any, port: int, payload: bytes, bound: float) -> Answer | str:
    """One request on a connection of its own: the answer, or what went wrong."""
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=bound)
    try:
        client = await connectProtocol(endpoint, _RawClient(payload))
    except Exception as error:
        return f"could not connect: {error}"

    def give_up() -> None:
        if not client.finished.called:
            client.finished.callback(f"no answer within {bound:g} s")
        if client.transport is not None:
            client.transport.abortConnection()

    timer = reactor.callLater(bound, give_up)
    try:
        return await client.finished
    finally:
        if timer.active():
            timer.cancel()


# -- requests ---------------------------------------------------------------------------------


class Auto(enum.Enum):
    """A signing field filled in at send time, correctly."""

    RIGHT = "right"


SigningField = bytes | Auto | None  # None: left out


@attrs.frozen
class Signing:
    """How a request is signed; the right timestamp, nonce and signature need the send time."""

    key: SigningField = Auto.RIGHT
    timestamp: SigningField = Auto.RIGHT
    seq: SigningField = Auto.RIGHT
    nonce: SigningField = Auto.RIGHT
    signature: SigningField = Auto.RIGHT
    #: Sign another body than the one sent.
    tamper_body: bool = False
    #: Send the very same bytes again: the repeat must be refused.
    replay: bool = False

    @property
    def right(self) -> bool:
        fields = (self.key, self.timestamp, self.seq, self.nonce, self.signature)
        return all(field is Auto.RIGHT for field in fields) and not self.tamper_body

    def query(self, body: bytes, now: datetime, nonce: int) -> list[tuple[bytes, bytes]]:
        values = {
            b"key": SIGNING_KEY.encode(),
            b"timestamp": (now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z").encode(),
            b"seq": b"1",
            b"nonce": str(nonce).encode(),
        }
        chosen: dict[bytes, bytes | None] = {}
        for name in values:
            field = getattr(self, name.decode())
            chosen[name] = values[name] if field is Auto.RIGHT else field
        signed = body + b"x" if self.tamper_body else body
        mac = hmac.new(SIGNING_SECRET, None, hashlib.sha256)
        for name in values:
            mac.update(chosen[name] or b"")
        mac.update(signed)
        signature = base64.urlsafe_b64encode(mac.digest())
        chosen[b"signature"] = signature if self.signature is Auto.RIGHT else self.signature
        return [(name, value) for name, value in chosen.items() if value is not None]


class Outcome(enum.Enum):
    """What a request generated as valid must get."""

    ANY = "any"
    PUBLISHED = "published"
    ECHOED = "echoed"
    REFUSED_BY_CALLEE = "refused by the callee"
    HOOKED = "hooked"


@attrs.frozen
class Expectation:
    outcome: Outcome = Outcome.ANY
    #: For ECHOED: the JSON the answer must equal.
    answer: str | None = None
    #: For PUBLISHED: whether both witnesses must get the event.
    delivered: bool = False

    def publication_of(self, answer: Answer) -> int | None:
        if self.outcome is not Outcome.PUBLISHED or not self.delivered:
            return None
        try:
            publication = json.loads(answer.body)["id"]
        except (ValueError, KeyError, TypeError):
            return None
        return publication if isinstance(publication, int) else None


def _shorten(data: bytes, limit: int) -> str:
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r} + ... ({len(data)} bytes)"


@attrs.frozen
class FuzzRequest:
    method: bytes
    path: bytes
    #: Raw, already-encoded query parameters (name, value), before any signing ones.
    query: tuple[tuple[bytes, bytes], ...] = ()
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = attrs.field(default=b"", repr=lambda body: _shorten(body, 400))
    #: Send the body in chunks of this size (Transfer-Encoding: chunked) instead of whole.
    chunked: int | None = None
    signing: Signing | None = None
    expect: Expectation = Expectation()
    #: Close the connection this many seconds after sending, without reading the answer.
    hang_up_after: float | None = None

    @property
    def mount(self) -> Mount | None:
        segments = [unquote_to_bytes(segment) for segment in self.path.split(b"/")]
        path = b"/".join(segments).decode("latin-1")
        for mount in MOUNTS:
            if path == mount.path or path.startswith(mount.path + "/"):
                return mount
        return None

    def render(self, *, now: datetime, nonce: int) -> bytes:
        """The bytes on the wire (the signature is computed now, with a fresh nonce)."""
        query = list(self.query)
        if self.signing is not None:
            signing = self.signing.query(self.body, now, nonce)
            query = [(n, quote_from_bytes(v, safe="").encode()) for n, v in signing] + query
        target = self.path
        if query:
            target += b"?" + b"&".join(name + b"=" + value for name, value in query)
        head = [
            self.method + b" " + target + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Connection: close",
        ]
        head += [name + b": " + value for name, value in self.headers]
        if self.chunked is None:
            head.append(b"Content-Length: " + str(len(self.body)).encode())
            payload = self.body
        else:
            head.append(b"Transfer-Encoding: chunked")
            size = self.chunked
            chunks = [self.body[i : i + size] for i in range(0, len(self.body), size)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        return b"\r\n".join(head) + b"\r\n\r\n" + payload


# -- checking ---------------------------------------------------------------------------------


@attrs.frozen
class Exchange:
    raw: bytes
    answer: Answer | str
    elapsed: float
    replayed: Answer | str | None
    delivered: frozenset[str]
    before: State
    after: State
    #: Failures logged meanwhile (see :func:`summarize_failure`).
    logged: tuple[str, ...] = ()


def violations(request: FuzzRequest, exchange: Exchange) -> list[str]:
    """Every property this exchange breaks, each as a short sentence."""
    found: list[str] = []
    answer = exchange.answer
    if answer == ABANDONED:
        pass
    elif isinstance(answer, str):
        found.append(answer)
    else:
        found += _answer_violations(request, answer)
        found += _expectation_violations(request, exchange, answer)
        if request.signing is not None and request.signing.right and answer.status == 401:
            found.append(f"a rightly signed request got 401: {answer.body[:200]!r}")
    if exchange.logged and any(problem.startswith("status 5") for problem in found):
        found = [
            f"{problem} ({exchange.logged[0]})" if problem.startswith("status 5") else problem
            for problem in found
        ]
    before, after = exchange.before, exchange.after
    if after.session_id != before.session_id:
        found.append(f"wampweb's session changed: {before.session_id} -> {after.session_id}")
    elif after.joins != before.joins:
        found.append(f"wampweb joined again ({after.joins} joins)")
    for name, _, leaves in after.peers:
        if leaves != before.leaves(name):
            why = next((line for line in exchange.logged if line.startswith(f"{name} left")), "")
            found.append(f"{name} lost its session: {why}")
    return found


def _answer_violations(request: FuzzRequest, answer: Answer) -> list[str]:
    found: list[str] = []
    status, body = answer.status, answer.body
    if status >= 500 and status not in (502, 503, 504):
        found.append(f"status {status}")
    if status in (429, 503) and not answer.header(b"retry-after"):
        found.append(f"{status} without Retry-After")
    for marker in LEAK_MARKERS:
        if marker in body:
            found.append(f"the body shows {marker.decode()!r}")
    mount = request.mount
    if mount is not None and mount.kind is BridgeKind.WEBHOOK and body in (b"OK", b"NOT OK"):
        if (status, body) not in ((202, b"OK"), (500, b"NOT OK")):
            found.append(f"webhook answer {body!r} with status {status}")
        return found
    if request.method == b"OPTIONS" and status == 200 and body == b"":
        return found
    try:
        parsed = json.loads(body.decode("utf-8"))
    except ValueError:
        found.append(f"the body is not JSON: {body[:120]!r}")
        return found
    content_type = (answer.header(b"content-type") or b"").lower()
    if not content_type.startswith(b"application/json"):
        found.append(f"a JSON body with Content-Type {content_type!r}")
    if status >= 400 and not _is_error_envelope(parsed):
        found.append(f"a {status} without the error envelope: {body[:120]!r}")
    return found


def _is_error_envelope(parsed: object) -> bool:
    return (
        isinstance(parsed, dict)
        and set(parsed) == {"error", "args", "kwargs"}
        and isinstance(parsed["error"], str)
        and isinstance(parsed["args"], list)
        and isinstance(parsed["kwargs"], dict)
    )


def _expectation_violations(request: FuzzRequest, exchange: Exchange, answer: Answer) -> list[str]:
    """What a request generated as valid must get, and a replay of it must not."""
    expect, mount = request.expect, request.mount
    if expect.outcome is Outcome.ANY or mount is None:
        return []
    try:
        parsed = json.loads(answer.body)
    except ValueError:
        parsed = None
    got = f"{answer.status} {answer.body[:300]!r}"
    found: list[str] = []
    if expect.outcome is Outcome.PUBLISHED:
        status = 202 if mount.legacy_202 else 200
        if answer.status != status or not isinstance(parsed, dict) or set(parsed) != {"id"}:
            found.append(f"a valid publish got {got}")
        elif expect.delivered:
            found += _undelivered(parsed["id"], exchange)
    elif expect.outcome is Outcome.ECHOED:
        if answer.status != 200 or parsed != json.loads(expect.answer or "null"):
            found.append(f"a valid call got {got}, not {expect.answer}")
    elif expect.outcome is Outcome.REFUSED_BY_CALLEE:
        status = 200 if mount.mode is BridgeMode.CROSSBAR else 502
        refused = _is_error_envelope(parsed) and parsed["error"] == "fuzz.error.raised"
        if answer.status != status or not refused:
            found.append(f"a call the callee refuses got {got}")
    elif (answer.status, answer.body) != (202, b"OK"):
        found.append(f"a webhook got {got}")
    replayed = exchange.replayed
    replay_refused = isinstance(replayed, Answer) and replayed.status == 401
    if replayed is not None and 200 <= answer.status < 300 and not replay_refused:
        shown = replayed if isinstance(replayed, str) else replayed.status
        found.append(f"a replayed signed request got {shown}, not 401")
    return found


def _undelivered(publication: object, exchange: Exchange) -> list[str]:
    """Every peer that was up throughout and still did not get the publication."""
    before = exchange.before
    stayed = {
        name
        for name, _, leaves in exchange.after.peers
        if before.up(name) and leaves == before.leaves(name)
    }
    missing = stayed - exchange.delivered
    return [f"publication {publication} never reached {sorted(missing)}"] if missing else []


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True once in ``one_in`` draws; False when shrunk (hypothesis shrinks toward 1)."""
    return draw(st.integers(1, one_in)) == one_in


# -- strategies: JSON, raw --------------------------------------------------------------------

_VALID_URIS = ("fuzz.a", "fuzz.b.c", "fuzz.echo", "fuzz.äöü", "fuzz.x-y_z", "fuzz.1.2.3")
_CALL_URIS = (
    "fuzz.echo",
    "fuzz.echo",
    "fuzz.fail",
    "fuzz.slow",
    "fuzz.prefix.any",
    "fuzz.nope",
    "fuzz.hang",
    "wamp.session.count",
    "wamp.registration.list",
)
_ODD_URIS = (
    "",
    ".",
    "a..b",
    ".a",
    "a.",
    "a b",
    "a#b",
    "a\tb",
    "wamp.x",
    "wamp.session.on_join",
    "\u00a0",
    "a.\u3000",
    "x" * 600,
    "fuzz." + "y." * 300 + "z",
)
_SPECIAL_NUMBERS = (
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1E+999",
    "-0",
    "-0.0",
    "0e0",
    "4.9e-324",
    "1e-400",
    "1.7976931348623157e308",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "9007199254740993",
    "01",
    "1.",
    ".5",
    "+1",
    "0x10",
    "1_000",
)
_SPECIAL_STRINGS = (
    r'"\ud800"',
    r'"\udfff"',
    r'"x\ud800"',
    r'"\udc00\ud800"',
    r'"\ud83d\ude00"',
    r'"\uDBFF\uDFFF"',
    r'"\u0000"',
    r'"\u0000abc"',
    r'"\u0000AAAA"',
    r'"a\u0000"',
    r'"0x00ff"',
    r'"\x"',
    r'"\u12"',
    '"unterminated',
    '"tab\there"',
    r'"\/"',
    '"\u2028\u2029"',
    '"\U0001f600"',
)
_KEYS = (
    '"a"',
    '"b"',
    '"options"',
    '"topic"',
    '"procedure"',
    '"self"',
    '"args"',
    '"kwargs"',
    '"details"',
    '"timeout"',
    '""',
    r'"\u0000k"',
    r'"\ud800"',
    '"' + DETAILS_ARG + '"',
)
_WRONG_TYPES = (
    '"abc"',
    "1",
    "{}",
    "[]",
    "null",
    "false",
    "true",
    "0",
    '""',
    '{"a":1}',
    "[1]",
    "1.5",
)


def _text_json(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)


_json_text = st.builds(_text_json, st.text(max_size=24), st.booleans())
_huge_int = st.builds(
    lambda sign, lead, count: sign + str(lead) + "7" * count,
    st.sampled_from(["", "-"]),
    st.integers(1, 9),
    st.one_of(st.integers(18, 40), st.sampled_from([400, 4299, 4300, 5000])),
)


@st.composite
def _deep(draw: st.DrawFn) -> str:
    depth = draw(st.one_of(st.integers(1, 40), st.sampled_from([31, 32, 33, 1000, 20_000])))
    kind = draw(st.sampled_from(["[", "{", "mixed", "open"]))
    if kind == "[":
        return "[" * depth + "]" * depth
    if kind == "{":
        return '{"a":' * depth + "1" + "}" * depth
    if kind == "mixed":
        return '[{"a":' * (depth // 2) + "[]" + "}]" * (depth // 2)
    return "[" * depth


_leaf = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    st.integers(INT_MIN, INT_MAX).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    _json_text,
    st.sampled_from(_SPECIAL_NUMBERS),
    st.sampled_from(_SPECIAL_STRINGS),
    _huge_int,
    _deep(),
)
_key = st.one_of(st.sampled_from(_KEYS), _json_text)


def _containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(children, max_size=5).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(_key, children), max_size=5).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    )
    return arrays | objects


#: Raw JSON text, sometimes not JSON at all, sometimes JSON that no WAMP peer can carry.
json_fragments = st.recursive(_leaf, _containers, max_leaves=16)


def _object_of(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


_OPTION_NAMES = (
    "exclude_me",
    "retain",
    "exclude",
    "eligible",
    "exclude_authid",
    "exclude_authrole",
    "eligible_authid",
    "eligible_authrole",
    "forward_for",
    "acknowledge",
    "timeout",
    "receive_progress",
    "disclose_me",
    "match",
)
_option_values = st.one_of(
    st.sampled_from(["true", "false", "[]", "[1,2]", '["x"]', "0.05", "-1", "1e-9", "1000", "3"]),
    st.sampled_from(['[{"session":1,"authid":"a","authrole":"b"}]', "[9007199254740993]"]),
    json_fragments,
)
_options = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(_OPTION_NAMES).map(json.dumps), _option_values), max_size=3
    ).map(_object_of),
    st.sampled_from(_WRONG_TYPES),
)
_uri_fragment = st.one_of(
    st.sampled_from(_VALID_URIS + _CALL_URIS).map(json.dumps),
    st.sampled_from(_ODD_URIS).map(json.dumps),
    _json_text,
    st.sampled_from(_SPECIAL_STRINGS + _WRONG_TYPES),
)
_args_fragment = st.one_of(
    st.lists(json_fragments, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
    st.sampled_from(_WRONG_TYPES),
    json_fragments,
)
_kwargs_fragment = st.one_of(
    st.lists(st.tuples(_key, json_fragments), max_size=4).map(_object_of),
    st.sampled_from(_WRONG_TYPES),
)


@st.composite
def bridge_bodies(draw: st.DrawFn) -> bytes:
    """A body shaped like a bridge request, with every part possibly wrong."""
    pairs: list[tuple[str, str]] = []
    if draw(st.integers(0, 9)):
        name = draw(st.sampled_from(["topic", "procedure", "topic", "procedure", "uri"]))
        pairs.append((json.dumps(name), draw(_uri_fragment)))
    if draw(st.booleans()):
        pairs.append(('"args"', draw(_args_fragment)))
    if draw(st.booleans()):
        pairs.append(('"kwargs"', draw(_kwargs_fragment)))
    if _rarely(draw, 4):
        pairs.append(('"options"', draw(_options)))
    pairs += draw(st.lists(st.tuples(_key, json_fragments), max_size=2))
    if pairs and _rarely(draw, 8):
        pairs.append(draw(st.sampled_from(pairs)))  # a key twice
    pairs = list(draw(st.permutations(pairs)))
    text = _object_of(pairs)
    return _mangle(draw, text.encode("utf-8"))


def _mangle(draw: st.DrawFn, body: bytes) -> bytes:
    how = draw(st.integers(0, 19))  # mostly (and when shrunk) unchanged
    if how == 19 and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if how == 18:
        return body + draw(st.sampled_from([b"x", b"}", b"\x00", b" \n", b",", b"\xff"]))
    if how == 17:
        return b"\xef\xbb\xbf" + body
    if how == 16:
        encoding = draw(st.sampled_from(["utf-16", "utf-32", "latin-1"]))
        return body.decode("utf-8", "replace").encode(encoding, "replace")
    if how == 15:
        return b" \t\r\n" + body + b"\n"
    return body


_big_bodies = st.sampled_from([64, 65, DEFAULT_BODY_LIMIT - 40, DEFAULT_BODY_LIMIT]).map(
    lambda size: b'{"topic":"fuzz.big","args":["' + b"x" * size + b'"]}'
)

#: Any body at all.
bodies = st.one_of(
    bridge_bodies(),
    bridge_bodies(),
    bridge_bodies(),
    st.binary(max_size=200),
    json_fragments.map(lambda text: text.encode("utf-8")),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'"topic"', b"\x00", b"\xff\xfe{}"]),
    _big_bodies,
)


# -- strategies: HTTP -------------------------------------------------------------------------

#: Header values: any byte Twisted's HTTP parser takes (not NUL, CR, LF: those get its
#: own bare 400), mostly printable ASCII.
_header_text = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.text(st.characters(min_codepoint=1, max_codepoint=0xFF, exclude_characters="\r\n")),
).map(lambda text: text.strip(" \t").encode("latin-1"))
_CONTENT_TYPES = (
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/json;charset=UTF-8",
    b"APPLICATION/JSON; CHARSET=utf8",
    b"application/json ; charset = utf-8",
    b"application/json; charset=latin-1",
    b'application/json; charset="utf-8"',
    b"application/json; charset",
    b"application/json; charset=utf-8; charset=utf-8",
    b"application/json;;;",
    b"application/json; a=b=c",
    b"application/json; charset=utf-8=x",
    b"application/jsonx",
    b"text/plain",
    b"text/plain; charset=utf-8",
    b"",
    b";",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=xyz",
)
_content_types = st.one_of(st.sampled_from(_CONTENT_TYPES), _header_text)
_origins = st.one_of(
    st.sampled_from(
        [b"null", ALLOWED_ORIGIN.encode(), b"https://evil.test", b"HTTPS://APP.EXAMPLE.COM:443"]
    ),
    _header_text,
)
_addresses = st.one_of(
    st.sampled_from(
        [
            b"10.1.2.3",
            b"8.8.8.8",
            b"10.1.2.3, 127.0.0.1",
            b"8.8.8.8, 10.0.0.1",
            b"::1",
            b"[::1]:80",
            b"unknown",
            b"300.1.1.1",
            b",,,",
            b"::ffff:10.0.0.1",
        ]
    ),
    _header_text,
)
_timeouts = st.one_of(
    st.sampled_from(
        [b"0.05", b"0.2", b"1", b"0", b"-1", b"nan", b"inf", b"1e-9", b"1e999", b"3", b"4"]
    ),
    _header_text,
)
_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12)
_OPTIONAL_HEADERS: tuple[tuple[bytes, st.SearchStrategy[bytes]], ...] = (
    (b"Origin", _origins),
    (b"X-Forwarded-For", _addresses),
    (b"Forwarded", _header_text.map(lambda v: b"for=" + v)),
    (b"X-Forwarded-Proto", st.sampled_from([b"https", b"http", b"gopher"])),
    (b"Expect", st.sampled_from([b"100-continue", b"100-Continue", b"nonsense"])),
    (b"X-Request-Timeout", _timeouts),
    (b"X-Hub-Signature", _header_text.map(lambda v: b"sha1=" + v)),
    (b"X-Hub-Signature-256", _header_text.map(lambda v: b"sha256=" + v)),
    (b"Access-Control-Request-Headers", _header_text),
    (b"Access-Control-Request-Method", st.sampled_from([b"POST", b"GET", b"DELETE"])),
    (b"Accept", st.sampled_from([b"*/*", b"text/html", b"application/json"])),
)


@st.composite
def header_sets(draw: st.DrawFn) -> tuple[tuple[bytes, bytes], ...]:
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 4)):
        headers.append((b"Content-Type", draw(_content_types)))
    if _rarely(draw, 10):
        headers.append((b"Content-Type", draw(_content_types)))  # twice
    for name, values in _OPTIONAL_HEADERS:
        if _rarely(draw, 6):
            for _ in range(draw(st.integers(1, 2))):
                headers.append((name, draw(values)))
    for _ in range(draw(st.integers(0, 2))):
        headers.append((b"X-" + draw(_token).encode(), draw(_header_text)))
    return tuple(draw(st.permutations(headers)))


_QUERY_NAMES = (b"key", b"timestamp", b"seq", b"nonce", b"signature")


def _now_ish(offset: float) -> bytes:
    when = datetime.now(UTC) + timedelta(seconds=offset)
    return (when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z").encode()


_query_values = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [
            b"",
            b"1",
            b"+1",
            b" 1 ",
            b"1_000",
            b"0x10",
            "\u0661".encode(),
            b"-0",
            b"9" * 5000,
            b"2011-10-14T16:59:51.123Z",
            b"2011-10-14T16:59:51Z",
            b"2011-10-14 16:59:51",
            b"9999-12-31T23:59:59.999999Z",
            b"0001-01-01T00:00:00.0Z",
            b"2024-02-30T00:00:00.0Z",
            SIGNING_KEY.encode(),
            b"CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA=",
        ]
    ),
    st.integers(1, 3000).map(lambda n: b"z" * n),
    st.sampled_from([-100_000.0, -301.0, -1.0, 0.0, 299.0, 301.0]).map(_now_ish),
)


@st.composite
def query_strings(draw: st.DrawFn) -> tuple[tuple[bytes, bytes], ...]:
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.one_of(st.sampled_from(_QUERY_NAMES), st.binary(min_size=1, max_size=8)))
        value = draw(_query_values)
        safe = draw(st.sampled_from(["", "/:@", "=&+"]))
        encoded = quote_from_bytes(value, safe=safe).encode()
        if _rarely(draw, 10):
            encoded += draw(st.sampled_from([b"%", b"%zz", b"%e2%82", b"%00", b"+"]))
        pairs.append((quote_from_bytes(name, safe="").encode(), encoded))
    # Twisted answers a request head over 16 kB with a bare 400 of its own.
    while sum(len(n) + len(v) for n, v in pairs) > 9000:
        pairs.pop()
    return tuple(pairs)


_signing_fields = st.one_of(
    st.just(Auto.RIGHT),
    st.just(Auto.RIGHT),
    st.none(),
    st.binary(max_size=20),
    _query_values,
)
signings = st.builds(
    Signing,
    key=_signing_fields,
    timestamp=_signing_fields,
    seq=_signing_fields,
    nonce=_signing_fields,
    signature=_signing_fields,
    tamper_body=st.booleans(),
    replay=st.booleans(),
)
_METHODS = (b"POST", b"POST", b"POST", b"PUT", b"GET", b"OPTIONS", b"DELETE", b"PATCH")


@st.composite
def paths(draw: st.DrawFn) -> bytes:
    mount = draw(st.sampled_from(MOUNTS)).path.encode()
    if _rarely(draw, 10):  # the same path, some letters percent-encoded
        mount = b"".join(
            b"%%%02X" % c if c != ord("/") and draw(st.booleans()) else bytes([c]) for c in mount
        )
    tail = draw(st.sampled_from([b"", b"", b"", b"/", b"/extra", b"/a/b"]))
    return mount + tail


@st.composite
def fuzzed_requests(draw: st.DrawFn) -> FuzzRequest:
    """Anything goes: no promise but the properties every answer keeps."""
    path = draw(paths())
    if _rarely(draw, 40):
        return FuzzRequest(b"GET", b"/health", headers=draw(header_sets()))
    mount = FuzzRequest(b"POST", path).mount
    assert mount is not None
    signing = draw(signings) if mount.signed and draw(st.integers(0, 3)) else None
    body = draw(bodies)
    chunked = draw(st.sampled_from([1, 7, 1000])) if _rarely(draw, 10) else None
    hang_up = draw(st.sampled_from([0.0, 0.01, 0.2])) if _rarely(draw, 20) else None
    return FuzzRequest(
        method=draw(st.sampled_from(_METHODS)),
        path=path,
        query=draw(query_strings()),
        headers=draw(header_sets()),
        body=body,
        chunked=chunked,
        signing=signing,
        hang_up_after=hang_up,
    )


# -- strategies: valid requests ---------------------------------------------------------------

_safe_text = st.text(max_size=16).filter(lambda text: not text.startswith("\x00"))
_safe_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT_MIN, INT_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    _safe_text,
)
safe_values = st.recursive(
    _safe_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_safe_text, children, max_size=4)
    ),
    max_leaves=12,
)
safe_args = st.lists(safe_values, max_size=4)
#: Keyword names Autobahn's publish() and call() take for themselves: not valid kwargs.
_TAKEN_NAMES = frozenset({"options", "topic", "procedure", "self"})
safe_kwargs = st.dictionaries(
    _safe_text.filter(lambda key: key not in _TAKEN_NAMES), safe_values, max_size=4
)
_uri_part = st.text(
    alphabet=st.characters(blacklist_categories=("Z", "Cc", "Cs"), blacklist_characters=".#"),
    min_size=1,
    max_size=6,
)
valid_topics = st.one_of(
    st.sampled_from(_VALID_URIS),
    st.lists(_uri_part, min_size=1, max_size=3).map(lambda parts: "fuzz." + ".".join(parts)),
)
_GOOD_CONTENT_TYPES = (
    None,
    b"application/json",
    b"application/json; charset=utf-8",
    b"Application/JSON;charset=UTF8",
)
#: Headers that must not change a valid request's fate on an unguarded mount.
_harmless_headers = st.lists(
    st.one_of(
        st.tuples(st.just(b"Origin"), _origins),
        st.tuples(st.just(b"X-Forwarded-For"), _addresses),
        st.tuples(st.just(b"Expect"), st.just(b"100-continue")),
        st.tuples(_token.map(lambda t: b"X-" + t.encode()), _header_text),
    ),
    max_size=3,
)


@st.composite
def valid_requests(draw: st.DrawFn) -> FuzzRequest:
    """A request that must succeed, with what its answer must be."""
    kind = draw(st.sampled_from([_PUB, _PUB, _CALL, _CALL, _HOOK]))
    mount = draw(st.sampled_from([m for m in MOUNTS if m.kind is kind and m.accepts_valid]))
    headers = list(draw(_harmless_headers))
    content_type = draw(st.sampled_from(_GOOD_CONTENT_TYPES))
    if kind is _HOOK:
        text = draw(st.text(max_size=200).filter(lambda text: not text.startswith("\x00")))
        if content_type is not None or draw(st.booleans()):
            headers.append((b"Content-Type", draw(st.sampled_from([b"text/plain", b"a/b"]))))
        return FuzzRequest(
            b"POST",
            mount.path.encode(),
            headers=tuple(headers),
            body=text.encode("utf-8"),
            expect=Expectation(Outcome.HOOKED),
        )
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    args, kwargs = draw(safe_args), draw(safe_kwargs)
    if _rarely(draw, 40):  # big, but under the body limit: carried whole
        args = ["x" * draw(st.sampled_from([70_000, 300_000, DEFAULT_BODY_LIMIT - 2000]))]
        kwargs = {}
    body: dict[str, Any] = {}
    if kind is _PUB:
        body["topic"] = draw(valid_topics)
        options = draw(
            st.sampled_from(
                [
                    None,
                    {},
                    [],
                    {"exclude_me": True},
                    {"retain": False},
                    {"exclude": []},
                    {"eligible": [1]},
                ]
            )
        )
        expect = Expectation(
            Outcome.PUBLISHED, delivered=not (isinstance(options, dict) and "eligible" in options)
        )
        if options is not None:
            body["options"] = options
    else:
        procedure = draw(st.sampled_from(["fuzz.echo", "fuzz.slow", "fuzz.prefix.x", "fuzz.fail"]))
        body["procedure"] = procedure
        if procedure == "fuzz.fail":
            expect = Expectation(Outcome.REFUSED_BY_CALLEE)
        else:
            echoed = {"args": [{"args": args, "kwargs": kwargs}]}
            expect = Expectation(Outcome.ECHOED, answer=json.dumps(echoed))
    if args or draw(st.booleans()):
        body["args"] = args
    if kwargs or draw(st.booleans()):
        body["kwargs"] = kwargs
    raw = json.dumps(body, ensure_ascii=draw(st.booleans())).encode("utf-8")
    signing = None
    if mount.signed:
        signing = Signing(replay=draw(st.booleans()))
    return FuzzRequest(
        method=draw(st.sampled_from([b"POST", b"PUT"])),
        path=mount.path.encode(),
        headers=tuple(headers),
        body=raw,
        chunked=draw(st.sampled_from([None, None, None, 5])),
        signing=signing,
        expect=expect,
    )


_HOLE = "\u0001fuzz-hole\u0001"
_INTERESTING_KEYS = (
    "topic",
    "procedure",
    "self",
    "options",
    "details",
    "args",
    "kwargs",
    "",
    DETAILS_ARG,
    "enc_algo",
    "callee",
)


@st.composite
def near_valid_requests(draw: st.DrawFn) -> FuzzRequest:
    """A valid request with one thing changed: the changes that get furthest in."""
    request = draw(valid_requests())
    if request.mount is not None and request.mount.kind is _HOOK:
        headers = request.headers + draw(header_sets())
        body = _mangle(draw, request.body)
        if _rarely(draw, 4):
            body = b"\x00" + body  # a NUL-led string breaks JSON peers
        return attrs.evolve(request, headers=headers, body=body, expect=Expectation())
    body = json.loads(request.body)
    uri_field = "topic" if "topic" in body else "procedure"
    raw: str | None = None  # raw JSON text put where the hole is
    how = draw(st.integers(0, 7))
    if how == 7 and uri_field == "topic":
        # Rightly signed, to a mount whose replay memory fills up: 200, then 503s.
        return attrs.evolve(
            request, path=b"/forgetful/publish", signing=Signing(), expect=Expectation()
        )
    if how == 0:
        key = draw(st.one_of(st.sampled_from(_INTERESTING_KEYS), _safe_text))
        body.setdefault("kwargs", {})[key] = draw(safe_values)
    elif how == 1:
        body.setdefault("args", []).append(_HOLE)
        raw = draw(_leaf)
    elif how == 2:
        kwargs = body["kwargs"] = dict(body.get("kwargs") or {})
        kwargs[draw(_safe_text)] = _HOLE
        raw = draw(json_fragments)
    elif how == 3:
        body[uri_field] = _HOLE
        raw = draw(_uri_fragment)
    elif how == 4:
        body["options"] = _HOLE
        raw = draw(_options)
    elif how == 5:
        del body[uri_field]
        body[draw(st.sampled_from(["topic", "procedure", "uri", ""]))] = draw(valid_topics)
    else:
        body[draw(st.sampled_from(["args", "kwargs", "options", "extra"]))] = _HOLE
        raw = draw(st.sampled_from(_WRONG_TYPES))
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    if raw is not None:
        text = text.replace(json.dumps(_HOLE, ensure_ascii=False), raw)
        text = text.replace(json.dumps(_HOLE), raw)
    headers = request.headers
    if _rarely(draw, 4):
        headers += draw(header_sets())
    return attrs.evolve(request, headers=headers, body=text.encode("utf-8"), expect=Expectation())


requests = st.one_of(fuzzed_requests(), fuzzed_requests(), valid_requests(), near_valid_requests())


# -- running it ---------------------------------------------------------------------------------


class ViolationError(AssertionError):
    """A property an answer must keep, broken."""


_VIOLATION_CLASSES: dict[str, type[ViolationError]] = {}


def violation_kind(problem: str) -> str:
    """What groups violations: the sentence before its details."""
    head = problem.split(":")[0].split(" (")[0][:60]
    cause = re.search(r"\((\w+ in \w+)", problem)
    return f"{head} ({cause.group(1)})" if cause else head


def violation_class(kind: str) -> type[ViolationError]:
    """
    One exception class per kind of violation: hypothesis tells failures apart by
    exception type, so it reports (and shrinks) each kind on its own.
    """
    if kind not in _VIOLATION_CLASSES:
        name = "".join(c if c.isalnum() else "_" for c in kind.title())[:80]
        _VIOLATION_CLASSES[kind] = type(f"Violation_{name}", (ViolationError,), {})
    return _VIOLATION_CLASSES[kind]


@attrs.define
class FuzzStats:
    cases: int = 0
    valid: int = 0
    statuses: Counter[str] = attrs.field(factory=Counter)
    violations: list[tuple[str, str]] = attrs.field(factory=list)
    kinds: Counter[str] = attrs.field(factory=Counter)

    def record(self, request: FuzzRequest, exchange: Exchange, found: list[str]) -> None:
        self.cases += 1
        if request.expect.outcome is not Outcome.ANY:
            self.valid += 1
        answer = exchange.answer
        if isinstance(answer, Answer):
            self.statuses[str(answer.status)] += 1
        else:
            self.statuses["hung up" if answer == ABANDONED else "none"] += 1
        for problem in found:
            kind = violation_kind(problem)
            self.kinds[kind] += 1
            if self.kinds[kind] <= 3:
                self.violations.append((problem, describe(request, exchange)))

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        return (
            f"cases={self.cases} (valid {self.valid}) statuses {{{statuses}}} "
            f"violations={sum(self.kinds.values())}"
        )


def describe(request: FuzzRequest, exchange: Exchange) -> str:
    answer = exchange.answer
    got = answer if isinstance(answer, str) else f"{answer.status} {answer.body[:300]!r}"
    return f"request {_shorten(exchange.raw, 800)}\nanswer {got}"


def run_fuzz(
    live: Live,
    *,
    cases: int,
    derandomize: bool,
    seed: int | None = None,
    stop_at_first: bool = True,
) -> FuzzStats:
    """
    Run hypothesis in this (worker) thread, sending each request through the reactor.
    With ``stop_at_first`` a violation fails the example and hypothesis shrinks it;
    otherwise violations are only counted.
    """
    from twisted.internet import reactor

    stats = FuzzStats()
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if stop_at_first else [])

    @settings(
        max_examples=cases,
        derandomize=derandomize,
        database=None,
        deadline=None,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(requests)
    def one(request: FuzzRequest) -> None:
        exchange: Exchange = blockingCallFromThread(
            reactor, lambda: Deferred.fromCoroutine(live.exchange(request))
        )
        found = violations(request, exchange)
        stats.record(request, exchange, found)
        if found and stop_at_first:
            note(describe(request, exchange))
            raise violation_class(violation_kind(found[0]))("; ".join(found))

    test: Callable[[], None] = one
    if seed is not None:
        test = hypothesis_seed(seed)(one)
    with warnings.catch_warnings():
        # The reactor thread draws random numbers (Autobahn's request IDs) while this
        # thread generates: hypothesis takes that for a strategy using `random`.
        warnings.filterwarnings(
            "ignore", "Do not use the `random` module", HypothesisDeprecationWarning
        )
        test()
    return stats


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


async def final_checks(live: Live, start: State, fds_before: int) -> list[str]:
    """What must hold once the fuzz is over: same session, nothing pending, healthy."""
    problems: list[str] = []
    state = live.state()
    if state.session_id != start.session_id:
        problems.append(f"wampweb's session changed: {start.session_id} -> {state.session_id}")
    if live.backend.tracker.join_count != 1:
        problems.append(f"wampweb joined {live.backend.tracker.join_count} times")
    for peer in live.peers:
        if not peer.healthy:
            problems.append(f"{peer.name}: {peer.joins} joins, {peer.leaves} leaves")
    root = live.web.resource()

    def pending() -> tuple[int, int]:
        return live.backend.operations.in_flight, getattr(root, "in_flight", 0)

    deadline = time.monotonic() + 3.0  # hung-up requests may take a moment to be noticed
    while pending() != (0, 0) and time.monotonic() < deadline:
        await deferLater(live.reactor, 0.05, lambda: None)
    operations, requests_in_flight = pending()
    if operations:
        problems.append(f"{operations} WAMP operations still in flight")
    if requests_in_flight:
        problems.append(f"{requests_in_flight} HTTP requests still in flight")
    health = FuzzRequest(b"GET", b"/health")
    answer = await send_raw(
        live.reactor, live.port, health.render(now=datetime.now(UTC), nonce=0), 5.0
    )
    if not isinstance(answer, Answer) or answer.status != 200:
        problems.append(f"GET /health answered {answer}")
    else:
        component = json.loads(answer.body)["components"]["default"]
        if component["state"] != "ready" or component["in_flight"] != 0:
            problems.append(f"GET /health says {component}")
    if open_fds() > fds_before + 50:
        problems.append(f"file descriptors grew from {fds_before} to {open_fds()}")
    return problems


@pytest.mark.slow
@pytest_twisted.ensureDeferred
async def test_no_generated_request_breaks_the_bridge_or_the_session(
    fresh_router: EmbeddedRouter,
) -> None:
    from twisted.internet import reactor

    live = Live(reactor, fresh_router)
    await live.start()
    try:
        start = live.state()
        fds_before = open_fds()
        started = time.monotonic()
        stats = await deferToThread(
            run_fuzz, live, cases=CI_CASES, derandomize=True, stop_at_first=True
        )
        print(f"\nfuzz: {stats.summary()} in {time.monotonic() - started:.1f} s")
        assert stats.cases >= CI_CASES // 2, stats.summary()
        assert await final_checks(live, start, fds_before) == []
    finally:
        await live.stop()


_JSON = ((b"Content-Type", b"application/json"),)

#: Requests this fuzz once found answered wrongly, as hypothesis shrank them.
FOUND: tuple[tuple[str, FuzzRequest], ...] = (
    (
        "a kwargs key named like publish()'s own parameter: a TypeError, a 500",
        FuzzRequest(b"POST", b"/cb/publish", (), _JSON, b'{"topic":"fuzz.a","kwargs":{"topic":1}}'),
    ),
    (
        "the same for call()",
        FuzzRequest(
            b"POST", b"/rest/call", (), _JSON, b'{"procedure":"fuzz.echo","kwargs":{"procedure":1}}'
        ),
    ),
    (
        "and for the bound method's self",
        FuzzRequest(b"POST", b"/cb/publish", (), _JSON, b'{"topic":"fuzz.a","kwargs":{"self":1}}'),
    ),
    (
        "a query parameter that is not UTF-8 once decoded: a 500 (fixed in 9d7c86a)",
        FuzzRequest(b"POST", b"/cb/publish", ((b"key", b"%80"),), _JSON, b'{"topic":"fuzz.a"}'),
    ),
    (
        "a webhook body that starts with NUL: every JSON subscriber loses its session",
        FuzzRequest(b"POST", b"/cb/webhook", body=b"\x00abc"),
    ),
    (
        "a multipart body Twisted cannot parse: its bare 400, no JSON",
        FuzzRequest(
            b"POST",
            b"/cb/webhook",
            headers=((b"Content-Type", b"multipart/form-data"),),
            body=b"hello",
        ),
    ),
    (
        "a Content-Type with a character str.splitlines() splits at: no answer at all",
        FuzzRequest(b"POST", b"/cb/publish", headers=((b"Content-Type", b"a\x0cb"),), body=b"{}"),
    ),
)


@pytest_twisted.ensureDeferred
async def test_the_requests_the_fuzz_found_keep_every_property(router: EmbeddedRouter) -> None:
    from twisted.internet import reactor

    live = Live(reactor, router)
    await live.start()
    try:
        broken = []
        for what, request in FOUND:
            exchange = await live.exchange(request)
            found = violations(request, exchange)
            if found:
                shown = describe(request, exchange).replace("\n", "\n    ")
                broken.append(f"{what}:\n    {'; '.join(found)}\n    {shown}")
        assert not broken, "\n".join(broken)
    finally:
        await live.stop()
