"""
From a validated configuration to a running shape: a WampWeb app with one
managed Component per configured name.

Kept apart from both: the configuration knows nothing of apps, and the app
knows nothing of TOML.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wampweb._app import WampWeb

if TYPE_CHECKING:
    from klein import Klein

    from wampweb._config import WampWebConfig


def app_from_config(
    config: WampWebConfig, *, app: Klein | None = None, reactor: Any = None
) -> WampWeb:
    """A :class:`WampWeb` serving ``app`` with every Component ``config`` names."""
    server = config.server
    web = WampWeb(
        app,
        listen=server.listen,
        reactor=reactor,
        drain_timeout=server.drain_timeout,
        retry_after=server.retry_after,
        session_wait=server.session_wait,
        call_timeout=server.call_timeout,
        stable_after=server.stable_after,
    )
    for name, component in config.components.items():
        web.add_component(name, component.build_component())
    return web
