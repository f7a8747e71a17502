"""
From a validated configuration to a running shape: a WampWeb app with one
managed Component per configured name and one bridge resource per mount.

Kept apart from both: the configuration knows nothing of apps, and the app
knows nothing of TOML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wampweb._access import IpAllowList, Permissions, TrustedProxies, UriPattern, parse_networks
from wampweb._app import WampWeb
from wampweb._bridge import BridgeResource, BridgeSettings
from wampweb._config_bridge import MountConfig, PermissionRule
from wampweb._cors import CorsPolicy
from wampweb._ratelimit import RateLimiter
from wampweb._signing import RequestVerifier, SigningKey

if TYPE_CHECKING:
    from klein import Klein

    from wampweb._config import WampWebConfig


def app_from_config(
    config: WampWebConfig, *, app: Klein | None = None, reactor: Any = None
) -> WampWeb:
    """A :class:`WampWeb` serving ``app``, every Component and every bridge mount of ``config``."""
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
        header_timeout=server.header_timeout,
        idle_timeout=server.idle_timeout,
        access_log=server.access_log,
    )
    for name, component in config.components.items():
        web.add_component(name, component.build_component(), join_timeout=component.join_timeout)
    for mount in config.bridge:
        web.mount(
            mount.path, BridgeResource(web[mount.component], bridge_settings(mount, web.reactor))
        )
    return web


def bridge_settings(mount: MountConfig, reactor: Any) -> BridgeSettings:
    """The runtime pieces of one mount: its verifier, limits and policies."""
    keys = [SigningKey(k.key, k.secret.value) for k in mount.keys]
    verifier = RequestVerifier(
        keys,
        timestamp_delta_limit=mount.timestamp_delta_limit,
        clock=reactor,
        lenient_signature=mount.lenient_signature,
        lenient_timestamp=mount.lenient_timestamp,
        replay_protection=mount.replay_protection,
    )
    permissions = {
        k.key: _permissions(k.permissions) for k in mount.keys if k.permissions is not None
    }
    cors = (
        CorsPolicy.crossbar()
        if mount.cors_origins is None
        else CorsPolicy.allow(mount.cors_origins, credentials=mount.cors_credentials)
    )
    rate_limiter = (
        RateLimiter(mount.rate_limit[0], mount.rate_limit[1], reactor) if mount.rate_limit else None
    )
    return BridgeSettings(
        kind=mount.kind,
        mode=mount.mode,
        legacy_202=mount.legacy_202,
        body_limit=mount.post_body_limit,
        verifier=verifier,
        permissions=permissions,
        anonymous_permissions=(
            _permissions(mount.permissions) if mount.permissions is not None else None
        ),
        require_ip=IpAllowList(parse_networks(mount.require_ip)) if mount.require_ip else None,
        require_tls=mount.require_tls,
        proxies=TrustedProxies(parse_networks(mount.trusted_proxies)),
        cors=cors,
        rate_limiter=rate_limiter,
        call_timeout=mount.call_timeout,
        max_call_timeout=mount.max_call_timeout,
        topic=mount.topic,
        success_response=mount.success_response,
        error_response=mount.error_response,
        github_secret=mount.github_secret.value.encode() if mount.github_secret else None,
    )


def _permissions(rules: Sequence[PermissionRule]) -> Permissions:
    def patterns(action: str) -> tuple[UriPattern, ...]:
        return tuple(UriPattern(r.uri, r.match) for r in rules if action in r.actions)  # type: ignore[arg-type]

    return Permissions(publish=patterns("publish"), call=patterns("call"))
