"""
The TOML configuration: what a file says reaches Autobahn's Component as
arguments it accepts, wampweb's defaults fill the gaps, secrets stay secret,
and every mistake is refused at load time with the file, the key and why.
"""

from __future__ import annotations

import datetime
import importlib.util
import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest
from autobahn.twisted.component import Component
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import wampweb._config
from wampweb._config import (
    DEFAULT_LISTEN,
    ComponentConfig,
    ServerConfig,
    WampWebConfig,
    config_from_flags,
    load_config,
    parse_config,
)
from wampweb._config_auth import Secret
from wampweb._errors import ConfigError

SEED = "4f" * 32
MAIN = """
[components.main]
realm = "realm1"
url = "ws://127.0.0.1:8080/ws"
"""


def write(tmp_path: Path, text: str, name: str = "wampweb.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> WampWebConfig:
    return load_config(write(tmp_path, text))


def refused(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value


def make_pem(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


SAMPLE = """
[server]
listen = "tcp:9000:interface=127.0.0.1"
drain_timeout = 3.0
session_wait = 1.5
retry_after = 4
call_timeout = 12.5
stable_after = 20.0

[components.default]
realm = "realm1"
url = "ws://127.0.0.1:8080/ws"

[components.backend]
realm = "com.example"
extra = { team = "payments" }

[[components.backend.transports]]
type = "rawsocket"
url = "rs://127.0.0.1:8081"
serializer = "cbor"
endpoint = { type = "unix", path = "run/router.sock", timeout = 3 }
max_retries = 7
initial_retry_delay = 0.25
max_retry_delay = 2.0
retry_delay_growth = 2.0
retry_delay_jitter = 0.05
options = { max_message_payload_size = 65536 }

[[components.backend.transports]]
type = "websocket"
url = "wss://router.example.com/ws"
serializers = ["json"]
options = { auto_ping_interval = 30.0, open_handshake_timeout = 2.5, tcp_no_delay = false }

[components.backend.transports.endpoint]
type = "tcp"
host = "10.0.0.5"
port = 443
timeout = 5
tls = { hostname = "router.example.com", trust_root = "ca.pem" }

[components.backend.authentication.ticket]
authid = "joe"
authrole = "backend"
ticket = { env = "BACKEND_TICKET" }

[components.other]
realm = "realm1"
transports = [{ url = "ws://10.0.0.9:8080/ws", proxy = { host = "proxy.local", port = 3128 } }]

[components.other.authentication.cryptosign]
authid = "svc"
privkey = { file = "keys/svc.key" }

[[bridge]]
type = "publisher"
path = "/publish"
"""

RETRY_DEFAULTS = {
    "max_retries": -1,
    "initial_retry_delay": 0.5,
    "max_retry_delay": 3.0,
    "retry_delay_growth": 1.5,
    "retry_delay_jitter": 0.1,
}
PING_DEFAULTS = {"autoPingInterval": 10.0, "autoPingTimeout": 5.0}


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WampWebConfig:
    monkeypatch.setenv("BACKEND_TICKET", "ticket-from-env")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "svc.key").write_text(SEED + "\n")
    make_pem(tmp_path / "ca.pem")
    # Relative paths follow the file, not the working directory.
    monkeypatch.chdir("/")
    return load(tmp_path, SAMPLE)


def test_a_full_sample_file_becomes_component_arguments(
    sample: WampWebConfig, tmp_path: Path
) -> None:
    assert sample.server == ServerConfig(
        listen="tcp:9000:interface=127.0.0.1",
        drain_timeout=3.0,
        session_wait=1.5,
        retry_after=4.0,
        call_timeout=12.5,
        stable_after=20.0,
    )
    assert list(sample.components) == ["default", "backend", "other"]
    assert sample.components["backend"].component_kwargs() == {
        "realm": "com.example",
        "extra": {"team": "payments"},
        "authentication": {
            "ticket": {"authid": "joe", "authrole": "backend", "ticket": "ticket-from-env"}
        },
        "transports": [
            {
                "type": "rawsocket",
                "url": "rs://127.0.0.1:8081",
                "endpoint": {
                    "type": "unix",
                    "path": str(tmp_path / "run/router.sock"),
                    "timeout": 3,
                },
                "serializer": "cbor",
                "options": {"maxMessagePayloadSize": 65536},
                "max_retries": 7,
                "initial_retry_delay": 0.25,
                "max_retry_delay": 2.0,
                "retry_delay_growth": 2.0,
                "retry_delay_jitter": 0.05,
            },
            {
                "type": "websocket",
                "url": "wss://router.example.com/ws",
                "endpoint": {
                    "type": "tcp",
                    "host": "10.0.0.5",
                    "port": 443,
                    "timeout": 5,
                    "tls": {
                        "hostname": "router.example.com",
                        "trust_root": str(tmp_path / "ca.pem"),
                    },
                },
                "serializers": ["json"],
                "options": {
                    "autoPingInterval": 30.0,
                    "autoPingTimeout": 5.0,
                    "openHandshakeTimeout": 2.5,
                    "tcpNoDelay": False,
                },
                **RETRY_DEFAULTS,
            },
        ],
    }
    assert sample.components["other"].component_kwargs() == {
        "realm": "realm1",
        "authentication": {"cryptosign": {"authid": "svc", "privkey": SEED}},
        "transports": [
            {
                "type": "websocket",
                "url": "ws://10.0.0.9:8080/ws",
                "endpoint": {"type": "tcp", "host": "10.0.0.9", "port": 8080},
                "serializers": ["cbor", "json"],
                "options": PING_DEFAULTS,
                "proxy": {"host": "proxy.local", "port": 3128},
                **RETRY_DEFAULTS,
            }
        ],
    }
    (mount,) = sample.bridge
    assert (mount.kind.value, mount.path, mount.component) == ("publisher", "/publish", "default")
    assert sample.source == str(tmp_path / "wampweb.toml")


def test_build_component_gives_autobahn_the_transports(sample: WampWebConfig) -> None:
    component = sample.components["backend"].build_component()
    assert isinstance(component, Component)
    rawsocket, websocket = component._transports
    assert (rawsocket.type, rawsocket.url, rawsocket.serializers) == (
        "rawsocket",
        "rs://127.0.0.1:8081",
        ["cbor"],
    )
    assert rawsocket.max_retry_delay == 2.0
    assert rawsocket.max_retries == 7
    assert websocket.type == "websocket"
    assert websocket.serializers == ["json"]
    assert websocket.options["autoPingInterval"] == 30.0
    assert websocket.endpoint["tls"]["hostname"] == "router.example.com"
    assert component._realm == "com.example"


def test_build_component_takes_what_a_file_cannot_hold(sample: WampWebConfig) -> None:
    def is_fatal(error: Exception) -> bool:
        return True

    component = sample.components["default"].build_component(is_fatal=is_fatal)
    assert component._is_fatal is is_fatal


def test_component_arguments_are_fresh_each_time(sample: WampWebConfig) -> None:
    other = sample.components["other"]
    first = other.component_kwargs()
    first["transports"][0]["options"]["autoPingInterval"] = 99
    first["authentication"]["cryptosign"]["authextra"] = {"x": 1}
    assert other.component_kwargs()["transports"][0]["options"] == PING_DEFAULTS
    assert "authextra" not in other.component_kwargs()["authentication"]["cryptosign"]


def test_a_url_alone_is_one_websocket_transport_with_wampweb_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, MAIN)
    assert config.server == ServerConfig()
    assert config.server.listen == DEFAULT_LISTEN == "tcp:8090:interface=127.0.0.1"
    [transport] = config.components["main"].component_kwargs()["transports"]
    assert transport == {
        "type": "websocket",
        "url": "ws://127.0.0.1:8080/ws",
        "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": 8080},
        "serializers": ["cbor", "json"],
        "options": PING_DEFAULTS,
        **RETRY_DEFAULTS,
    }


@pytest.mark.parametrize(
    ("url", "kind", "endpoint", "serializer"),
    [
        (
            "wss://r.example/ws",
            "websocket",
            {"type": "tcp", "host": "r.example", "port": 443, "tls": True},
            None,
        ),
        ("ws://unix:/run/r.sock", "websocket", {"type": "unix", "path": "/run/r.sock"}, None),
        (
            "rs://127.0.0.1:8081",
            "rawsocket",
            {"type": "tcp", "host": "127.0.0.1", "port": 8081},
            "msgpack",
        ),
        # Autobahn itself would connect to rss:// without TLS.
        (
            "rss://r.example:9443",
            "rawsocket",
            {"type": "tcp", "host": "r.example", "port": 9443, "tls": True},
            "msgpack",
        ),
        ("rs://unix:/run/r.sock", "rawsocket", {"type": "unix", "path": "/run/r.sock"}, "msgpack"),
    ],
)
def test_the_url_shorthand_derives_type_and_endpoint(
    tmp_path: Path, url: str, kind: str, endpoint: dict[str, Any], serializer: str | None
) -> None:
    config = load(tmp_path, f'[components.main]\nrealm = "realm1"\nurl = "{url}"\n')
    [transport] = config.components["main"].component_kwargs()["transports"]
    assert transport["type"] == kind
    assert transport["endpoint"] == endpoint
    assert transport.get("serializer") == serializer
    assert transport["options"] == (PING_DEFAULTS if kind == "websocket" else {})


def test_a_transport_type_can_come_from_its_url(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [components.main]
        realm = "realm1"
        transports = ["rs://127.0.0.1:8081", { url = "ws://127.0.0.1:8080/ws" }]
        """,
    )
    kinds = [t.type for t in config.components["main"].transports]
    assert kinds == ["rawsocket", "websocket"]


def test_a_rawsocket_may_name_only_an_endpoint(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [[components.main.transports]]
        type = "rawsocket"
        endpoint = { type = "tcp", host = "::1", port = 8081, version = 6 }
        [components.main]
        realm = "realm1"
        """,
    )
    [transport] = config.components["main"].build_component()._transports
    assert transport.url is None
    assert transport.endpoint == {"type": "tcp", "host": "::1", "port": 8081, "version": 6}


def test_an_explicit_auto_ping_setting_wins_over_the_default(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        [[components.main.transports]]
        url = "ws://127.0.0.1:8080/ws"
        options = { auto_ping_interval = 0 }
        [components.main]
        realm = "realm1"
        """,
    )
    options = config.components["main"].component_kwargs()["transports"][0]["options"]
    assert options["autoPingInterval"] == 0


def test_a_literal_secret_is_kept_but_not_shown(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        MAIN
        + """
        [components.main.authentication.wampcra]
        authid = "joe"
        secret = "literal-wampcra-secret"
        """,
    )
    main = config.components["main"]
    assert main.component_kwargs()["authentication"] == {
        "wampcra": {"authid": "joe", "secret": "literal-wampcra-secret"}
    }
    assert "literal-wampcra-secret" not in repr(config)
    assert "literal-wampcra-secret" not in str(main)


def test_secrets_never_show_in_a_repr(sample: WampWebConfig) -> None:
    text = repr(sample)
    assert "ticket-from-env" not in text
    assert SEED not in text
    assert "<secret from environment variable BACKEND_TICKET>" in text


def test_a_secret_file_loses_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "ticket.txt").write_text("  file-ticket\n")
    config = load(
        tmp_path,
        MAIN
        + """
        [components.main.authentication.ticket]
        ticket = { file = "ticket.txt" }
        """,
    )
    auth = config.components["main"].component_kwargs()["authentication"]
    assert auth == {"ticket": {"ticket": "file-ticket"}}


KEYFILE = f"""This is a comment (all lines until the first empty line are comments indeed).

creator: someone@somewhere
public-key-ed25519: {"ab" * 32}
private-key-ed25519: {SEED.upper()}
"""


@pytest.mark.parametrize(
    "content",
    [SEED.encode(), (SEED + "\n").encode(), KEYFILE.encode(), bytes.fromhex(SEED)],
    ids=["hex", "hex-newline", "crossbar-keyfile", "raw-seed"],
)
def test_a_cryptosign_key_file_may_take_several_forms(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "svc.key").write_bytes(content)
    config = load(
        tmp_path,
        MAIN
        + """
        [components.main.authentication.cryptosign]
        privkey = { file = "svc.key" }
        """,
    )
    auth = config.components["main"].component_kwargs()["authentication"]
    assert auth == {"cryptosign": {"privkey": SEED}}


def test_building_a_component_twice_leaves_the_config_alone(tmp_path: Path) -> None:
    # Autobahn's cryptosign authenticator writes its pubkey into the authextra it is given.
    config = load(
        tmp_path,
        MAIN
        + f"""
        [components.main.authentication.cryptosign]
        privkey = "{SEED}"
        authextra = {{ channel_binding = "tls-unique" }}
        """,
    )
    main = config.components["main"]
    main.build_component()
    main.build_component()
    assert main.component_kwargs()["authentication"]["cryptosign"]["authextra"] == {
        "channel_binding": "tls-unique"
    }


def test_config_objects_are_frozen(sample: WampWebConfig) -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        sample.server.listen = "tcp:1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        sample.components["x"] = sample.components["default"]  # type: ignore[index]
    with pytest.raises(TypeError):
        sample.components["backend"].extra["team"] = "x"  # type: ignore[index]
    assert isinstance(sample.components["backend"].authentication["ticket"]["ticket"], Secret)


def test_parse_config_takes_data_already_read(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("tkt")
    data = {
        "components": {
            "main": {
                "realm": "realm1",
                "url": "ws://localhost:8080/ws",
                "authentication": {"ticket": {"ticket": {"file": "t"}}},
            }
        }
    }
    config = parse_config(data, "settings from a test", base_dir=tmp_path)
    assert isinstance(config.components["main"], ComponentConfig)
    assert config.source == "settings from a test"
    assert (
        config.components["main"].component_kwargs()["authentication"]["ticket"]["ticket"] == "tkt"
    )


@pytest.mark.parametrize(
    ("url", "kind"), [("ws://127.0.0.1:8080/ws", "websocket"), ("rs://127.0.0.1:8081", "rawsocket")]
)
def test_command_line_flags_make_one_default_component(url: str, kind: str) -> None:
    config = config_from_flags(url, "realm1", listen="tcp:0")
    assert list(config.components) == ["default"]
    assert config.server.listen == "tcp:0"
    [transport] = config.components["default"].build_component()._transports
    assert (transport.type, transport.url) == (kind, url)
    assert config_from_flags(url, "realm1").server.listen == DEFAULT_LISTEN


@pytest.mark.parametrize(
    ("args", "key", "reason"),
    [
        (("http://x", "realm1"), "router_url", "expected a ws://"),
        (("ws://x/ws", "my realm"), "realm", "not a WAMP URI"),
        (("ws://x/ws", "realm1", "tcp:http"), "listen", "not a usable Twisted server endpoint"),
    ],
)
def test_bad_command_line_flags_name_the_flag(args: tuple[str, ...], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_flags(*args)
    assert (info.value.key, info.value.source) == (key, "command line")
    assert reason in info.value.reason


TRANSPORT = "[components.main]\nrealm = 'r'\n[[components.main.transports]]\n"
T0 = "components.main.transports[0]"
AUTH = MAIN + "[components.main.authentication"
A = "components.main.authentication"


def cases(prefix: str, key_prefix: str, rows: list[tuple[str, str, str, str]]) -> list[Any]:
    """Rows of (id, dotted key below key_prefix, TOML after prefix, part of the reason)."""
    return [
        pytest.param(prefix + text, key_prefix + key, reason, id=id_)
        for id_, key, text, reason in rows
    ]


# fmt: off
ERRORS = cases("", "", [
    ("unknown-top-level", "serve",
     "[serve]\n" + MAIN, "did you mean 'server'"),
    ("unknown-server-key", "server.listn",
     "[server]\nlistn = 'tcp:1'\n" + MAIN, "did you mean 'listen'"),
    ("bool-is-not-a-number", "server.retry_after",
     "[server]\nretry_after = true\n" + MAIN, "expected seconds, got a boolean"),
    ("negative-drain", "server.drain_timeout",
     "[server]\ndrain_timeout = -1\n" + MAIN, "at least 0"),
    ("zero-stable-after", "server.stable_after",
     "[server]\nstable_after = 0\n" + MAIN, "greater than 0"),
    ("zero-call-timeout", "server.call_timeout",
     "[server]\ncall_timeout = 0\n" + MAIN, "greater than 0"),
    ("bad-listen", "server.listen",
     "[server]\nlisten = 'tcp:http'\n" + MAIN, "not a usable Twisted server endpoint"),
    ("bad-listen-arg", "server.listen",
     "[server]\nlisten = 'tcp:8090:bogus=1'\n" + MAIN, "bogus"),
    ("no-components", "components",
     "[server]\n", "at least one component"),
    ("empty-components", "components",
     "[components]\n", "at least one component"),
    ("bad-name", 'components."my app"',
     "[components.'my app']\nrealm='r'\nurl='ws://h/ws'\n", "must start with a letter"),
    ("bridge-not-table", "bridge",
     "bridge = 3\n" + MAIN, "table or an array of tables"),
])

ERRORS += cases("[components.main]\n", "components.main", [
    ("no-realm", "",
     "url='ws://h/ws'\n", "missing required key 'realm'"),
    ("bad-realm", ".realm",
     "realm='my realm'\nurl='ws://h/ws'\n", "not a WAMP URI"),
    ("realm-type", ".realm",
     "realm=5\nurl='ws://h/ws'\n", "expected a string, got an integer (5)"),
    ("no-transport", "",
     "realm='r'\n", "missing 'url'"),
    ("url-and-transports", ".url",
     "realm='r'\nurl='ws://h/ws'\ntransports=['ws://h/ws']\n", "not both"),
    ("empty-transports", ".transports",
     "realm='r'\ntransports=[]\n", "at least one"),
    ("bad-scheme", ".url",
     "realm='r'\nurl='http://h/ws'\n", "expected a ws://"),
    ("bad-ws-url", ".url",
     "realm='r'\nurl='ws:///ws'\n", "missing hostname"),
    ("bad-rs-url", ".url",
     "realm='r'\nurl='rs://h:1/path'\n", "non-empty path"),
    ("extra-not-table", ".extra",
     "realm='r'\nurl='ws://h/ws'\nextra=3\n", "expected a table"),
    ("bridge-inside-component", ".bridge",
     "realm='r'\nurl='ws://h/ws'\nbridge=3\n", "unknown key"),
])

WS = "url='ws://h/ws'\n"
RS = "url='rs://h:1'\n"
ERRORS += cases(TRANSPORT, T0, [
    ("transport-typo", ".max_retry_dealy",
     WS + "max_retry_dealy=3\n", "did you mean 'max_retry_delay'"),
    ("unknown-type", ".type",
     WS + "type='websockets'\n", "did you mean 'websocket'"),
    ("type-url-mismatch", ".url",
     WS + "type='rawsocket'\n", "needs a rawsocket URL"),
    ("websocket-without-url", "",
     "type='websocket'\n", "needs 'url'"),
    ("rawsocket-without-url", "",
     "type='rawsocket'\n", "'url' or 'endpoint'"),
    ("no-type-no-url", "",
     "endpoint={type='unix', path='/x'}\n", "'type'"),
    ("websocket-serializer", ".serializer",
     WS + "serializer='json'\n", "use 'serializers"),
    ("rawsocket-serializers", ".serializers",
     RS + "serializers=['json']\n", "use 'serializer"),
    ("rawsocket-headers", ".headers",
     RS + "headers={a='b'}\n", "only for websocket"),
    ("rawsocket-proxy", ".proxy",
     RS + "proxy={host='p', port=1}\n", "only for websocket"),
    ("websocket-headers", ".headers",
     WS + "headers={a='b'}\n", "never sends them"),
    ("unknown-serializer", ".serializers[1]",
     WS + "serializers=['json', 'xml']\n", "unknown serializer 'xml'"),
    ("unknown-rawsocket-serializer", ".serializer",
     RS + "serializer='msgpak'\n", "did you mean 'msgpack'"),
    ("no-serializers", ".serializers",
     WS + "serializers=[]\n", "at least one"),
    ("serializers-not-array", ".serializers",
     WS + "serializers='json'\n", "expected an array"),
    ("camel-case-option", ".options.autoPingInterval",
     WS + "options={autoPingInterval=3}\n", "did you mean 'auto_ping_interval'"),
    ("option-type", ".options.auto_ping_interval",
     WS + "options={auto_ping_interval='10'}\n", "expected seconds, got a string ('10')"),
    ("ping-size", ".options.auto_ping_size",
     WS + "options={auto_ping_size=5}\n", "at least 12"),
    ("ws-version", ".options.version",
     WS + "options={version=7}\n", "expected one of"),
    ("option-bool", ".options.tcp_no_delay",
     WS + "options={tcp_no_delay=1}\n", "expected true or false"),
    ("ping-timeout-without-ping", ".options.auto_ping_timeout",
     WS + "options={auto_ping_interval=0, auto_ping_timeout=3}\n", "no effect"),
    ("compression", ".options.per_message_compression_offers",
     WS + "options={per_message_compression_offers=[]}\n", "Python objects"),
    ("rawsocket-payload", ".options.max_message_payload_size",
     RS + "options={max_message_payload_size=100}\n", "at least 512"),
    ("rawsocket-ping", ".options.auto_ping_interval",
     RS + "options={auto_ping_interval=1.0}\n", "unknown key"),
    ("max-retries", ".max_retries",
     WS + "max_retries=-2\n", "at least -1"),
    ("max-retries-bool", ".max_retries",
     WS + "max_retries=true\n", "got a boolean"),
    ("max-retries-float", ".max_retries",
     WS + "max_retries=1.5\n", "expected an integer, got a float"),
    ("zero-initial-delay", ".initial_retry_delay",
     WS + "initial_retry_delay=0\n", "greater than 0"),
    ("max-below-initial", ".max_retry_delay",
     WS + "initial_retry_delay=2\nmax_retry_delay=1\n", "at least initial_retry_delay"),
    ("shrinking-growth", ".retry_delay_growth",
     WS + "retry_delay_growth=0.5\n", "tight loop"),
    ("big-jitter", ".retry_delay_jitter",
     WS + "retry_delay_jitter=0.5\n", "at most 0.2"),
    ("nan-jitter", ".retry_delay_jitter",
     WS + "retry_delay_jitter=nan\n", "finite"),
    ("endpoint-type", ".endpoint.type",
     WS + "endpoint={type='udp'}\n", "expected one of 'tcp', 'unix'"),
    ("endpoint-no-port", ".endpoint",
     WS + "endpoint={type='tcp', host='h'}\n", "missing required key 'port'"),
    ("endpoint-port-type", ".endpoint.port",
     WS + "endpoint={type='tcp', host='h', port='80'}\n", "expected a port number"),
    ("endpoint-port-range", ".endpoint.port",
     WS + "endpoint={type='tcp', host='h', port=70000}\n", "at most 65535"),
    ("endpoint-timeout-float", ".endpoint.timeout",
     WS + "endpoint={type='tcp', host='h', port=80, timeout=2.5}\n", "whole number of seconds"),
    ("endpoint-version", ".endpoint.version",
     WS + "endpoint={type='tcp', host='h', port=80, version=5}\n", "expected 4 or 6"),
    ("tls-over-ipv6", ".endpoint.tls",
     WS + "endpoint={type='tcp', host='h', port=80, version=6, tls=true}\n", "IPv6"),
    ("tls-typo", ".endpoint.tls.hostnam",
     WS + "endpoint={type='tcp', host='h', port=80, tls={hostnam='h'}}\n", "did you mean"),
    ("trust-root-missing", ".endpoint.tls.trust_root",
     WS + "endpoint={type='tcp', host='h', port=80, tls={trust_root='no.pem'}}\n", "cannot read"),
    ("tls-type", ".endpoint.tls",
     WS + "endpoint={type='tcp', host='h', port=80, tls='yes'}\n", "expected true, false or"),
    ("unix-with-host", ".endpoint.host",
     WS + "endpoint={type='unix', path='/x', host='h'}\n", "only for tcp"),
    ("tcp-with-path", ".endpoint.path",
     WS + "endpoint={type='tcp', host='h', port=80, path='/x'}\n", "only for unix"),
    ("wss-without-tls", ".endpoint.tls",
     "url='wss://h/ws'\nendpoint={type='tcp', host='h', port=443}\n", "asks for TLS"),
    ("proxy-and-endpoint", ".proxy",
     WS + "proxy={host='p', port=1}\nendpoint={type='tcp', host='h', port=80}\n", "ignores"),
    ("proxy-no-port", ".proxy",
     WS + "proxy={host='p'}\n", "missing required key 'port'"),
    ("proxy-to-unix", ".proxy",
     "url='ws://unix:/x.sock'\nproxy={host='p', port=1}\n", "Unix socket"),
])

ERRORS += cases(AUTH, A, [
    ("unknown-method", ".tickets",
     ".tickets]\nticket='x'\n", "did you mean 'ticket'"),
    ("ticket-without-ticket", ".ticket",
     ".ticket]\nauthid='joe'\n", "needs 'ticket'"),
    ("ticket-typo", ".ticket.authrol",
     ".ticket]\nticket='x'\nauthrol='r'\n", "did you mean 'authrole'"),
    ("wampcra-without-authid", ".wampcra",
     ".wampcra]\nsecret='x'\n", "needs 'authid'"),
    ("anonymous-with-ticket", ".anonymous.ticket",
     ".anonymous]\nticket='x'\n", "unknown key"),
    ("bad-privkey", ".cryptosign.privkey",
     ".cryptosign]\nprivkey='abcd'\n", "not an Ed25519 private key"),
    ("pubkey-mismatch", ".cryptosign",
     f".cryptosign]\nprivkey='{SEED}'\nauthextra={{pubkey='{'00' * 32}'}}\n",
     "Public key doesn't correspond"),
    ("scram-authextra", ".scram.authextra",
     ".scram]\nauthid='a'\npassword='p'\nauthextra={a=1}\n", "ignores authextra"),
    ("authextra-date", ".ticket.authextra.when",
     ".ticket]\nticket='x'\nauthextra={when=2024-01-01}\n", "WAMP cannot carry"),
    ("authid-mismatch", "",
     ".ticket]\nauthid='a'\nticket='x'\n[components.main.authentication.anonymous]\nauthid='b'\n",
     "same authid"),
    ("env-unset", ".ticket.ticket",
     ".ticket]\nticket={env='WAMPWEB_TEST_UNSET'}\n", "'WAMPWEB_TEST_UNSET' is not set"),
    ("file-missing", ".ticket.ticket",
     ".ticket]\nticket={file='missing.txt'}\n", "cannot read secret file"),
    ("env-and-file", ".ticket.ticket",
     ".ticket]\nticket={env='A', file='b'}\n", "exactly one"),
    ("secret-typo", ".ticket.ticket.evn",
     ".ticket]\nticket={evn='A'}\n", "did you mean 'env'"),
    ("secret-type", ".ticket.ticket",
     ".ticket]\nticket=123\n", "got an integer"),
    ("secret-empty", ".ticket.ticket",
     ".ticket]\nticket=''\n", "is empty"),
])
# fmt: on


@pytest.mark.parametrize(("text", "key", "reason"), ERRORS)
def test_bad_config_is_refused_with_file_key_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str, reason: str
) -> None:
    monkeypatch.delenv("WAMPWEB_TEST_UNSET", raising=False)
    error = refused(tmp_path, text)
    path = str(tmp_path / "wampweb.toml")
    assert (error.source, error.key) == (path, key)
    assert reason in error.reason
    assert str(error) == f"{path}: {key}: {error.reason}"


def test_whatever_autobahn_still_refuses_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise ValueError("a future Autobahn check")

    monkeypatch.setattr(wampweb._config, "Component", refuse)
    error = refused(tmp_path, MAIN)
    assert error.key == "components.main"
    assert error.reason == "Autobahn refused this component: a future Autobahn check"


def test_a_trust_root_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    error = refused(
        tmp_path,
        TRANSPORT
        + "url='wss://h/ws'\n"
        + "endpoint={type='tcp', host='h', port=443, tls={trust_root='ca.pem'}}\n",
    )
    assert error.key == f"{T0}.endpoint.tls.trust_root"
    assert "is not a PEM certificate" in error.reason


def test_refusals_never_show_a_secret(tmp_path: Path) -> None:
    error = refused(tmp_path, AUTH + ".cryptosign]\nprivkey='zz-very-secret-zz'\n")
    assert "zz-very-secret-zz" not in str(error)


@pytest.mark.skipif(
    importlib.util.find_spec("argon2") is not None, reason="autobahn[scram] is installed"
)
def test_scram_without_its_dependencies_is_refused_with_a_hint(tmp_path: Path) -> None:
    error = refused(tmp_path, AUTH + ".scram]\nauthid='a'\npassword='p'\n")
    assert error.key == f"{A}.scram"
    assert "argon2" in error.reason


@pytest.mark.skipif(importlib.util.find_spec("argon2") is None, reason="needs autobahn[scram]")
def test_scram_is_accepted_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRAM_PASSWORD", "pw")
    config = load(tmp_path, AUTH + ".scram]\nauthid='a'\npassword={env='SCRAM_PASSWORD'}\n")
    auth = config.components["main"].component_kwargs()["authentication"]
    assert auth == {"scram": {"authid": "a", "password": "pw"}}


def test_invalid_toml_is_refused_with_line_and_column(tmp_path: Path) -> None:
    error = refused(tmp_path, "[server]\nlisten = \n")
    assert error.source == str(tmp_path / "wampweb.toml")
    assert "not valid TOML" in error.reason
    assert "line 2" in error.reason


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.source == str(tmp_path / "nope.toml")
    assert "cannot read" in info.value.reason


DOCS = Path(__file__).parent.parent / "docs" / "config.rst"


def doc_examples() -> list[str]:
    """The TOML blocks of the reference page's Examples section."""
    section = DOCS.read_text().split("\nExamples\n", 1)[1]
    examples = []
    for block in section.split(".. code-block:: toml\n")[1:]:
        lines = itertools.takewhile(
            lambda line: not line.strip() or line.startswith("    "), block.splitlines()
        )
        examples.append(textwrap.dedent("\n".join(lines)))
    return examples


def test_the_reference_page_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_WEB_TICKET", "t")
    (tmp_path / "certs").mkdir()
    make_pem(tmp_path / "certs" / "example-ca.pem")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "backend-svc.key").write_text(SEED)
    examples = doc_examples()
    assert len(examples) == 2
    shop, backend = (load(tmp_path, text) for text in examples)
    [transport] = shop.components["default"].build_component()._transports
    assert transport.endpoint["tls"]["trust_root"] == str(tmp_path / "certs" / "example-ca.pem")
    [transport] = backend.components["backend"].build_component()._transports
    assert transport.endpoint == {
        "type": "unix",
        "path": "/run/crossbar/router.sock",
        "timeout": 3,
    }
    assert list(backend.components["metrics"].authentication) == ["anonymous"]


def test_importing_the_config_installs_no_reactor() -> None:
    code = (
        "import sys, wampweb._config\n"
        "assert 'twisted.internet.reactor' not in sys.modules\n"
        "wampweb._config.config_from_flags('ws://localhost:8080/ws', 'realm1')\n"
        "assert 'twisted.internet.reactor' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
