"""
Bounding the wait between a connection and its session joining.

Autobahn leaves most of that wait unbounded. Its RawSocket client has no
opening-handshake timeout, and over WebSocket ``openHandshakeTimeout`` covers
the HTTP upgrade only, not the HELLO → WELCOME exchange (authentication
included) that follows. A far end that accepts TCP and then says nothing (a
black-holed link, a wedged router) leaves the attempt waiting for ever: the
Component never retries, so wampweb never rejoins, even once the network has
healed. So every connection attempt gets a deadline, from its TCP connection
until its session joins. When it passes, the connection is dropped, and
Autobahn's ``connectionLost`` starts its usual retry, with its backoff.

Autobahn's ``connect`` event is too late to start the clock: it comes after
the RawSocket or WebSocket opening handshake, which is exactly what a
black-holed link never completes. Autobahn does take a Twisted endpoint in
place of an endpoint table, though, so each transport's table is wrapped in
one that builds Autobahn's own endpoint from it and reports each connection.
The ``connect`` event still starts the deadline of an attempt not seen that way
(a transport through an HTTP proxy, whose endpoint Autobahn builds itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from autobahn.twisted.component import _create_transport_endpoint
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from wampweb._seconds import checked_seconds

_log = Logger()

#: Seconds from "connected" to "joined" before an attempt is given up.
DEFAULT_JOIN_TIMEOUT: Final = 10.0


class Link(Protocol):
    """Autobahn's protocol of one connection, dropped through its Twisted transport."""

    transport: Any


def drop(link: Link) -> bool:
    """
    Drop the connection under ``link`` at once (False if it is already gone).

    The Twisted transport, not Autobahn's ``abort()``: on WebSocket that raises
    until the opening handshake is done, and then drops at once only while
    the ``failByDrop`` option is on (else it sends a close frame first, into a
    link that carries nothing).
    """
    transport = getattr(link, "transport", None)
    if transport is None:
        return False
    abort = getattr(transport, "abortConnection", None)
    if abort is None:
        transport.loseConnection()
    else:
        abort()
    return True


class JoinAttempt:
    """
    One connection attempt: from Autobahn's try until its session joins, its
    connection is lost, or the next attempt begins.

    Once over, nothing it is told changes anything, so a late report about an
    attempt already replaced never acts on the connection of the next one.
    """

    def __init__(
        self,
        name: str,
        url: str | None,
        reactor: IReactorTime,
        timeout: float,
        on_expired: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.reactor = reactor
        self.timeout = timeout
        self.on_expired = on_expired
        self.link: Link | None = None
        #: The TCP connect under way, until it is made (cancelled if the app stops first).
        self.connecting: Deferred[IProtocol] | None = None
        #: Whether Autobahn's ``connect`` event came (a WAMP session exists).
        self.opened = False
        self.over = False
        #: Whether the app stopped before this attempt joined: a connection it makes is dropped.
        self.abandoned = False
        #: Whether the deadline passed and the connection was dropped.
        self.expired = False
        self._timer: IDelayedCall | None = None

    def connected(self, link: Link, *, opened: bool = False) -> None:
        """The connection is up (TCP, or ``opened``: the opening handshake too)."""
        if self.over:
            if self.abandoned:
                drop(link)
            return
        self.opened = self.opened or opened
        if self.link is None:
            self.link = link
        if self._timer is None and self.timeout > 0:
            self._timer = self.reactor.callLater(self.timeout, self._expired)

    def end(self, result: object = None) -> object:
        """Over: joined, lost, or replaced. Passes ``result`` through (for a Deferred)."""
        self.over = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return result

    def abandon(self) -> None:
        """
        The app stops before this attempt joined. Autobahn's ``stop()`` only
        leaves a joined session: a connection still in its handshake, or
        waiting for its WELCOME, would go on and could join a session after
        the stop. It is dropped, or its TCP connect cancelled.
        """
        if self.over:
            return
        self.end()
        self.abandoned = True
        if self.link is not None:
            drop(self.link)
        elif self.connecting is not None and not self.connecting.called:
            self.connecting.cancel()

    def _expired(self) -> None:
        self._timer = None
        if self.over or self.link is None:
            return
        self.over = True
        self.expired = True
        stage = "no WELCOME to its HELLO" if self.opened else "no answer to the opening handshake"
        _log.warn(
            "component {name!r}: connected to {url} but not joined within {timeout:g} s "
            "({stage}); dropping the connection so that it is tried again",
            name=self.name,
            url=self.url or "the router",
            timeout=self.timeout,
            stage=stage,
        )
        if not drop(self.link):
            # Lost meanwhile: Autobahn's retry is already on its way.
            _log.debug("component {name!r}: the connection was already gone", name=self.name)
        if self.on_expired is not None:
            self.on_expired()


class JoinDeadline:
    """
    The join deadline of one Component's attempts, one attempt at a time.
    ``timeout`` 0 turns it off: no timer, and Autobahn's transports left as
    they are.
    """

    def __init__(
        self, name: str, reactor: IReactorTime, timeout: float = DEFAULT_JOIN_TIMEOUT
    ) -> None:
        self.name = name
        self.reactor = reactor
        self.timeout = checked_seconds("join_timeout", timeout, zero_means="0: no limit")
        self.attempt: JoinAttempt | None = None
        #: Attempts given up because their deadline passed.
        self.expired = 0

    @property
    def enabled(self) -> bool:
        return self.timeout > 0

    def watch(self, transports: list[Any]) -> None:
        """Have each of a Component's ``_transports`` report its TCP connections."""
        if not self.enabled:
            return
        for transport in transports:
            endpoint = getattr(transport, "endpoint", None)
            if endpoint is None or isinstance(endpoint, WatchedEndpoint):
                continue
            if getattr(transport, "proxy", None) is not None:
                continue  # Autobahn connects to the proxy and never asks this endpoint
            transport.endpoint = WatchedEndpoint(endpoint, self.reactor, self)

    def begin(self, url: str | None = None) -> JoinAttempt:
        """A new attempt; the previous one, whatever became of it, is over."""
        self.end()
        attempt = JoinAttempt(self.name, url, self.reactor, self.timeout, self._count_expired)
        self.attempt = attempt
        return attempt

    def opened(self, link: Link) -> None:
        """Autobahn's ``connect`` event: the opening handshake is done."""
        if self.attempt is not None:
            self.attempt.connected(link, opened=True)

    def end(self) -> None:
        """The current attempt is over: its session joined."""
        if self.attempt is not None:
            self.attempt.end()

    def abandon(self) -> None:
        """The app stops: an attempt not joined yet is given up (see JoinAttempt.abandon)."""
        if self.attempt is not None:
            self.attempt.abandon()

    def _count_expired(self) -> None:
        self.expired += 1


@implementer(IStreamClientEndpoint)
class WatchedEndpoint:
    """
    Autobahn's endpoint for a transport's endpoint table (or the endpoint it
    was given), reporting each connection to the attempt that made it. It is
    built on ``reactor``, the supervisor's, which is the one the Component is
    started with (Autobahn does not hand its reactor to an endpoint object).
    """

    def __init__(
        self, config: Mapping[str, Any] | object, reactor: IReactorTime, deadline: JoinDeadline
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.deadline = deadline

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        attempt = self.deadline.attempt
        # Autobahn's own function: TLS, Unix sockets and IPv6 as without us.
        endpoint = _create_transport_endpoint(self.reactor, self.config)
        connecting: Deferred[IProtocol] = endpoint.connect(factory)
        if attempt is not None:
            attempt.connecting = connecting

        def connected(protocol: IProtocol) -> IProtocol:
            if attempt is not None:
                attempt.connected(protocol)  # type: ignore[arg-type]
            return protocol

        connecting.addCallback(connected)
        return connecting

    def __repr__(self) -> str:
        # What Autobahn logs as the endpoint of each attempt, as without us.
        if isinstance(self.config, Mapping):
            return str(self.config.get("type"))
        return repr(self.config)
