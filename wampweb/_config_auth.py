"""
The ``authentication`` table of a component: secrets and authenticators.

Autobahn builds authenticators only when a session is created, so a typo or a
bad key would surface on every reconnect, forever, long after start. Here each
method is checked against its own list of keys and then built once with
Autobahn's own :func:`~autobahn.wamp.auth.create_authenticator`, so anything it
would refuse is refused at load time. Secrets come from the file, an
environment variable or a file of their own, and never appear in a repr or an
error message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs
from autobahn.wamp.auth import create_authenticator

from wampweb._config_read import Table, Where, describe, freeze, thaw


@attrs.frozen(repr=False)
class Secret:
    """A secret value: its repr says where it came from, never what it is."""

    value: str
    origin: str

    def __repr__(self) -> str:
        return f"<secret from {self.origin}>"


@attrs.frozen
class _Method:
    secret: str | None
    required: tuple[str, ...] = ()
    authextra: bool = True


#: The methods ``create_authenticator`` knows, with the keys each one uses.
#: Autobahn ignores unknown keys for several of them; wampweb does not.
_METHODS: Final[Mapping[str, _Method]] = {
    "anonymous": _Method(secret=None),
    "anonymous-proxy": _Method(secret=None),
    "ticket": _Method(secret="ticket"),
    "wampcra": _Method(secret="secret", required=("authid",)),
    "cryptosign": _Method(secret="privkey"),
    "cryptosign-proxy": _Method(secret="privkey"),
    # AuthScram sends a nonce of its own as authextra and drops the user's.
    "scram": _Method(secret="password", required=("authid",), authextra=False),
}

_HEX_SEED: Final = re.compile(r"[0-9a-fA-F]{64}")


def _read_source(value: object, where: Where) -> tuple[bytes, str]:
    """Get a secret's bytes from a literal, ``{env = NAME}`` or ``{file = PATH}``."""
    if isinstance(value, str):
        return value.encode(), "the config file"
    if not isinstance(value, Mapping):
        raise where.error(
            "expected a string, {env = 'NAME'} or {file = 'PATH'}, "
            f"got {describe(value, show=False)}"
        )
    table = Table(value, where)
    table.only(("env", "file"))
    if len(table.data) != 1:
        raise where.error("give exactly one of 'env' or 'file'")
    if "env" in table:
        name = table.string("env")
        found = os.environ.get(name)
        if found is None:
            raise where.error(f"environment variable {name!r} is not set")
        return found.encode(), f"environment variable {name}"
    path = where.path(table.string("file"))
    try:
        return path.read_bytes(), f"file {path}"
    except OSError as exc:
        raise where.error(f"cannot read secret file {str(path)!r}: {exc.strerror}") from None


def resolve_secret(value: object, where: Where) -> Secret:
    """Resolve a text secret; surrounding whitespace (a file's newline) is not part of it."""
    raw, origin = _read_source(value, where)
    try:
        text = raw.decode().strip()
    except UnicodeDecodeError:
        raise where.error(f"the secret from {origin} is not UTF-8 text") from None
    if not text:
        raise where.error(f"the secret from {origin} is empty")
    return Secret(text, origin)


def resolve_privkey(value: object, where: Where) -> Secret:
    """
    Resolve a cryptosign private key to the 64 hex digits Autobahn expects.

    Accepts those digits, a Crossbar key file (its ``private-key-ed25519``
    line), or a raw 32-byte seed file, so keys made by the usual tools work.
    """
    raw, origin = _read_source(value, where)
    if len(raw) == 32 and origin.startswith("file "):
        return Secret(raw.hex(), origin)
    try:
        text = raw.decode().strip()
    except UnicodeDecodeError:
        raise where.error(f"the key from {origin} is neither text nor a 32-byte seed") from None
    if _HEX_SEED.fullmatch(text):
        return Secret(text.lower(), origin)
    lines = (line.partition(":") for line in text.splitlines())
    fields = {name.strip(): rest.strip() for name, sep, rest in lines if sep}
    found = fields.get("private-key-ed25519", "")
    if _HEX_SEED.fullmatch(found):
        return Secret(found.lower(), origin)
    if "public-key-ed25519" in fields:
        raise where.error(f"the key file from {origin} holds only a public key")
    raise where.error(
        f"the key from {origin} is not an Ed25519 private key: expected 64 hex digits, "
        "a Crossbar key file with a 'private-key-ed25519' line, or a 32-byte seed file"
    )


def parse_authentication(value: object, where: Where) -> Mapping[str, Mapping[str, object]]:
    """Read, resolve and check the ``authentication`` table of one component."""
    table = Table(value, where)
    table.only(_METHODS)
    methods: dict[str, Mapping[str, object]] = {}
    for name in table:
        method = Table(table.data[name], table.at(name))
        methods[name] = MappingProxyType(_parse_method(name, _METHODS[name], method))
    _check_with_autobahn(methods, where)
    return MappingProxyType(methods)


def _parse_method(name: str, method: _Method, table: Table) -> dict[str, object]:
    allowed = ["authid", "authrole"]
    if method.authextra:
        allowed.append("authextra")
    else:
        table.refuse("authextra", f"Autobahn's {name} authenticator ignores authextra")
    if method.secret:
        allowed.append(method.secret)
    table.only(allowed)
    settings: dict[str, object] = {}
    for key in ("authid", "authrole"):
        found = table.optional_string(key)
        if found is not None:
            settings[key] = found
    for key in method.required:
        if key not in settings:
            raise table.where.error(f"{name} authentication needs {key!r}")
    extra = table.table("authextra")
    if extra is not None:
        settings["authextra"] = freeze(extra.data, extra.where, wamp=True)
    if method.secret:
        if method.secret not in table:
            raise table.where.error(f"{name} authentication needs {method.secret!r}")
        resolve = resolve_privkey if method.secret == "privkey" else resolve_secret
        settings[method.secret] = resolve(table.data[method.secret], table.at(method.secret))
    return settings


def authenticator_kwargs(settings: Mapping[str, object]) -> dict[str, Any]:
    """One method's settings as fresh ``create_authenticator`` kwargs, secrets revealed."""
    return {
        key: value.value if isinstance(value, Secret) else thaw(value)
        for key, value in settings.items()
    }


def _build(name: str, settings: Mapping[str, object], where: Where) -> Any:
    """Build the authenticator once, as each session will, and translate a refusal."""
    try:
        return create_authenticator(name, **authenticator_kwargs(settings))
    except Exception as exc:
        message = str(exc)
        for value in settings.values():
            if isinstance(value, Secret):
                message = message.replace(value.value, "***")
        raise where.error(f"Autobahn refused the {name} settings: {message}") from None


def _check_with_autobahn(methods: Mapping[str, Mapping[str, object]], where: Where) -> None:
    """
    Build every authenticator as each session will, then refuse methods that
    disagree: a HELLO carries one authid, one authrole and one merged
    authextra, and Autobahn finds a conflict only while connecting.
    """
    built = {name: _build(name, m, where.child(name)) for name, m in methods.items()}
    for key in ("authid", "authrole"):
        values = {name: m[key] for name, m in methods.items() if key in m}
        if len(set(values.values())) > 1:
            listed = ", ".join(f"{name}: {value!r}" for name, value in values.items())
            raise where.error(f"every method must use the same {key}; got {listed}")
    merged: dict[str, tuple[str, object]] = {}
    for name, authenticator in built.items():
        for key, value in authenticator.authextra.items():
            if key in merged and merged[key][1] != value:
                raise where.error(
                    f"authextra {key!r} differs between {merged[key][0]} and {name}; "
                    "one HELLO carries one authextra"
                )
            merged.setdefault(key, (name, value))
