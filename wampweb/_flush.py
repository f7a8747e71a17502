"""
Put buffered bytes on the wire now rather than at the reactor's next turn.

Twisted's TCP transports only buffer on ``write()``; the bytes leave when the
reactor next polls. For a gateway that turns each HTTP request into a WAMP
message this batches a whole turn's worth of publishes into one send, and the
router can only start on them once wampweb has finished the turn: wampweb and
the router then take turns instead of working side by side (measured: wampweb
idle about 45 % of the time at full load). Sending each message as it is made
lets the router work on the first ones while wampweb parses the next.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.abstract import FileDescriptor

#: How many wrappers (TLS, endpoint wrappers) to look through for the socket.
_MAX_DEPTH = 4


def flush_now(protocol: Any) -> None:
    """
    Send what ``protocol``'s transport holds, if it is a plain socket in
    good health; otherwise leave it to the reactor, which sends it anyway.

    Errors are not handled here: the bytes stay buffered, and the reactor's
    own write finds the same error and closes the connection as usual.
    """
    transport = getattr(protocol, "transport", None)
    for _ in range(_MAX_DEPTH):
        if transport is None:
            return
        if isinstance(transport, FileDescriptor):
            _write_out(transport)
            return
        transport = getattr(transport, "transport", None)


def _write_out(descriptor: FileDescriptor) -> None:
    # A closing connection must reach the reactor's doWrite, which finishes
    # the close once the buffer is empty; doing it here would skip that step.
    if (
        not descriptor.connected
        or descriptor.disconnecting
        or descriptor.disconnected
        or descriptor._writeDisconnecting
    ):
        return
    if not descriptor._tempDataLen and len(descriptor.dataBuffer) == descriptor.offset:
        return
    descriptor.doWrite()
