"""
wampweb: WAMP inside a web application.

Autobahn Components run by a Klein app as one Twisted service, sessions that
survive router restarts, and HTTP answers that never hang.
"""

from wampweb._app import DEFAULT_LISTEN, ManagedComponent, WampWeb
from wampweb._bridge import (
    BridgeKind,
    BridgeMode,
    BridgeResource,
    BridgeSettings,
    mount_bridge,
)
from wampweb._build import app_from_config
from wampweb._config import (
    ComponentConfig,
    ServerConfig,
    WampWebConfig,
    config_from_flags,
    load_config,
    parse_config,
)
from wampweb._errors import (
    BadRequestError,
    ComponentFailedError,
    ConfigError,
    DeadlineError,
    NoSessionError,
    RouterStartError,
    SessionLostError,
    WampWebError,
)
from wampweb._http import ErrorAnswer, answer_for
from wampweb._operations import Operations
from wampweb._outage import without_retry_chatter
from wampweb._router import EmbeddedRouter
from wampweb._sessions import Session, SessionState, SessionTracker

__all__ = [
    "DEFAULT_LISTEN",
    "BadRequestError",
    "BridgeKind",
    "BridgeMode",
    "BridgeResource",
    "BridgeSettings",
    "ComponentConfig",
    "ComponentFailedError",
    "ConfigError",
    "DeadlineError",
    "EmbeddedRouter",
    "ErrorAnswer",
    "ManagedComponent",
    "NoSessionError",
    "Operations",
    "RouterStartError",
    "ServerConfig",
    "Session",
    "SessionLostError",
    "SessionState",
    "SessionTracker",
    "WampWeb",
    "WampWebConfig",
    "WampWebError",
    "answer_for",
    "app_from_config",
    "config_from_flags",
    "load_config",
    "mount_bridge",
    "parse_config",
    "without_retry_chatter",
]
