"""
Reading untyped TOML data into typed values, with errors that say where.

Every check in the config modules goes through :class:`Table` so that a bad
value is always reported with the file, the dotted key (``components.backend.
transports[0].endpoint.port``) and the reason, in one wording.
"""

from __future__ import annotations

import datetime
import difflib
import enum
import json
import re
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import attrs

from wampweb._errors import ConfigError

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


class _Missing(enum.Enum):
    MISSING = enum.auto()


#: Marks a required value: a getter given no default refuses a missing key.
MISSING: Final = _Missing.MISSING


def key_part(name: str) -> str:
    """Spell a key the way TOML would, so a pasted key finds the line."""
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


@attrs.frozen
class Where:
    """Where a value sits: the file, the dotted key, and the folder paths are relative to."""

    source: str
    key: str
    base_dir: Path

    def child(self, name: str) -> Where:
        part = key_part(name)
        return attrs.evolve(self, key=f"{self.key}.{part}" if self.key else part)

    def item(self, index: int) -> Where:
        return attrs.evolve(self, key=f"{self.key}[{index}]")

    def error(self, reason: str) -> ConfigError:
        return ConfigError(reason, key=self.key, source=self.source)

    def path(self, value: str) -> Path:
        """Resolve a path against the config file's folder, not the working directory."""
        return (self.base_dir / Path(value).expanduser()).absolute()


def describe(value: object, *, show: bool = True) -> str:
    """Name a TOML value's type (and the value, unless it may be a secret)."""
    if isinstance(value, bool):
        kind, text = "a boolean", "true" if value else "false"
    elif isinstance(value, int):
        kind, text = "an integer", str(value)
    elif isinstance(value, float):
        kind, text = "a float", repr(value)
    elif isinstance(value, str):
        kind, text = "a string", repr(value)
    elif isinstance(value, Mapping):
        return "a table"
    elif isinstance(value, list | tuple):
        return "an array"
    elif isinstance(value, datetime.date | datetime.time):
        kind, text = "a date/time", value.isoformat()
    else:
        return type(value).__name__
    return f"{kind} ({text})" if show else kind


def unknown_key_reason(name: str, allowed: Collection[str]) -> str:
    """Explain an unknown key, with the nearest known one if it looks like a typo."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if snake != name and snake in allowed:
        return f"unknown key {name!r}; did you mean {snake!r}? (keys are snake_case)"
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    if close:
        return f"unknown key {name!r}; did you mean {close[0]!r}?"
    known = ", ".join(sorted(allowed)) or "none"
    return f"unknown key {name!r}; known keys here: {known}"


def freeze(value: Any, where: Where, *, wamp: bool = False) -> Any:
    """
    Make nested TOML data read-only (tables become mappings, arrays tuples),
    so a frozen config object cannot be changed through its contents.

    With ``wamp``, refuse what no WAMP serializer can carry (TOML dates), since
    such a value would only fail once a session sends it.
    """
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v, where.child(k), wamp=wamp) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v, where.item(i), wamp=wamp) for i, v in enumerate(value))
    if wamp and isinstance(value, datetime.date | datetime.time):
        raise where.error(f"WAMP cannot carry {describe(value)}; use a string")
    return value


def thaw(value: Any) -> Any:
    """Turn frozen data back into fresh dicts and lists: Autobahn checks for (and mutates) them."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


class Table:
    """
    A TOML table being read: typed getters that name the key on error, and a
    check that no unknown key was left, so typos never pass silently.
    """

    def __init__(self, data: object, where: Where) -> None:
        if not isinstance(data, Mapping):
            raise where.error(f"expected a table, got {describe(data)}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def at(self, name: str) -> Where:
        return self.where.child(name)

    def error(self, name: str, reason: str) -> ConfigError:
        return self.at(name).error(reason)

    def only(self, allowed: Collection[str]) -> None:
        for name in self.data:
            if name not in allowed:
                raise self.error(name, unknown_key_reason(name, allowed))

    def refuse(self, name: str, reason: str) -> None:
        if name in self.data:
            raise self.error(name, reason)

    def _get(self, name: str, default: object) -> object:
        if name in self.data:
            return self.data[name]
        if default is MISSING:
            raise self.where.error(f"missing required key {name!r}")
        return default

    def string(self, name: str, default: str | _Missing = MISSING) -> str:
        value = self._get(name, default)
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {describe(value)}")
        if not value.strip():
            raise self.error(name, "must not be empty")
        return value

    def optional_string(self, name: str) -> str | None:
        return self.string(name) if name in self.data else None

    def boolean(self, name: str, default: bool | _Missing = MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {describe(value)}")
        return value

    def integer(
        self,
        name: str,
        default: int | _Missing = MISSING,
        *,
        at_least: int | None = None,
        at_most: int | None = None,
        what: str = "an integer",
    ) -> int:
        value = self._get(name, default)
        # bool is an int to Python but never what a config author meant.
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(name, f"expected {what}, got {describe(value)}")
        self._check_range(name, value, at_least, at_most, above=None)
        return value

    def number(
        self,
        name: str,
        default: float | _Missing = MISSING,
        *,
        at_least: float | None = None,
        above: float | None = None,
        at_most: float | None = None,
        what: str = "a number",
    ) -> float:
        value = self._get(name, default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(name, f"expected {what}, got {describe(value)}")
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise self.error(name, f"must be a finite number, got {describe(value)}")
        self._check_range(name, number, at_least, at_most, above)
        return number

    def _check_range(
        self,
        name: str,
        value: float,
        at_least: float | None,
        at_most: float | None,
        above: float | None,
    ) -> None:
        if at_least is not None and value < at_least:
            raise self.error(name, f"must be at least {at_least:g}, got {value:g}")
        if above is not None and value <= above:
            raise self.error(name, f"must be greater than {above:g}, got {value:g}")
        if at_most is not None and value > at_most:
            raise self.error(name, f"must be at most {at_most:g}, got {value:g}")

    def table(self, name: str) -> Table | None:
        return Table(self.data[name], self.at(name)) if name in self.data else None

    def array(self, name: str) -> list[object] | None:
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, list):
            raise self.error(name, f"expected an array, got {describe(value)}")
        return value

    def choice(self, name: str, choices: Collection[str], default: str | _Missing = MISSING) -> str:
        value = self.string(name, default)
        if value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            expected = ", ".join(repr(c) for c in choices)
            raise self.error(name, f"expected one of {expected}, got {value!r}{hint}")
        return value
