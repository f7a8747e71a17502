"""
wampweb's ``crossbar`` mode answers like Crossbar.io's own HTTP bridge, request for request.

One Crossbar.io router serves its HTTP bridge path services (publisher, caller, signed ones,
a body limit, ``require_ip``, ``require_tls``, webhooks); one wampweb app, joined to the same
router, serves the same mounts from the same options. Every request of the corpus
(``tests/conformance_corpus.py``) goes to both over real HTTP, and their status, parsed body
and CORS/cache headers (spec a.3) must be the same, unless the case lists the difference
wampweb makes on purpose. Publication ids are compared by shape; Python bytes reprs in error
strings (AR405, AR452) are compared loosely, as the spec asks.

Requests are written byte for byte by a small TCP client rather than an HTTP library, so both
servers get the same bytes, odd ones included (a duplicate ``Content-Length``, chunks of a
chosen size, ``Expect: 100-continue``). ``pytest -s`` prints a table of every case.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import pytest_twisted
from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from tests.conformance_corpus import (
    CASES,
    REALM,
    VECTOR_BODY,
    VECTOR_SIGNATURE,
    VECTOR_STANDARD,
    VECTOR_TIMESTAMP,
    WEBHOOK_TOPIC,
    Case,
    Raw,
    Signer,
    crossbar_paths,
    post,
    wampweb_bridge_tables,
)
from wampweb import WampWeb, app_from_config, parse_config
from wampweb._router import EmbeddedRouter
from wampweb._signing import compute_signature

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"
#: Bound on one request/answer exchange and on each startup step.
TIMEOUT = 15.0
#: The headers of spec a.3 (and the preflight's), compared on every answer.
COMPARED_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-headers",
    "allow",
    "access-control-allow-methods",
    "cache-control",
    "content-type",
)


# -- the callee -----------------------------------------------------------------------------


def _raise_app_error() -> None:
    raise ApplicationError("com.example.error.custom", "arg1", 2, detail={"x": [1]})


def _raise_bare_error() -> None:
    raise ApplicationError("com.example.error.bare")


def _raise_plain() -> None:
    raise Exception("don't ask foolish questions ;)")


PROCEDURES: dict[str, Callable[..., Any]] = {
    "conformance.single": lambda: 42,
    "conformance.none": lambda: None,
    "conformance.list": lambda: [1, 2, 3],
    "conformance.multi": lambda: CallResult(1, "two", 3.5),
    "conformance.kwargs_only": lambda: CallResult(a=1, b="two"),
    "conformance.args_and_kwargs": lambda: CallResult(1, 2, c=3),
    "conformance.empty": lambda: CallResult(),
    "conformance.unicode": lambda: "grüße ☃ \u2028",
    "conformance.echo": lambda *args, **kwargs: CallResult(*args, **kwargs),
    "conformance.app_error": _raise_app_error,
    "conformance.bare_error": _raise_bare_error,
    "conformance.plain_error": _raise_plain,
}

#: Topics whose events the callee keeps, for the event comparisons.
EVENT_TOPICS = (
    WEBHOOK_TOPIC.format(side="crossbar"),
    WEBHOOK_TOPIC.format(side="wampweb"),
    "conformance.events.crossbar",
    "conformance.events.wampweb",
)


@attrs.define
class Callee:
    """A plain Autobahn session, apart from both bridges: the procedures and subscriptions."""

    component: Component
    ready: Deferred[None]
    events: dict[str, DeferredQueue[tuple[tuple[Any, ...], dict[str, Any]]]]


def make_callee(router: EmbeddedRouter) -> Callee:
    component = Component(transports=router.url, realm=REALM)
    ready: Deferred[None] = Deferred()
    events: dict[str, DeferredQueue[tuple[tuple[Any, ...], dict[str, Any]]]] = {
        topic: DeferredQueue() for topic in EVENT_TOPICS
    }

    @component.on_join
    async def joined(session: Any, details: Any) -> None:
        for uri, procedure in PROCEDURES.items():
            await session.register(procedure, uri)
        for topic, queue in events.items():

            def keep(*args: Any, _queue: Any = queue, **kwargs: Any) -> None:
                _queue.put((args, kwargs))

            await session.subscribe(keep, topic)
        if not ready.called:
            ready.callback(None)

    return Callee(component, ready, events)


# -- raw HTTP -------------------------------------------------------------------------------


class _Exchange(Protocol):
    """Writes one request, keeps everything the server sends until it closes."""

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._received: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._request)

    def dataReceived(self, data: bytes) -> None:
        self._received.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(b"".join(self._received))


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, list[str]]
    body: bytes


async def exchange(port: int, request: bytes) -> bytes:
    endpoint = TCP4ClientEndpoint(reactor, LOOPBACK, port, timeout=TIMEOUT)
    protocol = await connectProtocol(endpoint, _Exchange(request))
    transport: Any = protocol.transport
    timer = reactor.callLater(TIMEOUT, transport.abortConnection)
    try:
        received: bytes = await protocol.done
        return received
    finally:
        if timer.active():
            timer.cancel()


def parse_answer(raw: bytes, *, head: bool = False) -> Answer:
    """The final (non-1xx) response in ``raw``, its body de-chunked."""
    while True:
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            raise AssertionError(f"no complete HTTP response in {raw[:300]!r}")
        lines = raw[:end].decode("latin-1").split("\r\n")
        raw = raw[end + 4 :]
        status = int(lines[0].split()[1])
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if not 100 <= status < 200:
            break
    if head or status in (204, 304):
        body = b""
    elif "chunked" in ",".join(headers.get("transfer-encoding", [])).lower():
        body = _dechunk(raw)
    elif "content-length" in headers:
        body = raw[: int(headers["content-length"][0])]
    else:
        body = raw
    return Answer(status, headers, body)


def _dechunk(data: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2 :]


# -- comparing ------------------------------------------------------------------------------

_BYTES_REPR = re.compile(r"""\bb(['"])(.*?)\1""")


def body_view(body: bytes) -> Any:
    """The parsed JSON (publication ids as a shape), or the text when it is not JSON."""
    try:
        parsed = json.loads(body.decode("utf-8"))
    except ValueError:
        return {"<not JSON>": body.decode("latin-1")}
    if isinstance(parsed, dict) and set(parsed) == {"id"} and type(parsed["id"]) is int:
        return {"id": "<int>"}
    return parsed


def loosely(view: Any) -> Any:
    """Error strings with Python bytes reprs (``b'GET'``) read as their text (``'GET'``)."""
    if isinstance(view, dict) and isinstance(view.get("error"), str):
        return {**view, "error": _BYTES_REPR.sub(r"\1\2\1", view["error"])}
    return view


def header_view(answer: Answer) -> dict[str, str | None]:
    return {
        name: ", ".join(answer.headers[name]) if name in answer.headers else None
        for name in COMPARED_HEADERS
    }


def differences(crossbar: Answer, wampweb: Answer) -> tuple[dict[str, list[str]], bool]:
    """
    What differs, by part (``status``, ``body``, ``headers``; empty: the same), and whether
    bytes reprs had to be read loosely for the bodies to match.
    """
    found: dict[str, list[str]] = {}
    if crossbar.status != wampweb.status:
        found["status"] = [f"status: Crossbar {crossbar.status}, wampweb {wampweb.status}"]
    theirs, ours = body_view(crossbar.body), body_view(wampweb.body)
    loose = theirs != ours and loosely(theirs) == loosely(ours)
    if loosely(theirs) != loosely(ours):
        found["body"] = [f"body: Crossbar {theirs!r}, wampweb {ours!r}"]
    their_headers, our_headers = header_view(crossbar), header_view(wampweb)
    for name in COMPARED_HEADERS:
        if their_headers[name] != our_headers[name]:
            found.setdefault("headers", []).append(
                f"header {name}: Crossbar {their_headers[name]!r}, wampweb {our_headers[name]!r}"
            )
    return found, loose


def parsed_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return None


def _error_matches(expected: str, body: Any) -> bool:
    actual = body.get("error") if isinstance(body, dict) else None
    if not isinstance(actual, str):
        return False
    if expected.endswith("…"):
        return actual.startswith(expected[:-1])
    return actual == expected


# -- the two bridges ------------------------------------------------------------------------


@attrs.define
class Side:
    name: str
    port: int
    signer: Signer

    async def send(self, request: Raw) -> Answer:
        raw = await exchange(self.port, request.encode(f"{LOOPBACK}:{self.port}"))
        return parse_answer(raw, head=request.method == "HEAD")


@attrs.frozen
class Row:
    case: str
    crossbar: int
    wampweb: int
    verdict: str


@attrs.define
class Bridges:
    crossbar: Side
    wampweb: Side
    callee: Callee
    rows: list[Row] = attrs.field(factory=list)


async def _within(d: Deferred[Any], what: str) -> Any:
    d.addTimeout(TIMEOUT, reactor)
    try:
        return await d
    except Exception as e:
        raise AssertionError(f"{what} did not happen within {TIMEOUT:g} s: {e!r}") from e


@pytest_twisted.async_yield_fixture(scope="module")
async def bridges() -> AsyncIterator[Bridges]:
    """Crossbar.io's bridge and wampweb's on one router; prints the summary at the end."""
    with EmbeddedRouter(extra_paths=crossbar_paths()) as router:
        config = parse_config(
            {
                "server": {"listen": f"tcp:0:interface={LOOPBACK}"},
                "components": {"default": {"url": router.url, "realm": REALM}},
                "bridge": wampweb_bridge_tables(),
            },
            "<conformance test>",
        )
        web: WampWeb = app_from_config(config, reactor=reactor)
        callee = make_callee(router)
        running = callee.component.start(reactor)
        web.startService()
        try:
            await _within(callee.ready, "the callee's registrations")
            await _within(web["default"].wait_for_session(TIMEOUT), "wampweb's join")
            assert web.port is not None
            port: int = web.port.getHost().port  # type: ignore[attr-defined]
            result = Bridges(
                crossbar=Side("crossbar", router.port, Signer("crossbar", 1_000_000)),
                wampweb=Side("wampweb", port, Signer("wampweb", 5_000_000)),
                callee=callee,
            )
            yield result
            _print_summary(result.rows)
        finally:
            await web.stopService()
            await callee.component.stop()
            await running


def _print_summary(rows: list[Row]) -> None:
    if not rows:
        return
    width = max(len(row.case) for row in rows)
    print(f"\n\nCrossbar.io HTTP bridge conformance: {len(rows)} cases")
    print(f"{'case':<{width}}  crossbar  wampweb  verdict")
    for row in rows:
        print(f"{row.case:<{width}}  {row.crossbar!s:>8}  {row.wampweb!s:>7}  {row.verdict}")
    counts: dict[str, int] = {}
    for row in rows:
        kind = row.verdict.split(";")[0].split(":")[0]
        counts[kind] = counts.get(kind, 0) + 1
    print(", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items())))
    ran = {row.case for row in rows}
    for title, reasons in (
        ("Deliberate differences", {c.expected_difference for c in CASES if c.name in ran}),
        ("Reported wampweb bugs", {c.bug for c in CASES if c.name in ran}),
    ):
        listed = sorted(reason for reason in reasons if reason is not None)
        if listed:
            print(f"\n{title}:")
            for reason in listed:
                cases = [
                    c.name
                    for c in CASES
                    if reason in (c.expected_difference, c.bug) and c.name in ran
                ]
                print(f"- {reason} ({len(cases)} case{'' if len(cases) == 1 else 's'})")


class UnlistedDifferenceError(AssertionError):
    """wampweb answers otherwise than Crossbar, and the corpus does not say why."""


def _params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case.bug is not None:
            # Only the difference is expected: a wrong assumption about Crossbar still fails.
            xfail = pytest.mark.xfail(
                reason=f"wampweb bug: {case.bug}", raises=UnlistedDifferenceError, strict=True
            )
            marks.append(xfail)
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def test_the_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names)), {n for n in names if names.count(n) > 1}


def test_the_corpus_signs_like_the_spec_vector() -> None:
    signature = compute_signature(b"secret", "foobar", VECTOR_TIMESTAMP, "1", "123456", VECTOR_BODY)
    assert signature == VECTOR_SIGNATURE
    assert signature.replace("-", "+").replace("_", "/") == VECTOR_STANDARD


@pytest.mark.parametrize("case", _params())
@pytest_twisted.ensureDeferred
async def test_wampweb_answers_like_crossbar(bridges: Bridges, case: Case) -> None:
    answers: dict[str, Answer] = {}
    for side in (bridges.crossbar, bridges.wampweb):
        # Each side gets its own requests (its own nonces), sent once, in order.
        for request in case.requests(side.signer):
            answers[side.name] = await side.send(request)
    crossbar, wampweb = answers["crossbar"], answers["wampweb"]
    found, loose = differences(crossbar, wampweb)
    crossbar_body = body_view(crossbar.body)

    # What the corpus says about Crossbar: a mistake here is the corpus's, never a bug's.
    wrong = []
    if crossbar.status != case.crossbar:
        wrong.append(f"Crossbar answered {crossbar.status}, the corpus says {case.crossbar}")
    if case.error is not None and not _error_matches(case.error, crossbar_body):
        wrong.append(f"Crossbar's error is not {case.error!r}: {crossbar_body!r}")

    problems = []
    excused = case.differs if case.expected_difference is not None else frozenset()
    unlisted = [text for part, texts in found.items() if part not in excused for text in texts]
    if unlisted:
        problems.append("UNLISTED difference: " + "; ".join(unlisted))
    if case.expected_difference is not None:
        if not found.keys() & case.differs:
            problems.append(f"the listed difference is gone ({case.expected_difference})")
        elif case.wampweb is not None and wampweb.status != case.wampweb:
            problems.append(f"wampweb answered {wampweb.status}, the listing says {case.wampweb}")
        elif 400 <= wampweb.status < 500 and not _is_denial(parsed_json(wampweb.body)):
            problems.append(
                f"wampweb's refusal is not a Crossbar denial envelope: {wampweb.body!r}"
            )
    accepts: tuple[bool, bool] | None = None
    if case.client is not None:
        accepts = (
            case.client(crossbar.status, parsed_json(crossbar.body)),
            case.client(wampweb.status, parsed_json(wampweb.body)),
        )
        if accepts[0] != accepts[1]:
            problems.append(f"the a.12 client reads them differently (accepts: {accepts})")

    if wrong:
        verdict = "CORPUS WRONG: " + wrong[0]
    elif problems:
        verdict = "BUG (reported)" if case.bug else "FAIL: " + problems[0]
    elif found:
        verdict = "differs (listed)"
    else:
        verdict = "match (loose)" if loose else "match"
    if accepts is not None and not problems:
        verdict += "; client " + ("accepts both" if accepts[0] else "rejects both")
    bridges.rows.append(Row(case.name, crossbar.status, wampweb.status, verdict))
    shown = [f"Crossbar: {crossbar}", f"wampweb:  {wampweb}"]
    assert not wrong, "\n".join([*wrong, *shown])
    if problems:
        raise UnlistedDifferenceError("\n".join([*problems, *shown]))


def _is_denial(body: Any) -> bool:
    """Crossbar's denial envelope: the message as ``error``, nothing in ``args``/``kwargs``."""
    return (
        isinstance(body, dict)
        and set(body) == {"error", "args", "kwargs"}
        and isinstance(body["error"], str)
        and body["args"] == []
        and body["kwargs"] == {}
    )


Event = tuple[tuple[Any, ...], dict[str, Any]]


async def next_event(queue: DeferredQueue[Event], wanted: Callable[[Event], bool]) -> Event:
    """The first event ``wanted`` (the corpus's own webhook requests published before)."""

    async def find() -> Event:
        while True:
            event = await queue.get()
            if wanted(event):
                return event

    result: Event = await _within(Deferred.fromCoroutine(find()), "the event")
    return result


@pytest_twisted.ensureDeferred
async def test_a_webhook_publishes_the_same_event(bridges: Bridges) -> None:
    text = "grüße, webhook"
    headers = (
        ("Content-Type", "text/plain"),
        ("X-GitHub-Event", "push"),
        ("X-Twice", "a"),
        ("X-Twice", "b"),
    )
    events = {}
    for side in (bridges.crossbar, bridges.wampweb):
        answer = await side.send(post("/webhook", text.encode(), headers=headers))
        assert answer.status == 202, (side.name, answer)
        queue = bridges.callee.events[WEBHOOK_TOPIC.format(side=side.name)]
        args, kwargs = await next_event(queue, lambda event: event[0][0]["body"] == text)
        # The Host header names each side's own port.
        args[0]["headers"].pop("Host")
        events[side.name] = (args, kwargs)
    assert events["crossbar"] == events["wampweb"]


@pytest_twisted.ensureDeferred
async def test_a_publish_delivers_the_same_event(bridges: Bridges) -> None:
    events = {}
    for side in (bridges.crossbar, bridges.wampweb):
        topic = f"conformance.events.{side.name}"
        body = {"topic": topic, "args": [1, "two", None, {"x": [3.5]}], "kwargs": {"k": "ü"}}
        answer = await side.send(post("/publish", body))
        assert answer.status == 200, (side.name, answer)
        events[side.name] = await next_event(bridges.callee.events[topic], lambda _: True)
    assert events["crossbar"] == events["wampweb"]
