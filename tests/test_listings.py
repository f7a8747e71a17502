"""Every snippet the docs include is imported and exercised here, so the docs cannot drift."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from autobahn.twisted.component import Component
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from examples import webapp
from listings import call_route, quickstart, react_main, register
from wampweb import WampWeb, app_from_config, load_config
from wampweb._cli import _parser
from wampweb._supervisor import ComponentSupervisor
from wampweb.testing import FakeComponent, stub_client


def respond(stub: Any, deferred: Any) -> tuple[int, bytes, Any]:
    stub.flush()
    got: list[Any] = []
    deferred.addBoth(got.append)
    response = got[0]
    body: list[bytes] = []
    response.content().addCallback(body.append)
    return response.code, body[0], response.headers


def test_quickstart_publishes_when_joined_and_answers_503_when_not() -> None:
    fake = FakeComponent()
    web = quickstart.make_web(fake, reactor=MemoryReactorClock())
    web.startService()
    stub = stub_client(web.resource())

    status, _, headers = respond(stub, stub.post("http://app/hello"))
    assert status == 503
    assert headers.getRawHeaders("retry-after")

    session = fake.join()
    status, body, _ = respond(stub, stub.post("http://app/hello"))
    assert (status, body) == (200, b"published 1\n")
    assert session.of_kind("publish")[0].args == ("Hello from HTTP",)
    assert isinstance(quickstart.component_for("ws://127.0.0.1:1/ws"), Component)


def test_register_declares_a_procedure_and_a_subscription() -> None:
    fake = FakeComponent()
    web = WampWeb(listen=None, reactor=Clock())
    seen = register.declare(web, fake)
    web.startService()
    session = fake.join()
    add = session.of_kind("register")[0]
    hello = session.of_kind("subscribe")[0]
    assert (add.uri, add.args[0](2, 3)) == ("com.example.add", 5)
    hello.args[0]("hi")
    assert seen == ["hi"]
    stub = stub_client(web.resource())
    status, body, _ = respond(stub, stub.get("http://app/ready"))
    assert status == 200
    assert json.loads(body)["components"]["backend"]["state"] == "ready"


def test_call_route_answers_with_the_result_or_a_deadline() -> None:
    clock = Clock()
    fake = FakeComponent()
    web = call_route.make_web(fake, reactor=clock)
    web.startService()
    stub = stub_client(web.resource())
    session = fake.join()

    pending = stub.get("http://app/sum/2/3")
    stub.flush()
    call = session.of_kind("call")[0]
    assert (call.uri, call.args) == ("com.example.add", (2, 3))
    call.answer.callback(5)
    assert respond(stub, pending)[:2] == (200, b"5\n")

    pending = stub.get("http://app/sum/1/1")
    stub.flush()
    clock.advance(5.0)
    assert respond(stub, pending)[0] == 504


def test_react_main_builds_an_app_that_stops_with_the_reactor() -> None:
    reactor = MemoryReactorClock()
    finished = react_main.main(reactor, "ws://127.0.0.1:1/ws")
    assert not finished.called
    assert reactor.triggers["before"]["shutdown"], "stopping is hooked to reactor shutdown"
    ((port, _factory, _backlog, interface),) = reactor.tcpServers
    assert (port, interface) == (8090, "127.0.0.1")


def test_the_docs_webapp_publishes_and_answers_503_without_a_session() -> None:
    fake = FakeComponent()
    web = webapp.make_web(fake, listen=None, reactor=Clock())
    web.startService()
    stub = stub_client(web.resource())
    assert respond(stub, stub.get("http://app/"))[0] == 503
    session = fake.join()
    status, body, _ = respond(stub, stub.get("http://app/anything/below"))
    assert status == 200
    assert b"com.myapp.request_served" in body
    assert session.of_kind("publish")[0].uri == webapp.TOPIC


def test_the_docs_webapp_reports_a_lost_publish() -> None:
    fake = FakeComponent()
    web = webapp.make_web(fake, listen=None, reactor=Clock())
    web.startService()
    stub = stub_client(web.resource())
    session = fake.join()
    session.auto_answer = False
    pending = stub.get("http://app/")
    stub.flush()
    fake.leave()
    status, body, _ = respond(stub, pending)
    assert status == 502
    assert json.loads(body)["error"] == "wampweb.error.session_lost"


def test_importing_wampweb_installs_no_reactor() -> None:
    code = "import sys, wampweb, wampweb.testing; print('twisted.internet.reactor' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# -- docs/deployment.rst ----------------------------------------------------------------

LISTINGS = Path(__file__).resolve().parent.parent / "listings"
DEPLOY_CONFIG = LISTINGS / "deploy_wampweb.toml"
DEPLOY_UNIT = LISTINGS / "deploy_wampweb.service"


def unit_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in DEPLOY_UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_the_deployment_config_loads_and_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAMPWEB_TICKET", "ticket")
    monkeypatch.setenv("WAMPWEB_BACKEND_SECRET", "secret")
    config = load_config(DEPLOY_CONFIG)
    web = app_from_config(config, reactor=MemoryReactorClock())
    assert set(web.mounts) == {"/publish", "/call"}
    transport = config.components["default"].transports[0]
    assert transport.url == "rs://router.internal:8081"


def test_the_unit_runs_what_the_cli_accepts_on_the_config_it_checks() -> None:
    settings = unit_settings()
    check, run = shlex.split(settings["ExecStartPre"]), shlex.split(settings["ExecStart"])
    assert check[1:3] == ["check-config", "/etc/wampweb/wampweb.toml"]
    assert run[run.index("--config") + 1] == "/etc/wampweb/wampweb.toml"
    options = _parser().parse_args(run[1:])
    assert options.command == "run"
    assert options.workers == 2


def test_the_units_stop_timeout_covers_the_drain_and_the_leave() -> None:
    # Killed in the middle of its drain, wampweb would cut requests off.
    drain = tomllib.loads(DEPLOY_CONFIG.read_text())["server"]["drain_timeout"]
    leave = ComponentSupervisor.__init__.__kwdefaults__["stop_timeout"]
    assert int(unit_settings()["TimeoutStopSec"]) >= drain + leave + 5
