"""
One entry of a component's ``transports``: URL, endpoint, serializers,
protocol options, the reconnect knobs, and the rawsocket heartbeat.

Autobahn's Component checks a transport's keys when it is created but most
values only when it connects, on every attempt, where a mistake becomes an
endless reconnect loop or a stalled one. Everything is checked here instead,
and the endpoint is always spelled out, because Autobahn derives a wrong one
from some URLs (``rss://`` without TLS, ``ws://unix:/path`` as a TCP port).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import attrs
from autobahn.rawsocket.util import parse_url as parse_rs_url
from autobahn.wamp.serializer import SERID_TO_SER
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.util import parse_url as parse_ws_url

from wampweb._config_read import Table, Where, describe
from wampweb._heartbeat import DEFAULT_HEARTBEAT, HeartbeatSettings

TransportType = Literal["websocket", "rawsocket"]

#: Autobahn's own default for websocket serializers (those installed).
WEBSOCKET_SERIALIZERS: Final = tuple(s for s in ("cbor", "json") if s in SERID_TO_SER)
#: wampweb's rawsocket default: measured fastest with Crossbar (DESIGN.md).
RAWSOCKET_SERIALIZER: Final = "msgpack" if "msgpack" in SERID_TO_SER else "json"
#: Autobahn pings never by default, so a half-open link goes unnoticed.
WEBSOCKET_OPTION_DEFAULTS: Final[Mapping[str, float]] = MappingProxyType(
    {"auto_ping_interval": 10.0, "auto_ping_timeout": 5.0}
)
#: A jitter above this risks a negative delay (Autobahn draws from a normal
#: distribution), which Twisted's callLater refuses, stalling reconnection.
MAX_JITTER: Final = 0.2

#: A gateway should be back within seconds of its router: Autobahn's 300 s ceiling
#: would leave HTTP clients on 503 for minutes after a restart.
DEFAULT_MAX_RETRY_DELAY = 3.0


@attrs.frozen
class _Option:
    camel: str
    kind: Literal["bool", "int", "seconds"]
    at_least: float | None = None
    at_most: float | None = None


#: snake_case option -> Autobahn's setProtocolOptions keyword and its range.
_WEBSOCKET_OPTIONS: Final[Mapping[str, _Option]] = {
    "version": _Option("version", "int"),
    "utf8_validate_incoming": _Option("utf8validateIncoming", "bool"),
    "accept_masked_server_frames": _Option("acceptMaskedServerFrames", "bool"),
    "mask_client_frames": _Option("maskClientFrames", "bool"),
    "apply_mask": _Option("applyMask", "bool"),
    "max_frame_payload_size": _Option("maxFramePayloadSize", "int", 0),
    "max_message_payload_size": _Option("maxMessagePayloadSize", "int", 0),
    "auto_fragment_size": _Option("autoFragmentSize", "int", 0),
    "fail_by_drop": _Option("failByDrop", "bool"),
    "echo_close_code_reason": _Option("echoCloseCodeReason", "bool"),
    "server_connection_drop_timeout": _Option("serverConnectionDropTimeout", "seconds", 0),
    "open_handshake_timeout": _Option("openHandshakeTimeout", "seconds", 0),
    "close_handshake_timeout": _Option("closeHandshakeTimeout", "seconds", 0),
    "tcp_no_delay": _Option("tcpNoDelay", "bool"),
    "auto_ping_interval": _Option("autoPingInterval", "seconds", 0),
    "auto_ping_timeout": _Option("autoPingTimeout", "seconds", 0),
    "auto_ping_size": _Option("autoPingSize", "int", 12, 125),
    "auto_ping_restart_on_any_traffic": _Option("autoPingRestartOnAnyTraffic", "bool"),
}
_RAWSOCKET_OPTIONS: Final[Mapping[str, _Option]] = {
    "max_message_payload_size": _Option("maxMessagePayloadSize", "int", 512, 2**24),
}
#: wampweb's own rawsocket options (see :mod:`wampweb._heartbeat`): they sit in
#: the same ``options`` table but never reach Autobahn, which refuses them.
_HEARTBEAT_OPTIONS: Final = ("heartbeat_interval", "heartbeat_timeout")
_NOT_EXPRESSIBLE: Final = ("per_message_compression_offers", "per_message_compression_accept")

_RETRY_KEYS: Final = (
    "max_retries",
    "initial_retry_delay",
    "max_retry_delay",
    "retry_delay_growth",
    "retry_delay_jitter",
)
_TRANSPORT_KEYS: Final = (
    "type",
    "url",
    "endpoint",
    "serializer",
    "serializers",
    "options",
    "proxy",
    "headers",
    *_RETRY_KEYS,
)


@attrs.frozen
class TlsConfig:
    """TLS settings of a TCP endpoint; ``trust_root`` is an absolute path to one PEM CA."""

    hostname: str | None = None
    trust_root: str | None = None


@attrs.frozen
class EndpointConfig:
    """Where to connect: a TCP host and port, or a Unix socket path."""

    type: Literal["tcp", "unix"]
    host: str | None = None
    port: int | None = None
    path: str | None = None
    timeout: int | None = None
    version: Literal[4, 6] | None = None
    tls: bool | TlsConfig = False

    def to_autobahn(self) -> dict[str, Any]:
        """The endpoint dict Autobahn's Component accepts."""
        out: dict[str, Any] = {"type": self.type}
        if self.type == "tcp":
            out.update(host=self.host, port=self.port)
        else:
            out["path"] = self.path
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.version is not None:
            out["version"] = self.version
        if isinstance(self.tls, TlsConfig):
            out["tls"] = {
                k: v
                for k, v in (("hostname", self.tls.hostname), ("trust_root", self.tls.trust_root))
                if v is not None
            }
        elif self.tls:
            out["tls"] = True
        return out


@attrs.frozen
class ProxyConfig:
    """An HTTP proxy that a websocket connects through with CONNECT."""

    host: str
    port: int


@attrs.frozen
class TransportConfig:
    """
    One way to reach the router. ``options`` keeps the file's snake_case names;
    :meth:`to_autobahn` gives Autobahn the camelCase ones it matches exactly.
    """

    type: TransportType
    url: str | None
    endpoint: EndpointConfig
    serializers: tuple[str, ...]
    options: Mapping[str, bool | int | float] = attrs.field(factory=lambda: MappingProxyType({}))
    proxy: ProxyConfig | None = None
    #: Rawsocket only (websocket has auto-ping); None means wampweb's default.
    heartbeat: HeartbeatSettings | None = None
    max_retries: int = -1
    initial_retry_delay: float = 0.5
    max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY
    retry_delay_growth: float = 1.5
    retry_delay_jitter: float = 0.1

    def to_autobahn(self) -> dict[str, Any]:
        """The transport dict Autobahn's Component accepts, fresh on each call."""
        table = _WEBSOCKET_OPTIONS if self.type == "websocket" else _RAWSOCKET_OPTIONS
        out: dict[str, Any] = {"type": self.type}
        if self.url is not None:
            out["url"] = self.url
        out["endpoint"] = self.endpoint.to_autobahn()
        if self.type == "websocket":
            out["serializers"] = list(self.serializers)
        else:
            out["serializer"] = self.serializers[0]
        out["options"] = {table[k].camel: v for k, v in self.options.items()}
        if self.proxy is not None:
            out["proxy"] = {"host": self.proxy.host, "port": self.proxy.port}
        for key in _RETRY_KEYS:
            out[key] = getattr(self, key)
        return out


def parse_transport(value: object, where: Where) -> TransportConfig:
    """Read one entry of ``transports``: a table, or a bare URL string."""
    if isinstance(value, str):
        return transport_from_url(value, where)
    table = Table(value, where)
    table.only(_TRANSPORT_KEYS)
    url = table.optional_string("url")
    kind = _transport_type(table, url)
    if kind == "websocket":
        table.refuse("serializer", "'serializer' is for rawsocket; use 'serializers = [...]'")
        table.refuse(
            "headers",
            "Autobahn's Twisted Component accepts 'headers' but never sends them; "
            "wampweb refuses them rather than drop them silently",
        )
        if url is None:
            raise table.where.error("a websocket transport needs 'url'")
    else:
        table.refuse("serializers", "'serializers' is for websocket; use 'serializer = \"...\"'")
        for key in ("headers", "proxy"):
            table.refuse(key, f"{key!r} is only for websocket transports")
        if url is None and "endpoint" not in table:
            raise table.where.error("a rawsocket transport needs 'url' or 'endpoint'")
    derived = None if url is None else _endpoint_from_url(kind, url, table.at("url"))
    given = table.table("endpoint")
    endpoint = derived if given is None else _parse_endpoint(given)
    assert endpoint is not None  # a rawsocket without url has an endpoint, checked above
    if given is not None and derived is not None and derived.tls and not endpoint.tls:
        fix = "set endpoint.tls = true" if endpoint.type == "tcp" else "a Unix socket has no TLS"
        raise given.error("tls", f"the url {url!r} asks for TLS; {fix}")
    proxy = _parse_proxy(table, endpoint)
    return TransportConfig(
        type=kind,
        url=url,
        endpoint=endpoint,
        serializers=_parse_serializers(kind, table),
        options=_parse_options(kind, table.table("options"), table.at("options")),
        proxy=proxy,
        heartbeat=_parse_heartbeat(kind, table.table("options")),
        **_parse_retry(table),
    )


def transport_from_url(url: object, where: Where) -> TransportConfig:
    """The shorthand: one transport from a URL alone, its type from the scheme."""
    if not isinstance(url, str):
        raise where.error(f"expected a URL string, got {describe(url)}")
    kind = _type_from_scheme(url, where)
    return TransportConfig(
        type=kind,
        url=url,
        endpoint=_endpoint_from_url(kind, url, where),
        serializers=_parse_serializers(kind, Table({}, where)),
        options=_parse_options(kind, None, where),
        heartbeat=_parse_heartbeat(kind, None),
    )


def _type_from_scheme(url: str, where: Where) -> TransportType:
    scheme = url.partition("://")[0].lower()
    if scheme in ("ws", "wss"):
        return "websocket"
    if scheme in ("rs", "rss"):
        return "rawsocket"
    raise where.error(f"expected a ws://, wss://, rs:// or rss:// URL, got {url!r}")


def _transport_type(table: Table, url: str | None) -> TransportType:
    if "type" not in table:
        if url is None:
            raise table.where.error("missing required key 'type' (or a 'url' to infer it from)")
        return _type_from_scheme(url, table.at("url"))
    kind: TransportType = "websocket"
    if table.choice("type", ("websocket", "rawsocket")) == "rawsocket":
        kind = "rawsocket"
    if url is not None and _type_from_scheme(url, table.at("url")) != kind:
        raise table.error("url", f"a {kind} transport needs a {kind} URL, got {url!r}")
    return kind


def _endpoint_from_url(kind: TransportType, url: str, where: Where) -> EndpointConfig:
    try:
        if kind == "websocket":
            secure, host, port, *_ = parse_ws_url(url)
        else:
            secure, host, port = parse_rs_url(url)
    except Exception as exc:
        raise where.error(str(exc)) from None
    if host == "unix":
        if secure:
            raise where.error(f"TLS over a Unix socket is not supported, got {url!r}")
        return EndpointConfig(type="unix", path=where.path(port).as_posix())
    _check_onion(host, secure, where)
    return EndpointConfig(type="tcp", host=host, port=port, tls=secure)


def _parse_endpoint(table: Table) -> EndpointConfig:
    kind = table.choice("type", ("tcp", "unix"))
    timeout = (
        table.integer("timeout", at_least=1, what="a whole number of seconds")
        if "timeout" in table
        else None
    )
    if kind == "unix":
        for key in ("host", "port", "tls", "version"):
            table.refuse(key, f"{key!r} is only for tcp endpoints")
        table.only(("type", "path", "timeout"))
        path = table.where.child("path").path(table.string("path"))
        return EndpointConfig(type="unix", path=path.as_posix(), timeout=timeout)
    table.refuse("path", "'path' is only for unix endpoints")
    table.only(("type", "host", "port", "timeout", "version", "tls"))
    host = table.string("host")
    version = table.integer("version", 4)
    if version not in (4, 6):
        raise table.error("version", f"expected 4 or 6, got {version}")
    tls = _parse_tls(table)
    if tls and version == 6:
        raise table.error("tls", "Autobahn has no TLS client endpoint for IPv6 (version = 6)")
    _check_onion(host, bool(tls), table.at("host"))
    return EndpointConfig(
        type="tcp",
        host=host,
        port=table.integer("port", at_least=1, at_most=65535, what="a port number"),
        timeout=timeout,
        version=6 if version == 6 else (4 if "version" in table else None),
        tls=tls,
    )


def _check_onion(host: str, tls: bool, where: Where) -> None:
    """Autobahn hands a plain-TCP ``.onion`` host to txtorcon, which may be missing."""
    if not tls and host.endswith(".onion") and importlib.util.find_spec("txtorcon") is None:
        raise where.error(f"{host!r} is a Tor onion service; install txtorcon")


def _parse_tls(table: Table) -> bool | TlsConfig:
    if "tls" not in table:
        return False
    value = table.data["tls"]
    if isinstance(value, bool):
        tls: bool | TlsConfig = value
    elif not isinstance(value, Mapping):
        raise table.error(
            "tls",
            f"expected true, false or a table {{hostname, trust_root}}, got {describe(value)}",
        )
    else:
        sub = Table(value, table.at("tls"))
        sub.only(("hostname", "trust_root"))
        trust_root = None
        if "trust_root" in sub:
            trust_root = _check_trust_root(sub, sub.at("trust_root").path(sub.string("trust_root")))
        tls = TlsConfig(hostname=sub.optional_string("hostname"), trust_root=trust_root)
    if tls and importlib.util.find_spec("OpenSSL") is None:
        raise table.error("tls", "TLS needs pyOpenSSL; install autobahn[twisted,encryption]")
    return tls


def _check_trust_root(table: Table, path: Path) -> str:
    """Load the CA now: Autobahn would read it (relative to the cwd) at each connect."""
    from twisted.internet.ssl import Certificate

    try:
        Certificate.loadPEM(path.read_bytes())
    except OSError as exc:
        raise table.error("trust_root", f"cannot read {str(path)!r}: {exc.strerror}") from None
    except Exception as exc:
        raise table.error("trust_root", f"{str(path)!r} is not a PEM certificate: {exc}") from None
    return str(path)


def _parse_proxy(table: Table, endpoint: EndpointConfig) -> ProxyConfig | None:
    proxy = table.table("proxy")
    if proxy is None:
        return None
    proxy.only(("host", "port"))
    if "endpoint" in table:
        raise proxy.where.error("Autobahn ignores 'endpoint' when 'proxy' is set; give only one")
    if endpoint.type == "unix":
        raise proxy.where.error("a proxy cannot reach a Unix socket URL")
    return ProxyConfig(
        host=proxy.string("host"),
        port=proxy.integer("port", at_least=1, at_most=65535, what="a port number"),
    )


def _parse_serializers(kind: TransportType, table: Table) -> tuple[str, ...]:
    known = sorted(SERID_TO_SER)
    if kind == "rawsocket":
        return (table.choice("serializer", known, RAWSOCKET_SERIALIZER),)
    names = table.array("serializers")
    if names is None:
        return WEBSOCKET_SERIALIZERS
    if not names:
        raise table.error("serializers", "must name at least one serializer")
    for index, entry in enumerate(names):
        where = table.at("serializers").item(index)
        if not isinstance(entry, str):
            raise where.error(f"expected a serializer name, got {describe(entry)}")
        if entry not in known:
            raise where.error(f"unknown serializer {entry!r}; installed: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise table.error("serializers", "names a serializer twice")
    return tuple(str(n) for n in names)


def _parse_options(
    kind: TransportType, table: Table | None, where: Where
) -> Mapping[str, bool | int | float]:
    known = _WEBSOCKET_OPTIONS if kind == "websocket" else _RAWSOCKET_OPTIONS
    options: dict[str, bool | int | float] = (
        dict(WEBSOCKET_OPTION_DEFAULTS) if kind == "websocket" else {}
    )
    if table is None:
        return MappingProxyType(options)
    if kind == "websocket":
        for key in _NOT_EXPRESSIBLE:
            table.refuse(key, f"{key!r} takes Python objects; set it in code, not in a file")
        for key in _HEARTBEAT_OPTIONS:
            table.refuse(key, f"{key!r} is for rawsocket; websocket has auto_ping_* instead")
        table.only(known)
    else:
        table.only([*known, *_HEARTBEAT_OPTIONS])
    for key, option in known.items():
        if key not in table:
            continue
        if option.kind == "bool":
            options[key] = table.boolean(key)
        elif option.kind == "int":
            at_most = None if option.at_most is None else int(option.at_most)
            at_least = None if option.at_least is None else int(option.at_least)
            options[key] = table.integer(key, at_least=at_least, at_most=at_most)
        else:
            options[key] = table.number(key, at_least=option.at_least, what="seconds")
    version = options.get("version")
    if version is not None and version not in WebSocketProtocol.SUPPORTED_SPEC_VERSIONS:
        supported = WebSocketProtocol.SUPPORTED_SPEC_VERSIONS
        raise table.error("version", f"expected one of {supported}, got {version}")
    if "auto_ping_timeout" in table and options.get("auto_ping_interval") == 0:
        raise table.error("auto_ping_timeout", "has no effect while auto_ping_interval is 0")
    return MappingProxyType(options)


def _parse_heartbeat(kind: TransportType, table: Table | None) -> HeartbeatSettings | None:
    """Rawsocket only; the keys were already limited to known ones by :func:`_parse_options`."""
    if kind == "websocket":
        return None
    if table is None:
        return DEFAULT_HEARTBEAT
    interval = table.number(
        "heartbeat_interval", DEFAULT_HEARTBEAT.interval, at_least=0, what="seconds"
    )
    timeout = table.number("heartbeat_timeout", DEFAULT_HEARTBEAT.timeout, above=0, what="seconds")
    if interval == 0 and "heartbeat_timeout" in table:
        raise table.error("heartbeat_timeout", "has no effect while heartbeat_interval is 0")
    return HeartbeatSettings(interval=interval, timeout=timeout)


def _parse_retry(table: Table) -> dict[str, Any]:
    initial = table.number("initial_retry_delay", 0.5, above=0, what="seconds")
    # A longer first delay than the default ceiling lifts the ceiling with it.
    ceiling = table.number(
        "max_retry_delay", max(DEFAULT_MAX_RETRY_DELAY, initial), above=0, what="seconds"
    )
    if ceiling < initial:
        raise table.error(
            "max_retry_delay",
            f"must be at least initial_retry_delay ({initial:g}), got {ceiling:g}",
        )
    growth = table.number("retry_delay_growth", 1.5)
    if growth < 1:
        raise table.error(
            "retry_delay_growth",
            f"must be at least 1, got {growth:g}: below 1 the delay shrinks into a tight loop",
        )
    jitter = table.number("retry_delay_jitter", 0.1, at_least=0)
    if jitter > MAX_JITTER:
        raise table.error(
            "retry_delay_jitter",
            f"must be at most {MAX_JITTER:g}, got {jitter:g}: Autobahn draws each delay from a "
            "normal distribution this wide, and one negative draw stalls reconnecting for good",
        )
    return {
        "max_retries": table.integer("max_retries", -1, at_least=-1),
        "initial_retry_delay": initial,
        "max_retry_delay": ceiling,
        "retry_delay_growth": growth,
        "retry_delay_jitter": jitter,
    }
