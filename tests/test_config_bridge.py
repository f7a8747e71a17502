"""The [[bridge]] tables: checked at load time, refused with the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.task import Clock

from wampweb import ConfigError, app_from_config, parse_config
from wampweb._bridge import BridgeKind, BridgeMode, BridgeResource

COMPONENT = '[components.default]\nrealm = "realm1"\nurl = "ws://127.0.0.1:8080/ws"\n'


def load(text: str) -> object:
    import tomllib

    return parse_config(tomllib.loads(COMPONENT + text), "bridge.toml", base_dir=Path("."))


def test_a_crossbar_style_signed_publisher_translates_key_for_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBLISH_SECRET", "secret")
    config = load(
        """
[[bridge]]
type = "publisher"
path = "/publish-signed"
key = "foobar"
secret = { env = "PUBLISH_SECRET" }
post_body_limit = 8192
timestamp_delta_limit = 10
require_ip = ["192.168.1.1/255.255.255.0", "127.0.0.1"]
require_tls = false
"""
    )
    (mount,) = config.bridge  # type: ignore[attr-defined]
    assert (mount.kind, mount.mode, mount.component) == (
        BridgeKind.PUBLISHER,
        BridgeMode.CROSSBAR,
        "default",
    )
    assert (mount.post_body_limit, mount.timestamp_delta_limit) == (8192, 10)
    assert mount.keys[0].key == "foobar"
    assert "secret" not in repr(mount)
    web = app_from_config(config, reactor=Clock())  # type: ignore[arg-type]
    resource = web.mounts["/publish-signed"]
    assert isinstance(resource, BridgeResource)
    assert resource.body_limit == 8192


def test_several_keys_with_permissions_and_rest_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K1", "one")
    monkeypatch.setenv("K1_NEW", "one-rotated")
    config = load(
        """
[[bridge]]
type = "caller"
path = "/api/call"
mode = "rest"
call_timeout = 5
max_call_timeout = 20
rate_limit = { rate = 10, burst = 20 }
cors_origins = ["https://app.example.com"]
trusted_proxies = ["10.0.0.1"]

[[bridge.keys]]
key = "frontend"
secret = { env = "K1" }
permissions = [{ uri = "com.app.", match = "prefix", allow = ["call"] }]

[[bridge.keys]]
key = "frontend"
secret = { env = "K1_NEW" }
permissions = [{ uri = "com.app.", match = "prefix", allow = ["call"] }]
"""
    )
    (mount,) = config.bridge  # type: ignore[attr-defined]
    assert mount.mode is BridgeMode.REST
    assert [k.key for k in mount.keys] == ["frontend", "frontend"]
    assert mount.rate_limit == (10.0, 20)
    web = app_from_config(config, reactor=Clock())  # type: ignore[arg-type]
    assert list(web.mounts) == ["/api/call"]


def test_a_webhook_with_its_own_options() -> None:
    config = load(
        """
[[bridge]]
type = "webhook"
path = "/hooks/github"
topic = "com.example.github"
success_response = "thanks"
"""
    )
    (mount,) = config.bridge  # type: ignore[attr-defined]
    assert (mount.topic, mount.success_response, mount.error_response) == (
        "com.example.github",
        "thanks",
        "NOT OK",
    )


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            '[[bridge]]\ntype = "publish"\npath = "/p"\n',
            "bridge[0].type",
            "did you mean 'publisher'",
        ),
        ('[[bridge]]\ntype = "publisher"\npath = "p"\n', "bridge[0].path", "absolute path"),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\ncomponent = "x"\n',
            "bridge[0].component",
            "no component named 'x'",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\n'
            '[[bridge]]\ntype = "caller"\npath = "/p/"\n',
            "bridge[1].path",
            "already mounted",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\ntopic = "a.b"\n',
            "bridge[0].topic",
            "unknown key",
        ),
        (
            '[[bridge]]\ntype = "webhook"\npath = "/w"\nkey = "k"\n',
            "bridge[0].key",
            "unknown key",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\nkey = "k"\n',
            "bridge[0]",
            "needs a 'secret'",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\nrequire_ip = ["not-an-ip"]\n',
            "bridge[0].require_ip",
            "not-an-ip",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\npost_body_limit = -1\n',
            "bridge[0].post_body_limit",
            "at least 0",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\ncors_origins = ["app.example.com"]\n',
            "bridge[0].cors_origins",
            "https://app.example.com",
        ),
        (
            '[[bridge]]\ntype = "publisher"\npath = "/p"\nkey = "k"\nsecret = "s"\n'
            "timestamp_delta_limit = 0\n",
            "bridge[0].timestamp_delta_limit",
            "replay protection needs one",
        ),
        (
            '[[bridge]]\ntype = "caller"\npath = "/c"\n'
            'permissions = [{ uri = "a.b", match = "glob", allow = ["call"] }]\n',
            "bridge[0].permissions[0].match",
            "expected one of",
        ),
        (
            '[[bridge]]\ntype = "caller"\npath = "/c"\n'
            'permissions = [{ uri = "a.b", allow = ["subscribe"] }]\n',
            "bridge[0].permissions[0].allow",
            "'publish' and/or 'call'",
        ),
        (
            '[[bridge]]\ntype = "webhook"\npath = "/w"\ntopic = "not a uri"\n',
            "bridge[0].topic",
            "not a valid WAMP URI",
        ),
    ],
)
def test_bad_bridge_tables_are_refused_with_file_key_and_reason(
    text: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(text)
    message = str(raised.value)
    assert "bridge.toml" in message
    assert key in message
    assert reason in message
