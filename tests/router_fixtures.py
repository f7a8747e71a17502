"""
Fixtures that give tests a real Crossbar.io router.

``router`` is shared by the whole session (one start, about 3 s): use it for tests that only
connect to it. Tests that kill, stop or restart a router take ``fresh_router``, which is theirs
alone. Both are ready when the test gets them, and closed (processes ended, directory removed)
afterwards. If Crossbar.io is missing they fail loudly with the install hint, never skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wampweb._router import EmbeddedRouter


@pytest.fixture(scope="session")
def router() -> Iterator[EmbeddedRouter]:
    """One router for the whole session; do not kill it (take ``fresh_router`` for that)."""
    with EmbeddedRouter() as running:
        yield running


@pytest.fixture
def fresh_router() -> Iterator[EmbeddedRouter]:
    """A router of the test's own, to kill, stop and restart at will."""
    with EmbeddedRouter() as running:
        yield running
