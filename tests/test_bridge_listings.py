"""
The bridge listings the docs include (listings/bridge_*) load, build and behave as the docs say.

Each TOML file is loaded with ``load_config`` and built with ``app_from_config``, so a key that
the configuration stops accepting fails here, not in a reader's terminal. The behaviour the
pages show (rotation, permissions, replays, the REST deadline, the webhook's GitHub signature,
the legacy switches) is then checked in memory, with a FakeComponent for the router and a
Clock for time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from listings import bridge_callee, bridge_client, bridge_github
from wampweb import BridgeKind, BridgeMode, BridgeResource, WampWeb, app_from_config, load_config
from wampweb._build import bridge_settings
from wampweb.testing import FakeComponent, FakeSession, stub_client

ROOT = Path(__file__).resolve().parent.parent
LISTINGS = ROOT / "listings"
DOCS = ROOT / "docs"
TOML_LISTINGS = sorted(LISTINGS.glob("bridge_*.toml"))

#: Every secret the listings read from the environment.
SECRETS = {
    "SHOP_SECRET": "new-shop-secret",
    "SHOP_SECRET_OLD": "old-shop-secret",
    "REPORTS_SECRET": "reports-secret",
    "GITHUB_WEBHOOK_SECRET": "gh-secret",
    "FRONTEND_SECRET": "frontend-secret",
    "PUBLISH_SIGNED_SECRET": "secret",
    "CROSSBARHTTP_SECRET": "secret",
    "SHOP_BRIDGE_TICKET": "shop-ticket",
}

# The spec's test vector (docs/bridge-security.rst).
VECTOR_TIME = datetime(2011, 10, 14, 16, 59, 51, 123000, tzinfo=UTC)
VECTOR_BODY = b'{"topic":"com.myapp.topic1","args":["Hello, world"]}'
VECTOR_SIGNATURE = "CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA%3D"
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


@pytest.fixture(autouse=True)
def secrets_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


# -- every listing loads and builds ----------------------------------------------------------


def test_there_are_bridge_listings() -> None:
    assert len(TOML_LISTINGS) >= 7


@pytest.mark.parametrize("path", TOML_LISTINGS, ids=lambda p: p.name)
def test_each_listing_loads_and_builds_its_mounts(path: Path) -> None:
    config = load_config(path)
    assert config.bridge, "a bridge listing mounts something"
    web = app_from_config(config, reactor=Clock())
    assert sorted(web.mounts) == sorted(mount.path for mount in config.bridge)
    for mount in config.bridge:
        resource = web.mounts[mount.path]
        assert isinstance(resource, BridgeResource)
        assert resource.settings.kind is mount.kind
        assert resource.settings.mode is mount.mode
        assert resource.component is web[mount.component]


def included_listings() -> set[str]:
    """Every listings/bridge_* file a docs page literalincludes."""
    found: set[str] = set()
    for page in DOCS.glob("*.rst"):
        text = page.read_text(encoding="utf-8")
        found.update(re.findall(r"^\.\. literalinclude:: \.\./listings/(bridge_\S+)$", text, re.M))
    return found


def test_every_bridge_listing_is_shown_in_the_docs_and_every_one_shown_exists() -> None:
    on_disk = {p.name for p in LISTINGS.glob("bridge_*") if p.suffix in (".toml", ".py")}
    assert included_listings() == on_disk


# -- in memory, with a fake router -------------------------------------------------------------


class Served:
    """The mounts of one listing, each on a FakeComponent session that has joined."""

    def __init__(self, name: str, now: datetime = NOW) -> None:
        self.config = load_config(LISTINGS / name)
        self.clock = Clock()
        self.clock.advance(now.timestamp())
        self.web = WampWeb(listen=None, reactor=self.clock, call_timeout=30.0)
        self.sessions: dict[str, FakeSession] = {}
        fakes = {}
        for component in self.config.components:
            fakes[component] = FakeComponent()
            self.web.add_component(component, fakes[component])
        for mount in self.config.bridge:
            settings = bridge_settings(mount, self.clock)
            self.web.mount(mount.path, BridgeResource(self.web[mount.component], settings))
        self.web.startService()
        for component, fake in fakes.items():
            self.sessions[component] = fake.join()
        self.stub = stub_client(self.web.resource())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def post(
        self,
        url: str,
        body: bytes | dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        answer: Any = None,
        advance: float = 0.0,
    ) -> tuple[int, Any, Any]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        pending = self.stub.post(url, data=data, headers=JSON if headers is None else headers)
        self.stub.flush()
        if answer is not None:
            (record,) = [
                r for s in self.sessions.values() for r in s.records if not r.answer.called
            ]
            if isinstance(answer, Exception):
                record.answer.errback(answer)
            else:
                record.answer.callback(answer)
            self.stub.flush()
        if advance:
            self.clock.advance(advance)
            self.stub.flush()
        got: list[Any] = []
        pending.addBoth(got.append)
        assert got, "no answer"
        response = got[0]
        content: list[bytes] = []
        response.content().addCallback(content.append)
        text = content[0].decode("utf-8")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return response.code, parsed, response.headers

    def signed(
        self,
        url: str,
        key: str,
        secret_env: str,
        body: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        nonce: int | None = None,
        answer: Any = None,
    ) -> tuple[int, Any, Any]:
        data = json.dumps(body).encode()
        query = bridge_client.signed_query(
            key, SECRETS[secret_env].encode(), data, nonce=nonce, now=self.now()
        )
        return self.post(f"{url}?{query}", data, headers, answer=answer)

    def published(self, component: str = "default") -> list[Any]:
        return self.sessions[component].of_kind("publish")


def test_signed_accepts_both_secrets_of_a_rotated_key() -> None:
    served = Served("bridge_signed.toml")
    topic = {"topic": "com.example.hello", "args": ["Hello, signed"]}
    for variable in ("SHOP_SECRET", "SHOP_SECRET_OLD"):
        status, body, _ = served.signed("http://app/publish", "shop", variable, topic)
        assert (status, set(body)) == (200, {"id"})
    # One key, one nonce space: a nonce used with the new secret is spent for the old one.
    assert served.signed("http://app/publish", "shop", "SHOP_SECRET", topic, nonce=5)[0] == 200
    status, body, _ = served.signed("http://app/publish", "shop", "SHOP_SECRET_OLD", topic, nonce=5)
    assert status == 401
    assert "nonce '5' was already used with key 'shop'" in body["error"]


def test_signed_limits_reports_to_its_prefix_and_spends_the_nonce_of_a_refusal() -> None:
    served = Served("bridge_signed.toml")
    allowed = {"topic": "com.example.reports.daily"}
    assert served.signed("http://app/publish", "reports", "REPORTS_SECRET", allowed)[0] == 200
    data = b'{"topic": "com.example.hello"}'
    query = bridge_client.signed_query(
        "reports", SECRETS["REPORTS_SECRET"].encode(), data, now=served.now()
    )
    status, body, _ = served.post(f"http://app/publish?{query}", data)
    assert (status, body["error"]) == (403, "key 'reports' may not publish to 'com.example.hello'")
    status, body, _ = served.post(f"http://app/publish?{query}", data)
    assert status == 401
    assert body["error"].startswith("Replayed request refused")
    assert [p.uri for p in served.published()] == ["com.example.reports.daily"]


def test_signed_refuses_the_unsigned_lines_the_welcome_text_prints() -> None:
    served = Served("bridge_signed.toml")
    status, body, _ = served.post("http://app/publish", {"topic": "com.example.hello"})
    assert status == 400
    assert "'key' field missing" in body["error"]
    call = {"procedure": "com.example.add", "args": [2, 3]}
    status, body, _ = served.signed("http://app/call", "shop", "SHOP_SECRET", call, answer=5)
    assert (status, body) == (200, {"args": [5]})


def test_migrated_accepts_the_spec_test_vector_and_keeps_its_limits() -> None:
    served = Served("bridge_migrated.toml", now=VECTOR_TIME)
    query = (
        "key=foobar&timestamp=2011-10-14T16:59:51.123Z&seq=1&nonce=123456"
        f"&signature={VECTOR_SIGNATURE}"
    )
    assert served.post(f"http://app/publish-signed?{query}", VECTOR_BODY)[0] == 200
    (event,) = served.published()
    assert (event.uri, event.args) == ("com.myapp.topic1", ("Hello, world",))
    big = {"topic": "com.myapp.topic1", "args": ["x" * 8200]}
    status, body, _ = served.signed(
        "http://app/publish-signed", "foobar", "PUBLISH_SIGNED_SECRET", big
    )
    assert status == 413
    assert body["error"].startswith("Request too long.")
    served.clock.advance(11)  # past the 10 s window
    status, body, _ = served.post(f"http://app/publish-signed?{query}", VECTOR_BODY)
    assert (status, body["error"]) == (400, "Request expired, too old timestamp.")
    # The netmask form Crossbar's docs show is read as the network it names.
    (signed_mount,) = [m for m in served.config.bridge if m.path == "/publish-signed"]
    networks = bridge_settings(signed_mount, served.clock).require_ip
    assert networks is not None
    assert [str(n) for n in networks.networks] == ["192.168.1.0/24", "127.0.0.1/32"]
    assert served.post("http://app/publish", {"topic": "com.example.hello"})[0] == 200


def test_rest_answers_with_status_codes_and_takes_a_deadline() -> None:
    served = Served("bridge_rest.toml")
    missing = ApplicationError("wamp.error.no_such_procedure", "no callee")
    status, body, _ = served.post(
        "http://app/call", {"procedure": "com.example.missing"}, answer=missing
    )
    assert (status, body["error"]) == (404, "wamp.error.no_such_procedure")
    status, body, _ = served.post(
        "http://app/call",
        {"procedure": "com.example.slow", "options": {"timeout": 1.5}},
        advance=1.5,
    )
    assert (status, body["error"]) == (504, "wampweb.error.deadline")
    status, body, _ = served.post(
        "http://app/call",
        {"procedure": "com.example.slow"},
        {**JSON, "X-Request-Timeout": "90"},
    )
    assert status == 400
    assert "above this endpoint's limit of 60 s" in body["args"][0]
    # Without a timeout of its own, a call gets the mount's 10 s.
    status, _, _ = served.post("http://app/call", {"procedure": "com.example.slow"}, advance=10)
    assert status == 504
    status, body, _ = served.post("http://app/publish", b"{}", {"Content-Type": "text/plain"})
    assert (status, body["error"]) == (415, "wampweb.error.unsupported_media_type")


def test_rest_rate_limits_each_client_to_its_burst() -> None:
    served = Served("bridge_rest.toml")
    statuses = [served.post("http://app/publish", {"topic": "a.b"})[0] for _ in range(41)]
    assert statuses == [200] * 40 + [429]
    _, body, headers = served.post("http://app/publish", {"topic": "a.b"})
    assert body["error"] == "wampweb.error.rate_limited"
    assert headers.getRawHeaders("retry-after") == ["1"]


def test_public_wants_tls_a_signature_and_an_allowed_origin() -> None:
    served = Served("bridge_public.toml")
    topic = {"topic": "com.example.hello"}
    status, body, _ = served.signed("http://app/api/publish", "frontend", "FRONTEND_SECRET", topic)
    assert (status, body["error"]) == (403, "wampweb.error.tls_required")
    allowed = {**JSON, "Origin": "https://app.example.com"}
    status, _, headers = served.signed(
        "https://app/api/publish", "frontend", "FRONTEND_SECRET", topic, headers=allowed
    )
    assert status == 200
    assert headers.getRawHeaders("access-control-allow-origin") == ["https://app.example.com"]
    refused = {**JSON, "Origin": "https://evil.example"}
    status, body, _ = served.signed(
        "https://app/api/publish", "frontend", "FRONTEND_SECRET", topic, headers=refused
    )
    assert (status, body["error"]) == (403, "wampweb.error.forbidden")
    assert len(served.published()) == 1


def test_webhook_checks_githubs_signature_and_answers_as_configured() -> None:
    served = Served("bridge_webhook.toml")
    payload = b'{"zen": "Keep it logically awesome."}'
    digest = hmac.new(SECRETS["GITHUB_WEBHOOK_SECRET"].encode(), payload, hashlib.sha256)
    signed = {
        **JSON,
        "X-GitHub-Event": "ping",
        "X-Hub-Signature-256": "sha256=" + digest.hexdigest(),
    }
    assert served.post("http://app/hooks/github", payload, signed)[:2] == (202, "OK")
    status, body, _ = served.post("http://app/hooks/github", payload, JSON)
    assert (status, body["error"]) == (400, "Malformed request to the REST bridge.")
    status, body, _ = served.post("http://app/hooks/deploy", b"v1.2.3", {})
    assert (status, body) == (202, {"queued": True})
    github, deploy = served.published()
    assert (github.uri, deploy.uri) == ("com.example.github", "com.example.deploy")
    (event,) = github.args
    assert event["body"] == payload.decode()
    assert event["headers"]["X-Github-Event"] == ["ping"]


def test_legacy_answers_202_and_takes_a_timestamp_without_a_fraction() -> None:
    served = Served("bridge_legacy.toml")
    assert served.post("http://app/publish-legacy", {"topic": "a.b"})[:2] == (202, {"id": 1})
    # crossbarhttp3's body and timestamp: isoformat() + "Z" when the microsecond is 0.
    body = b'{"topic": "a.b", "args": [], "kwargs": {}}'
    timestamp = served.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(b"secret", f"key{timestamp}11".encode() + body, hashlib.sha256).digest()
    fields = {"key": "key", "timestamp": timestamp, "seq": "1", "nonce": "1"}
    query = urlencode({**fields, "signature": base64.urlsafe_b64encode(digest).decode()})
    assert served.post(f"http://app/publish-signed?{query}", body)[:2] == (200, {"id": 2})


def test_components_binds_each_mount_to_its_component() -> None:
    config = load_config(LISTINGS / "bridge_components.toml")
    bound = {m.path: (m.component, m.kind, m.call_timeout) for m in config.bridge}
    assert bound == {
        "/publish": ("default", BridgeKind.PUBLISHER, None),
        "/shop/publish": ("shop", BridgeKind.PUBLISHER, None),
        "/shop/call": ("shop", BridgeKind.CALLER, 120.0),
    }
    assert config.components["shop"].authentication["ticket"]["authid"] == "shop-bridge"
    assert all(m.mode is BridgeMode.CROSSBAR for m in config.bridge)


# -- the Python listings -------------------------------------------------------------------------


def test_the_client_signs_the_spec_test_vector() -> None:
    query = bridge_client.signed_query(
        "foobar", b"secret", VECTOR_BODY, nonce=123456, now=VECTOR_TIME
    )
    assert query == (
        "key=foobar&timestamp=2011-10-14T16%3A59%3A51.123Z&seq=1&nonce=123456"
        f"&signature={VECTOR_SIGNATURE}"
    )


def test_the_callee_listing_registers_what_the_caller_page_calls() -> None:
    clock = Clock()
    fake = FakeComponent()
    web = WampWeb(listen=None, reactor=clock)
    web.add_component("default", fake)
    bridge_callee.setup(web)
    web.startService()
    session = fake.join()
    procedures = {r.uri: r.args[0] for r in session.of_kind("register")}
    assert sorted(procedures) == [
        "com.example.add",
        "com.example.reserve",
        "com.example.slow",
        "com.example.split",
    ]
    assert procedures["com.example.add"](2, 3) == 5
    split = procedures["com.example.split"]("Ada Lovelace")
    assert isinstance(split, CallResult)
    assert (split.results, split.kwresults) == (("Ada", "Lovelace"), {"length": 12})
    with pytest.raises(ApplicationError) as raised:
        procedures["com.example.reserve"]("tea")
    assert (raised.value.error, raised.value.kwargs) == (
        "com.example.error.out_of_stock",
        {"item": "tea"},
    )
    done: list[str] = []
    procedures["com.example.slow"](5).addCallback(done.append)
    clock.advance(4.9)
    assert done == []
    clock.advance(0.1)
    assert done == ["done"]


def test_the_github_listing_subscribes_and_reads_the_event() -> None:
    fake = FakeComponent()
    web = WampWeb(listen=None, reactor=Clock())
    web.add_component("default", fake)
    bridge_github.setup(web)
    web.startService()
    session = fake.join()
    (subscription,) = session.of_kind("subscribe")
    assert subscription.uri == "com.example.github"
    event = {
        "headers": {"X-Github-Event": ["ping"], "X-Github-Delivery": ["d-1"]},
        "body": '{"zen": "Keep it logically awesome."}',
    }
    with capturedLogs() as events:
        subscription.args[0](event)
    (logged,) = [e for e in events if e.get("kind") == "ping"]
    assert (logged["delivery"], logged["zen"]) == ("d-1", "Keep it logically awesome.")
