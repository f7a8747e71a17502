"""
Publish and call options a request may set, checked before Autobahn sees them.

Autobahn validates ``PublishOptions``/``CallOptions`` with ``assert``: a wrong
type is an ``AssertionError`` (an HTTP 500) with the checks on, and goes
through to the router with ``python -O``. Here each allowed option has a type,
and anything else is a :class:`BadRequestError` naming the option.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autobahn.wamp.types import CallOptions, PublishOptions

from wampweb._errors import BadRequestError


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_id_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 for v in value
    )


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_forward_for(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(hop, dict)
        and set(hop) == {"session", "authid", "authrole"}
        and isinstance(hop["session"], int)
        and not isinstance(hop["session"], bool)
        and isinstance(hop["authid"], str)
        and isinstance(hop["authrole"], str)
        for hop in value
    )


_Check = tuple[Callable[[object], bool], str]

#: Publish options a request may set. ``acknowledge`` is not among them: it is always on.
PUBLISH_OPTIONS: Mapping[str, _Check] = {
    "exclude_me": (_is_bool, "a boolean"),
    "retain": (_is_bool, "a boolean"),
    "exclude": (_is_id_list, "a list of session IDs"),
    "eligible": (_is_id_list, "a list of session IDs"),
    "exclude_authid": (_is_str_list, "a list of strings"),
    "exclude_authrole": (_is_str_list, "a list of strings"),
    "eligible_authid": (_is_str_list, "a list of strings"),
    "eligible_authrole": (_is_str_list, "a list of strings"),
    "forward_for": (_is_forward_for, "a list of {session, authid, authrole} objects"),
}

#: Call options a request may set: none yet. Progressive results and the
#: router-side timeout are wampweb's to manage, not the client's, and caller
#: disclosure is the router's decision (its role configuration) in today's
#: WAMP, so Autobahn no longer takes ``disclose_me``.
CALL_OPTIONS: Mapping[str, _Check] = {}

_WHY_NOT = {
    "disclose_me": "caller disclosure is set by the router's role configuration",
    "timeout": "give the deadline as the request's timeout instead",
    "receive_progress": "progressive results are not supported over HTTP",
}


def _checked(
    kind: str, options: Mapping[str, Any] | None, allowed: Mapping[str, _Check]
) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise BadRequestError(f"{kind} options must be an object, not {type(options).__name__}")
    for name, value in options.items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            why = f"; {_WHY_NOT[name]}" if name in _WHY_NOT else ""
            raise BadRequestError(f"unknown {kind} option {name!r} (allowed: {known}){why}")
        check, expected = allowed[name]
        if not check(value):
            raise BadRequestError(f"{kind} option {name!r} must be {expected}, not {value!r}")
    return dict(options)


def publish_options(options: Mapping[str, Any] | None) -> PublishOptions:
    """Acknowledged ``PublishOptions`` from what a request asked for, or a 400."""
    return PublishOptions(acknowledge=True, **_checked("publish", options, PUBLISH_OPTIONS))


def call_options(options: Mapping[str, Any] | None) -> CallOptions:
    """``CallOptions`` from what a request asked for, or a 400."""
    return CallOptions(**_checked("call", options, CALL_OPTIONS))
