"""
The ``[[bridge]]`` tables: which HTTP endpoints to mount, for which Component,
in which dialect, with which keys and limits.

Each table is checked at load time, like the rest of the file, and refused
with the file, the key and the reason. The names follow Crossbar.io's path
service options (``key``, ``secret``, ``post_body_limit``,
``timestamp_delta_limit``, ``require_ip``, ``require_tls``; webhook ``topic``,
``success_response``, ``error_response``, ``github_secret``) so a Crossbar
configuration translates key for key; what Crossbar lacks (several keys with
permissions, trusted proxies, a CORS allowlist, rate limits, REST mode) has
names of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from wampweb._access import UriPattern, parse_networks
from wampweb._bridge import DEFAULT_BODY_LIMIT, BridgeKind, BridgeMode
from wampweb._config_auth import Secret, resolve_secret
from wampweb._config_read import Table, Where

_ACTIONS = ("publish", "call")
_MATCHES = ("exact", "prefix", "wildcard")

#: Crossbar refuses a post_body_limit above 2**20; wampweb allows larger, with a bound.
MAX_BODY_LIMIT = 64 << 20


@attrs.frozen
class PermissionRule:
    """May a key publish to / call URIs matching ``uri`` (``match`` as WAMP roles use it)."""

    uri: str
    match: str
    actions: frozenset[str]


@attrs.frozen
class KeyConfig:
    """One signing key; several keys on a mount allow rotation and per-client rights."""

    key: str
    secret: Secret = attrs.field(repr=False)
    #: None: anything the mount does. Otherwise only what a rule allows.
    permissions: tuple[PermissionRule, ...] | None = None


@attrs.frozen
class MountConfig:
    """One mounted endpoint, as the file describes it."""

    path: str
    kind: BridgeKind
    component: str
    mode: BridgeMode = BridgeMode.CROSSBAR
    legacy_202: bool = False
    post_body_limit: int = DEFAULT_BODY_LIMIT
    timestamp_delta_limit: float = 300.0
    keys: tuple[KeyConfig, ...] = ()
    #: Rules for unsigned requests (mounts without keys); None: anything.
    permissions: tuple[PermissionRule, ...] | None = None
    require_ip: tuple[str, ...] = ()
    require_tls: bool = False
    trusted_proxies: tuple[str, ...] = ()
    #: None: Crossbar's policy (any origin, with credentials); else the allowed origins.
    cors_origins: tuple[str, ...] | None = None
    cors_credentials: bool = False
    rate_limit: tuple[float, int] | None = None
    call_timeout: float | None = None
    max_call_timeout: float = 300.0
    lenient_signature: bool = False
    lenient_timestamp: bool = False
    replay_protection: bool = True
    topic: str = "wampweb.webhook"
    success_response: str = "OK"
    error_response: str = "NOT OK"
    github_secret: Secret | None = attrs.field(default=None, repr=False)


_COMMON = {
    "path",
    "type",
    "component",
    "mode",
    "post_body_limit",
    "require_ip",
    "require_tls",
    "trusted_proxies",
    "cors_origins",
    "cors_credentials",
    "rate_limit",
    "timestamp_delta_limit",
    "debug",
}
_SIGNED = {
    "key",
    "secret",
    "keys",
    "permissions",
    "lenient_signature",
    "lenient_timestamp",
    "replay_protection",
}
_ALLOWED: Mapping[BridgeKind, frozenset[str]] = {
    BridgeKind.PUBLISHER: frozenset(_COMMON | _SIGNED | {"legacy_202"}),
    BridgeKind.CALLER: frozenset(_COMMON | _SIGNED | {"call_timeout", "max_call_timeout"}),
    BridgeKind.WEBHOOK: frozenset(
        _COMMON | {"topic", "success_response", "error_response", "github_secret"}
    ),
}


def parse_bridge(
    entries: Sequence[Mapping[str, Any]],
    where: Where,
    components: Sequence[str],
    *,
    is_list: bool = True,
) -> tuple[MountConfig, ...]:
    """Every ``[[bridge]]`` table, checked, with paths unique and components known."""
    mounts: list[MountConfig] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        at = where.item(index) if is_list else where
        mount = _parse_mount(Table(entry, at), components)
        normalized = "/" + mount.path.strip("/")
        if normalized in seen:
            raise at.child("path").error(f"{mount.path!r} is already mounted by {seen[normalized]}")
        seen[normalized] = at.key
        mounts.append(mount)
    return tuple(mounts)


def _parse_mount(table: Table, components: Sequence[str]) -> MountConfig:
    kind = BridgeKind(table.choice("type", [k.value for k in BridgeKind]))
    table.only(_ALLOWED[kind])
    path = table.string("path")
    if not path.startswith("/") or path.strip("/") == "" or "?" in path or "#" in path:
        raise table.error(
            "path", f"must be an absolute path below '/', like '/publish', not {path!r}"
        )
    component = table.string(
        "component", "default" if "default" in components else _only(components)
    )
    if component not in components:
        known = ", ".join(repr(c) for c in components)
        raise table.error("component", f"no component named {component!r} (configured: {known})")
    mode = BridgeMode(table.choice("mode", [m.value for m in BridgeMode], "crossbar"))
    table.boolean("debug", False)  # Crossbar's logging switch: accepted, wampweb logs anyway
    # Crossbar's 0 means "no limit"; wampweb keeps a bound even then.
    limit = table.integer("post_body_limit", 0, at_least=0, at_most=MAX_BODY_LIMIT)
    values: dict[str, Any] = {
        "path": path,
        "kind": kind,
        "component": component,
        "mode": mode,
        "post_body_limit": limit or DEFAULT_BODY_LIMIT,
        "timestamp_delta_limit": table.number(
            "timestamp_delta_limit", 300, at_least=0, at_most=86400
        ),
        "require_ip": _networks(table, "require_ip"),
        "require_tls": table.boolean("require_tls", False),
        "trusted_proxies": _networks(table, "trusted_proxies"),
        "cors_origins": _origins(table),
        "cors_credentials": table.boolean("cors_credentials", False),
        "rate_limit": _rate_limit(table),
    }
    if kind is BridgeKind.WEBHOOK:
        values["topic"] = _uri(table, "topic", "wampweb.webhook")
        values["success_response"] = _text(table, "success_response", "OK")
        values["error_response"] = _text(table, "error_response", "NOT OK")
        if "github_secret" in table:
            values["github_secret"] = resolve_secret(
                table.data["github_secret"], table.at("github_secret")
            )
        return MountConfig(**values)
    values["keys"] = _keys(table)
    values["permissions"] = _rules(table, "permissions") if "permissions" in table else None
    if values["permissions"] is not None and values["keys"]:
        raise table.error(
            "permissions",
            "with keys configured every request is signed: put permissions on each key instead",
        )
    values["lenient_signature"] = table.boolean("lenient_signature", False)
    values["lenient_timestamp"] = table.boolean("lenient_timestamp", False)
    values["replay_protection"] = table.boolean("replay_protection", True)
    if values["keys"] and values["replay_protection"] and values["timestamp_delta_limit"] == 0:
        raise table.error(
            "timestamp_delta_limit",
            "0 turns the timestamp window off, and replay protection needs one: set a window "
            "(Crossbar's default is 300) or replay_protection = false",
        )
    if kind is BridgeKind.PUBLISHER:
        values["legacy_202"] = table.boolean("legacy_202", False)
    else:
        max_timeout = table.number("max_call_timeout", 300.0, above=0)
        values["max_call_timeout"] = max_timeout
        if "call_timeout" in table:
            values["call_timeout"] = table.number("call_timeout", above=0, at_most=max_timeout)
    return MountConfig(**values)


def _only(components: Sequence[str]) -> str:
    return components[0] if len(components) == 1 else "default"


def _text(table: Table, name: str, default: str) -> str:
    value = table.data.get(name, default)
    if not isinstance(value, str):
        raise table.error(name, "expected a string")
    return value


def _uri(table: Table, name: str, default: str) -> str:
    from autobahn.wamp.exception import InvalidUriError
    from autobahn.wamp.message import check_or_raise_uri

    value = table.string(name, default)
    try:
        check_or_raise_uri(value, strict=False, allow_empty_components=False)
    except InvalidUriError:
        raise table.error(name, f"{value!r} is not a valid WAMP URI") from None
    return value


def _networks(table: Table, name: str) -> tuple[str, ...]:
    values = table.array(name)
    if values is None:
        return ()
    if not all(isinstance(v, str) for v in values):
        raise table.error(name, "expected an array of IP addresses or networks (strings)")
    try:
        parse_networks(values)  # type: ignore[arg-type]
    except ValueError as error:
        raise table.error(name, str(error)) from None
    return tuple(values)  # type: ignore[arg-type]


def _origins(table: Table) -> tuple[str, ...] | None:
    values = table.array("cors_origins")
    if values is None:
        if "cors_credentials" in table:
            raise table.error(
                "cors_credentials", "only means something with cors_origins (an allowlist)"
            )
        return None
    for value in values:
        if not isinstance(value, str) or not (
            value == "*" or value.startswith(("http://", "https://"))
        ):
            raise table.error(
                "cors_origins",
                f"each origin is '*' or like 'https://app.example.com', not {value!r}",
            )
    if "*" in values and table.data.get("cors_credentials"):
        raise table.error(
            "cors_credentials", "'*' with credentials would let any site act as the user"
        )
    return tuple(values)  # type: ignore[arg-type]


def _rate_limit(table: Table) -> tuple[float, int] | None:
    limit = table.table("rate_limit")
    if limit is None:
        return None
    limit.only(("rate", "burst"))
    rate = limit.number("rate", above=0, what="requests per second")
    burst = limit.integer("burst", max(1, int(rate)), at_least=1)
    return rate, burst


def _keys(table: Table) -> tuple[KeyConfig, ...]:
    keys: list[KeyConfig] = []
    if "key" in table or "secret" in table:
        if "keys" in table:
            raise table.error("keys", "give either key and secret, or keys, not both")
        key = table.string("key")
        if "secret" not in table:
            raise table.where.error("'key' needs a 'secret' to sign with")
        keys.append(KeyConfig(key, resolve_secret(table.data["secret"], table.at("secret"))))
    entries = table.array("keys") or []
    for index, entry in enumerate(entries):
        item = Table(entry, table.at("keys").item(index))
        item.only(("key", "secret", "permissions"))
        rules = _rules(item, "permissions") if "permissions" in item else None
        keys.append(
            KeyConfig(
                item.string("key"),
                resolve_secret(item.data.get("secret"), item.at("secret")),
                rules,
            )
        )
    # The same key twice is a rotation (old and new secret), so its rights must agree.
    rights: dict[str, tuple[PermissionRule, ...] | None] = {}
    for entry in keys:
        if entry.key in rights and rights[entry.key] != entry.permissions:
            raise table.error(
                "keys", f"the key {entry.key!r} appears twice with different permissions"
            )
        rights[entry.key] = entry.permissions
    return tuple(keys)


def _rules(table: Table, name: str) -> tuple[PermissionRule, ...]:
    entries = table.array(name)
    rules: list[PermissionRule] = []
    for index, entry in enumerate(entries or []):
        item = Table(entry, table.at(name).item(index))
        item.only(("uri", "match", "allow"))
        uri = item.data.get("uri")
        if not isinstance(uri, str):
            raise item.error("uri", "expected a string (a URI, a prefix or a wildcard pattern)")
        match = item.choice("match", _MATCHES, "exact")
        allow = item.array("allow")
        if allow is None:
            raise item.where.error(
                f"missing required key 'allow' (a list of {', '.join(_ACTIONS)})"
            )
        for action in allow:
            if action not in _ACTIONS:
                raise item.error("allow", f"expected 'publish' and/or 'call', not {action!r}")
        try:
            UriPattern(uri, match)  # type: ignore[arg-type]
        except ValueError as error:
            raise item.error("uri", str(error)) from None
        rules.append(PermissionRule(uri, match, frozenset(allow)))  # type: ignore[arg-type]
    return tuple(rules)
