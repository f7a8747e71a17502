"""
The errors wampweb raises.

Every error derives from :class:`WampWebError`, so an application can catch
"anything wampweb refused" in one place. Errors that an HTTP route turns into
an answer carry the status and the WAMP-style error URI they map to, so the
mapping lives next to the meaning and not in a table far away.
"""

from __future__ import annotations


class WampWebError(Exception):
    """Base class of every error wampweb raises on purpose."""

    #: The HTTP status an HTTP route answers with when this error escapes it.
    http_status: int = 500
    #: The error URI put in the JSON body of that answer.
    uri: str = "wampweb.error.internal"


class NoSessionError(WampWebError):
    """
    No joined session was there in time, so nothing was sent to the router.

    Safe to retry: the request never left this process.
    """

    http_status = 503
    uri = "wampweb.error.no_session"

    def __init__(self, component: str, retry_after: float, reason: str = "") -> None:
        self.component = component
        self.retry_after = retry_after
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"component {component!r} has no joined WAMP session{detail}; "
            f"retry after {retry_after:g} s"
        )


class SessionLostError(WampWebError):
    """
    The session left while the operation was in flight: its outcome is unknown.

    Not safe to retry blindly: the router may have acted on it.
    """

    http_status = 502
    uri = "wampweb.error.session_lost"

    def __init__(self, component: str, operation: str, reason: str = "") -> None:
        self.component = component
        self.operation = operation
        self.reason = reason
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"the WAMP session of component {component!r} was lost while "
            f"{operation} was in flight{detail}; its outcome is unknown"
        )


class DeadlineError(WampWebError):
    """wampweb's own deadline for an operation passed; the call was cancelled."""

    http_status = 504
    uri = "wampweb.error.deadline"

    def __init__(self, component: str, operation: str, timeout: float) -> None:
        self.component = component
        self.operation = operation
        self.timeout = timeout
        super().__init__(
            f"{operation} on component {component!r} got no answer within {timeout:g} s"
        )


class BadRequestError(WampWebError, ValueError):
    """The request cannot be turned into a WAMP message; nothing was sent."""

    http_status = 400
    uri = "wampweb.error.bad_request"


class ComponentFailedError(WampWebError):
    """
    A Component stopped for good: the router refused it (realm, authentication)
    or its transports ran out of retries. Retrying would not help.
    """

    http_status = 503
    uri = "wampweb.error.component_failed"

    def __init__(self, component: str, reason: str) -> None:
        self.component = component
        self.reason = reason
        super().__init__(f"component {component!r} failed for good: {reason}")


class ConfigError(WampWebError, ValueError):
    """The configuration is unusable; the message names the file, the key and why."""

    def __init__(self, reason: str, *, key: str = "", source: str = "") -> None:
        self.reason = reason
        self.key = key
        self.source = source
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class RouterStartError(WampWebError):
    """The embedded Crossbar.io router could not be started or did not become ready."""
