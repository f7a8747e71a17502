"""WampWeb: a Klein app with named Components, run as one Twisted service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from treq.testing import StubTreq
from twisted.internet.task import Clock

from wampweb import SessionState, WampWeb
from wampweb.testing import FakeComponent, FakeSession, stub_client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def web(clock: Clock) -> WampWeb:
    return WampWeb(listen=None, reactor=clock, retry_after=3.0, call_timeout=5.0, drain_timeout=2.0)


@pytest.fixture
def fake() -> FakeComponent:
    return FakeComponent()


def answer(response: Any) -> tuple[int, Any]:
    """Status and parsed JSON body of a StubTreq response (already fired)."""
    body = []
    response.content().addCallback(body.append)
    text = body[0].decode("utf-8")
    try:
        return response.code, json.loads(text)
    except ValueError:
        return response.code, text


def fired(stub: StubTreq, deferred: Any) -> Any:
    """The response to a request, once the in-memory connection has carried everything."""
    stub.flush()
    results: list[Any] = []
    deferred.addBoth(results.append)
    assert results, "the request was not answered"
    return results[0]


@pytest.fixture
def served(web: WampWeb, fake: FakeComponent) -> StubTreq:
    backend = web.add_component("backend", fake)

    @web.app.route("/")
    @backend.with_session()
    async def index(request: Any, session: Any) -> bytes:
        publication = await backend.publish("com.myapp.request_served", ["hello"])
        return f"published {publication.id}".encode()

    @web.app.route("/slow")
    async def slow(request: Any) -> bytes:
        result = await backend.call("com.myapp.slow")
        return str(result).encode()

    web.add_health_routes()
    web.startService()
    return stub_client(web.resource())


def test_with_no_session_a_route_answers_503_with_retry_after(served: StubTreq) -> None:
    response = fired(served, served.get("http://app/"))
    status, body = answer(response)
    assert status == 503
    assert response.headers.getRawHeaders("retry-after") == ["3"]
    assert body["error"] == "wampweb.error.no_session"
    assert "not joined yet" in body["args"][0]


def test_once_joined_the_route_gets_the_session_and_publishes(
    served: StubTreq, fake: FakeComponent
) -> None:
    session = fake.join()
    status, body = answer(fired(served, served.get("http://app/")))
    assert (status, body) == (200, "published 1")
    (publish,) = session.of_kind("publish")
    assert publish.uri == "com.myapp.request_served"


def test_after_a_reconnect_the_route_uses_the_new_session(
    served: StubTreq, fake: FakeComponent
) -> None:
    fake.join()
    fake.leave()
    newer = fake.join()
    assert answer(fired(served, served.get("http://app/")))[0] == 200
    assert len(newer.of_kind("publish")) == 1


def test_a_call_in_flight_when_the_session_is_lost_answers_502(
    served: StubTreq, fake: FakeComponent
) -> None:
    fake.join()
    pending = served.get("http://app/slow")
    fake.leave()
    status, body = answer(fired(served, pending))
    assert status == 502
    assert body["error"] == "wampweb.error.session_lost"


def test_a_call_past_its_deadline_answers_504(
    served: StubTreq, fake: FakeComponent, clock: Clock
) -> None:
    session = fake.join()
    pending = served.get("http://app/slow")
    clock.advance(5.0)
    status, body = answer(fired(served, pending))
    assert status == 504
    assert body["error"] == "wampweb.error.deadline"
    assert session.of_kind("call")[0].cancelled


@pytest.mark.parametrize(
    ("uri", "status"),
    [
        ("wamp.error.no_such_procedure", 404),
        ("wamp.error.not_authorized", 403),
        ("wamp.error.invalid_argument", 400),
        ("com.myapp.error.out_of_stock", 502),
    ],
)
def test_wamp_errors_get_their_http_status(
    served: StubTreq, fake: FakeComponent, uri: str, status: int
) -> None:
    session = fake.join()
    pending = served.get("http://app/slow")
    session.of_kind("call")[0].answer.errback(ApplicationError(uri, "why", code=7))
    got_status, body = answer(fired(served, pending))
    assert got_status == status
    assert body == {"error": uri, "args": ["why"], "kwargs": {"code": 7}}


def test_no_such_procedure_right_after_a_rejoin_is_a_503(
    served: StubTreq, fake: FakeComponent
) -> None:
    fake.join()
    fake.leave()
    session = fake.join()
    pending = served.get("http://app/slow")
    session.of_kind("call")[0].answer.errback(ApplicationError("wamp.error.no_such_procedure"))
    response = fired(served, pending)
    assert answer(response)[0] == 503
    assert response.headers.getRawHeaders("retry-after") == ["1"]


def test_an_unexpected_error_is_a_json_500_without_traceback(web: WampWeb) -> None:
    @web.app.route("/boom")
    def boom(request: Any) -> bytes:
        raise RuntimeError("secret detail at /home/me/app.py")

    web.startService()
    stub = stub_client(web.resource())
    status, body = answer(fired(stub, stub.get("http://app/boom")))
    assert status == 500
    assert body["error"] == "wampweb.error.internal"
    assert "secret" not in json.dumps(body)
    # the failure went to the log instead
    web.stopService()


def test_stopping_lets_requests_in_flight_finish_before_leaving(
    served: StubTreq, web: WampWeb, fake: FakeComponent, clock: Clock
) -> None:
    session = fake.join()
    pending = served.get("http://app/slow")
    stopped = web.stopService()
    assert not stopped.called
    assert session.left_with is None, "no GOODBYE while a request is in flight"

    refused = fired(served, served.get("http://app/slow"))
    assert answer(refused)[0] == 503

    session.of_kind("call")[0].answer.callback("done")
    assert answer(fired(served, pending)) == (200, "done")
    assert session.left_with == "wamp.close.normal"
    clock.advance(0)
    assert stopped.called
    assert fake.stops == 1


def test_draining_is_bounded(
    served: StubTreq, web: WampWeb, fake: FakeComponent, clock: Clock
) -> None:
    fake.join()
    pending = served.get("http://app/slow")
    stopped = web.stopService()
    clock.advance(web.drain_timeout)
    assert stopped.called
    assert answer(fired(served, pending))[0] == 502  # its session left: outcome unknown


def test_health_reports_every_component_and_ready_waits_for_all(
    served: StubTreq, fake: FakeComponent
) -> None:
    response = fired(served, served.get("http://app/ready"))
    status, body = answer(response)
    assert status == 503
    assert body["components"]["backend"]["state"] == "connecting"
    assert response.headers.getRawHeaders("retry-after") == ["3"]

    fake.join()
    status, body = answer(fired(served, served.get("http://app/ready")))
    assert status == 200
    assert body["components"]["backend"]["state"] == "ready"
    assert answer(fired(served, served.get("http://app/health")))[0] == 200


def test_health_and_ready_answer_get_only_with_a_json_405(served: StubTreq) -> None:
    for path in ("http://app/health", "http://app/ready"):
        response = fired(served, served.post(path, data=b"x"))
        status, body = answer(response)
        assert status == 405
        assert response.headers.getRawHeaders("allow") == ["GET, HEAD"]
        assert body == {
            "error": "wampweb.error.method_not_allowed",
            "args": ["POST is not allowed here, only GET and HEAD"],
            "kwargs": {},
        }


def test_a_head_probe_of_health_gets_the_headers_alone(served: StubTreq) -> None:
    response = fired(served, served.head("http://app/health"))
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["application/json; charset=utf-8"]
    assert answer(response) == (200, "")


def test_a_path_below_health_is_a_json_404(served: StubTreq) -> None:
    status, body = answer(fired(served, served.get("http://app/health/x")))
    assert status == 404
    assert body == {
        "error": "wampweb.error.not_found",
        "args": ["nothing is served at /health/x"],
        "kwargs": {},
    }


def test_without_a_klein_app_an_unmounted_path_is_a_json_404(web: WampWeb) -> None:
    web.add_health_routes()
    web.startService()
    stub = stub_client(web.resource())
    response = fired(stub, stub.get("http://app/nowhere?x=1"))
    assert answer(response) == (
        404,
        {
            "error": "wampweb.error.not_found",
            "args": ["nothing is served at /nowhere"],
            "kwargs": {},
        },
    )
    assert response.headers.getRawHeaders("cache-control") == ["no-store"]


def test_the_klein_app_is_made_on_first_use_and_then_serves_unmounted_paths(
    web: WampWeb,
) -> None:
    web.startService()
    stub = stub_client(web.resource())
    assert answer(fired(stub, stub.get("http://app/hello")))[0] == 404

    assert web.app is web.app

    @web.app.route("/hello")
    def hello(request: Any) -> bytes:
        return b"hello"

    assert answer(fired(stub, stub.get("http://app/hello"))) == (200, "hello")


def test_a_klein_app_passed_in_is_served_with_wampwebs_error_answers(clock: Clock) -> None:
    from klein import Klein

    from wampweb import NoSessionError

    app = Klein()

    @app.route("/")
    def index(request: Any) -> bytes:
        raise NoSessionError("backend", retry_after=4.0)

    web = WampWeb(app, listen=None, reactor=clock)
    assert web.app is app
    web.startService()
    stub = stub_client(web.resource())
    response = fired(stub, stub.get("http://app/"))
    assert answer(response)[1]["error"] == "wampweb.error.no_session"
    assert response.headers.getRawHeaders("retry-after") == ["4"]


def test_an_unmounted_path_is_refused_while_draining_like_any_other(web: WampWeb) -> None:
    web.startService()
    web.stopService()
    stub = stub_client(web.resource())
    status, body = answer(fired(stub, stub.get("http://app/nowhere")))
    assert (status, body["error"]) == (503, "wampweb.error.stopping")


def test_the_clis_default_app_never_imports_klein() -> None:
    # In a fresh interpreter: other tests import klein into this one.
    code = textwrap.dedent(
        """
        import io, sys
        from twisted.internet.defer import ensureDeferred
        from twisted.internet.testing import MemoryReactorClock, StringTransport
        from wampweb._cli import _serve
        from wampweb._config import config_from_flags

        reactor = MemoryReactorClock()
        config = config_from_flags("ws://127.0.0.1:1/ws", "realm1", "tcp:0")
        serving = ensureDeferred(_serve(reactor, config, None, None, io.StringIO()))
        reactor.run()  # what `wampweb run` does, up to serving
        [(_, site, _, _)] = reactor.tcpServers
        for path, status in [(b"/health", b"200"), (b"/ready", b"503"), (b"/nowhere", b"404")]:
            protocol = site.buildProtocol(None)
            transport = StringTransport()
            protocol.makeConnection(transport)
            protocol.dataReceived(b"GET " + path + b" HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            assert transport.value().startswith(b"HTTP/1.1 " + status), transport.value()
        imported = sorted({m.split(".")[0] for m in sys.modules} & {"klein", "werkzeug"})
        assert not imported, imported
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_ready_waits_for_declared_registrations(web: WampWeb, fake: FakeComponent) -> None:
    backend = web.add_component("backend", fake)

    @backend.register("com.myapp.add")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3, "the decorator returns the function"
    web.startService()
    session = FakeSession(auto_answer=False)
    fake.join(session)
    assert backend.state is SessionState.JOINED
    (registration,) = session.of_kind("register")
    assert registration.uri == "com.myapp.add"
    registration.answer.callback(object())
    assert backend.state is SessionState.READY


def test_a_registration_still_held_by_the_router_is_retried(
    web: WampWeb, fake: FakeComponent, clock: Clock
) -> None:
    backend = web.add_component("backend", fake)
    backend.register("com.myapp.add")(lambda a, b: a + b)
    web.startService()
    session = FakeSession(auto_answer=False)
    fake.join(session)
    session.of_kind("register")[0].answer.errback(
        ApplicationError("wamp.error.procedure_already_exists")
    )
    assert backend.state is SessionState.JOINED
    assert backend.status()["missing"] == {"register 'com.myapp.add'": "pending"}
    clock.advance(0.5)
    session.of_kind("register")[1].answer.callback(object())
    assert backend.state is SessionState.READY


def test_a_registration_that_keeps_failing_is_reported_missing(
    web: WampWeb, fake: FakeComponent
) -> None:
    backend = web.add_component("backend", fake)
    backend.register("com.myapp.add")(lambda a, b: a + b)
    web.startService()
    session = FakeSession(auto_answer=False)
    fake.join(session)
    session.of_kind("register")[0].answer.errback(ApplicationError("wamp.error.not_authorized"))
    assert backend.status()["missing"] == {"register 'com.myapp.add'": "wamp.error.not_authorized"}
    assert backend.state is SessionState.JOINED


def test_two_components_are_independent(web: WampWeb) -> None:
    first, second = FakeComponent(), FakeComponent()
    a = web.add_component("a", first)
    b = web.add_component("b", second)
    web.startService()
    first.join()
    assert a.session_now() is first.sessions[0]
    assert b.state is SessionState.CONNECTING
    assert web["b"] is b
    with pytest.raises(KeyError, match="known: a, b"):
        web["c"]
    with pytest.raises(ValueError, match="already managed"):
        web.add_component("a", FakeComponent())


def test_a_retry_for_an_old_session_does_not_touch_the_new_one(
    web: WampWeb, fake: FakeComponent, clock: Clock
) -> None:
    backend = web.add_component("backend", fake)
    backend.register("com.myapp.add")(lambda a, b: a + b)
    web.startService()
    old = FakeSession(auto_answer=False)
    fake.join(old)
    old.of_kind("register")[0].answer.errback(
        ApplicationError("wamp.error.procedure_already_exists")
    )
    fake.leave()
    fake.join()  # registers at once and is ready
    assert backend.state is SessionState.READY
    clock.advance(0.5)  # the old session's retry comes due
    assert old.of_kind("register")[1:] == []
    assert backend.status()["missing"] == {}
    assert backend.state is SessionState.READY


def test_tcp_listeners_get_a_deep_backlog_unless_they_set_one() -> None:
    from wampweb._app import with_backlog

    assert (
        with_backlog("tcp:8090:interface=127.0.0.1") == "tcp:8090:interface=127.0.0.1:backlog=1024"
    )
    assert with_backlog("tcp:8090:backlog=10") == "tcp:8090:backlog=10"
    assert with_backlog("unix:/run/wampweb.sock") == "unix:/run/wampweb.sock"
