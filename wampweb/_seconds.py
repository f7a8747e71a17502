"""
Durations given in code (keyword arguments), checked with their name in the
error: ``True``, ``"10"``, ``nan`` and ``inf`` are not seconds, and Twisted
would take most of them without a word. (The TOML configuration has its own
checks, which name the file and key: :mod:`wampweb._config_read`.)
"""

from __future__ import annotations

import math

__all__ = ["checked_seconds"]


def checked_seconds(name: str, value: object, *, zero_means: str | None = None) -> float:
    """
    ``value`` as seconds, or a ValueError naming ``name``. Zero is allowed only
    when it means something (``zero_means``, said in the error); else the
    value must be above 0.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if zero_means is not None and value < 0:
        raise ValueError(f"{name} must be at least 0 ({zero_means}), got {value!r}")
    if zero_means is None and value <= 0:
        raise ValueError(f"{name} must be above 0, got {value!r}")
    return float(value)
