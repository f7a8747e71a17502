"""
wampweb: WAMP inside a web application.

Autobahn Components run by a Klein app as one Twisted service, sessions that
survive router restarts, and HTTP answers that never hang.
"""

from wampweb._app import DEFAULT_LISTEN, ManagedComponent, WampWeb
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
from wampweb._sessions import Session, SessionState, SessionTracker

__all__ = [
    "DEFAULT_LISTEN",
    "BadRequestError",
    "ComponentFailedError",
    "ConfigError",
    "DeadlineError",
    "ErrorAnswer",
    "ManagedComponent",
    "NoSessionError",
    "Operations",
    "RouterStartError",
    "Session",
    "SessionLostError",
    "SessionState",
    "SessionTracker",
    "WampWeb",
    "WampWebError",
    "answer_for",
]
