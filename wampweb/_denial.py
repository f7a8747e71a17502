"""
A request the bridge refuses before anything reaches the router.

One refusal has two faces. Crossbar-compatible mounts answer the way
Crossbar.io's HTTP bridge does (its status and its exact message, so existing
clients parse it); REST mounts answer with the HTTP status that says what
happened and a WAMP-style error URI. Each check raises one :class:`DeniedError`
carrying both, so the order of checks is written once.
"""

from __future__ import annotations

import json

from wampweb._errors import WampWebError


class DeniedError(WampWebError):
    """
    A refused request: nothing was sent to the router, nothing changed.

    ``message`` is what the client reads (Crossbar's own wording where Crossbar
    has a case). ``status`` is the Crossbar-compatible status; ``rest_status``
    and ``uri`` are what a REST mount answers.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        rest_status: int | None = None,
        uri: str = "wampweb.error.bad_request",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.rest_status = status if rest_status is None else rest_status
        self.uri = uri
        self.http_status = self.rest_status
        self.retry_after = retry_after

    def compat_body(self) -> bytes:
        """Crossbar's denial envelope: the message as ``error``, minified."""
        envelope = {"error": self.message, "args": [], "kwargs": {}}
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def rest_body(self) -> bytes:
        """The REST envelope: the URI as ``error``, the message as the first arg."""
        envelope = {"error": self.uri, "args": [self.message], "kwargs": {}}
        return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def bad_request(message: str) -> DeniedError:
    """The common case: a 400 in both modes."""
    return DeniedError(message, status=400, uri="wampweb.error.bad_request")
