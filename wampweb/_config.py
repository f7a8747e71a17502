"""
wampweb's configuration: a TOML file (or a few command-line flags) read into
frozen, typed objects, and from those the arguments of Autobahn Components.

A service that starts with a bad config and fails later, on a reconnect or the
first request, is worse than one that refuses to start. So everything is
checked at load time, including what Autobahn itself only checks while
connecting, and each refusal names the file, the dotted key and the reason.
The transport and authentication tables live in their own modules.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import attrs
from autobahn.twisted.component import Component
from autobahn.twisted.rawsocket import WampRawSocketClientFactory
from autobahn.twisted.websocket import WampWebSocketClientFactory
from autobahn.wamp.message import check_or_raise_uri
from autobahn.wamp.serializer import create_transport_serializer
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import Clock

from wampweb._app import DEFAULT_LISTEN
from wampweb._config_auth import authenticator_kwargs, parse_authentication
from wampweb._config_bridge import MountConfig, parse_bridge
from wampweb._config_read import Table, Where, describe, freeze, key_part, thaw
from wampweb._config_transport import TransportConfig, parse_transport, transport_from_url
from wampweb._errors import ConfigError
from wampweb._heartbeat import keep_settings
from wampweb._join_deadline import DEFAULT_JOIN_TIMEOUT

#: Loopback only: exposing the bridge is a decision, not a default.

_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_FLAGS_SOURCE: Final = "command line"


@attrs.frozen
class ServerConfig:
    """The HTTP side: where to listen and how to behave without a session."""

    listen: str = DEFAULT_LISTEN
    drain_timeout: float = 10.0
    session_wait: float = 0.0
    retry_after: float = 2.0
    call_timeout: float = 30.0
    stable_after: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    #: None: no access log; "-": into wampweb's log; else a file path.
    access_log: str | None = None


@attrs.frozen
class ComponentConfig:
    """
    One named Autobahn Component. ``authentication`` maps a method to its
    settings, with secrets as :class:`~wampweb._config_auth.Secret` so that a
    repr or a log line of the config never shows them. ``join_timeout`` is
    wampweb's, not Autobahn's: it goes to ``add_component``, never to the
    Component.
    """

    name: str
    realm: str
    transports: tuple[TransportConfig, ...]
    authentication: Mapping[str, Mapping[str, object]] = attrs.field(
        factory=lambda: MappingProxyType({})
    )
    extra: Mapping[str, Any] | None = None
    join_timeout: float = DEFAULT_JOIN_TIMEOUT

    def component_kwargs(self) -> dict[str, Any]:
        """
        ``Component(**kwargs)`` arguments, fresh on each call: Autobahn mutates
        what it is given (a transport's ``type``, cryptosign's ``authextra``).
        """
        kwargs: dict[str, Any] = {
            "transports": [transport.to_autobahn() for transport in self.transports],
            "realm": self.realm,
            "authentication": {
                method: authenticator_kwargs(settings)
                for method, settings in self.authentication.items()
            },
        }
        if self.extra is not None:
            kwargs["extra"] = thaw(self.extra)
        return kwargs

    def build_component(self, **overrides: Any) -> Component:
        """
        A new Component. ``overrides`` are for what a file cannot hold, such
        as ``session_factory`` or ``is_fatal``.

        wampweb's own transport settings (the rawsocket heartbeat) are kept on
        the Component's transports, since Autobahn refuses them as options.
        """
        component = Component(**{**self.component_kwargs(), **overrides})
        if "transports" not in overrides:
            for transport, config in zip(component._transports, self.transports, strict=True):
                if config.heartbeat is not None:
                    keep_settings(transport, config.heartbeat)
        return component


@attrs.frozen
class WampWebConfig:
    """
    The whole configuration: the HTTP server, the named Components, and the
    bridge endpoints mounted for them (empty: ``wampweb run`` mounts its
    defaults).
    """

    server: ServerConfig
    components: Mapping[str, ComponentConfig]
    source: str
    bridge: tuple[MountConfig, ...] = ()


def load_config(path: str | os.PathLike[str]) -> WampWebConfig:
    """Read a TOML file; relative paths inside it resolve against its folder."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    return parse_config(data, source, base_dir=Path(source).absolute().parent)


def parse_config(
    data: Mapping[str, Any],
    source: str,
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> WampWebConfig:
    """
    Check already-parsed TOML data. ``source`` names it in errors; relative
    paths resolve against ``base_dir`` (default: the folder of ``source``).
    """
    folder = Path(source).absolute().parent if base_dir is None else Path(base_dir)
    root = Table(data, Where(source=source, key="", base_dir=folder))
    root.only(("server", "components", "bridge"))
    server = root.table("server")
    components = root.table("components")
    if components is None or not components.data:
        raise root.error("components", "configure at least one component")
    parsed = MappingProxyType({name: _parse_component(name, components) for name in components})
    return WampWebConfig(
        server=ServerConfig() if server is None else _parse_server(server),
        components=parsed,
        source=source,
        bridge=_parse_bridge(root, list(parsed)),
    )


def config_from_flags(router_url: str, realm: str, listen: str | None = None) -> WampWebConfig:
    """
    The configuration the command-line flags describe: one component named
    ``default``. Errors name the parameter, since there is no file to point at.
    """
    data: dict[str, Any] = {"components": {"default": {"realm": realm, "url": router_url}}}
    if listen is not None:
        data["server"] = {"listen": listen}
    try:
        return parse_config(data, _FLAGS_SOURCE, base_dir=Path.cwd())
    except ConfigError as exc:
        if exc.key.startswith("server"):
            key = "listen"
        elif exc.key == "components.default.realm":
            key = "realm"
        else:
            key = "router_url"
        raise ConfigError(exc.reason, key=key, source=_FLAGS_SOURCE) from None


def access_log_from_flag(value: str) -> str | None:
    """``--access-log``, checked as ``[server] access_log`` is, paths against the working folder."""
    table = Table({"access_log": value}, Where(source=_FLAGS_SOURCE, key="", base_dir=Path.cwd()))
    try:
        return _parse_access_log(table)
    except ConfigError as exc:
        raise ConfigError(exc.reason, key="access_log", source=_FLAGS_SOURCE) from None


def _parse_server(table: Table) -> ServerConfig:
    table.only(attrs.fields_dict(ServerConfig))
    listen = table.string("listen", DEFAULT_LISTEN)
    try:
        # Parsing (and loading TLS files) never touches the reactor: a Clock
        # stands in (twisted.internet.testing would import trial, pdb and
        # doctest into every wampweb process).
        serverFromString(Clock(), listen)
    except Exception as exc:
        raise table.error(
            "listen", f"not a usable Twisted server endpoint ({type(exc).__name__}: {exc})"
        ) from None
    seconds = "seconds"
    return ServerConfig(
        listen=listen,
        drain_timeout=table.number("drain_timeout", 10.0, at_least=0, what=seconds),
        session_wait=table.number("session_wait", 0.0, at_least=0, what=seconds),
        retry_after=table.number("retry_after", 2.0, above=0, what=seconds),
        call_timeout=table.number("call_timeout", 30.0, above=0, what=seconds),
        stable_after=table.number("stable_after", 10.0, above=0, what=seconds),
        header_timeout=table.number("header_timeout", 10.0, above=0, what=seconds),
        idle_timeout=table.number("idle_timeout", 60.0, above=0, what=seconds),
        access_log=_parse_access_log(table),
    )


def _parse_access_log(table: Table) -> str | None:
    """``"-"`` (into the log) or a file whose folder exists, relative to the config file."""
    value = table.optional_string("access_log")
    if value is None or value == "-":
        return value
    path = table.at("access_log").path(value)
    if not path.parent.is_dir():
        raise table.error("access_log", f"the folder of {str(path)!r} does not exist")
    if path.is_dir():
        raise table.error("access_log", f"{str(path)!r} is a folder, not a file")
    return str(path)


def _parse_component(name: str, components: Table) -> ComponentConfig:
    where = components.at(name)
    if not _NAME.fullmatch(name):
        raise where.error(
            f"component name {key_part(name)} must start with a letter and use only "
            "letters, digits, '-' and '_' (it appears in logs, metrics and routes)"
        )
    table = Table(components.data[name], where)
    table.only(("realm", "url", "transports", "authentication", "extra", "join_timeout"))
    extra = table.table("extra")
    component = ComponentConfig(
        name=name,
        realm=_parse_realm(table),
        transports=_parse_transports(table),
        authentication=parse_authentication(
            table.data.get("authentication", {}), table.at("authentication")
        ),
        extra=None if extra is None else freeze(extra.data, extra.where),
        join_timeout=table.number("join_timeout", DEFAULT_JOIN_TIMEOUT, at_least=0, what="seconds"),
    )
    _probe(component, table)
    return component


def _parse_realm(table: Table) -> str:
    realm = table.string("realm")
    try:
        check_or_raise_uri(realm)
    except Exception:
        raise table.error(
            "realm", f"{realm!r} is not a WAMP URI (no spaces, '#' or empty parts between dots)"
        ) from None
    return realm


def _parse_transports(table: Table) -> tuple[TransportConfig, ...]:
    if "url" in table and "transports" in table:
        raise table.error("url", "give 'url' or 'transports', not both")
    if "url" in table:
        return (transport_from_url(table.data["url"], table.at("url")),)
    entries = table.array("transports")
    if entries is None:
        raise table.where.error("missing 'url' (or 'transports') to reach the router")
    if not entries:
        raise table.error("transports", "list at least one transport")
    where = table.at("transports")
    return tuple(parse_transport(entry, where.item(i)) for i, entry in enumerate(entries))


def _probe(component: ComponentConfig, table: Table) -> None:
    """
    Give Autobahn the result once, as wampweb will at start, and build each
    transport's protocol factory (against a memory reactor), which Autobahn
    itself does only when connecting: whatever it would refuse, refuse now.
    """
    kwargs = component.component_kwargs()
    try:
        Component(**kwargs)
    except Exception as exc:
        raise table.where.error(f"Autobahn refused this component: {exc}") from None
    transports = table.at("url") if "url" in table else table.at("transports")
    for index, transport in enumerate(kwargs["transports"]):
        where = transports if "url" in table else transports.item(index)
        try:
            _build_factory(transport)
        except Exception as exc:
            raise where.error(f"Autobahn refused this transport: {exc}") from None


def _no_session() -> None:
    raise AssertionError("a probe factory never makes a session")


def _build_factory(transport: Mapping[str, Any]) -> None:
    factory: WampWebSocketClientFactory | WampRawSocketClientFactory
    if transport["type"] == "websocket":
        factory = WampWebSocketClientFactory(
            _no_session,
            url=transport["url"],
            serializers=[create_transport_serializer(s) for s in transport["serializers"]],
            proxy=transport.get("proxy"),
            reactor=Clock(),
        )
    else:
        serializer = create_transport_serializer(transport["serializer"])
        factory = WampRawSocketClientFactory(_no_session, serializer=serializer)
    factory.setProtocolOptions(**transport["options"])


def _parse_bridge(root: Table, components: list[str]) -> tuple[MountConfig, ...]:
    if "bridge" not in root:
        return ()
    value = root.data["bridge"]
    where = root.at("bridge")
    entries = value if isinstance(value, list) else [value]
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            at = where.item(index) if isinstance(value, list) else where
            raise at.error(f"expected a table or an array of tables, got {describe(entry)}")
    return parse_bridge(entries, where, components, is_list=isinstance(value, list))
