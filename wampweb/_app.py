"""
The central object: a Klein app, its named Components, and their lifecycle.

:class:`WampWeb` *is* a Twisted service. Starting it starts every Component
and the HTTP listener; stopping it stops accepting, lets in-flight requests
finish within a bound, leaves every session with a GOODBYE and stops the
Components, in that order, so no request is cut off by its own session going
away. It runs the same under ``react()``, ``twistd``/``.tac`` and the CLI.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from autobahn.twisted.component import Component
from autobahn.wamp.exception import ApplicationError, InvalidUriError
from autobahn.wamp.types import RegisterOptions, SubscribeOptions
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorCore,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Site

from wampweb._declarations import Declarations
from wampweb._errors import ComponentFailedError, WampWebError
from wampweb._heartbeat import DEFAULT_HEARTBEAT, heartbeat_settings, keep_settings
from wampweb._http import (
    DrainingResource,
    GetResource,
    make_site,
    render_error,
    retry_after_value,
)
from wampweb._join_deadline import DEFAULT_JOIN_TIMEOUT
from wampweb._operations import Operations
from wampweb._sessions import Session, SessionState, SessionTracker
from wampweb._signals import stop_once_on_signals
from wampweb._supervisor import ComponentSupervisor

if TYPE_CHECKING:
    from klein import Klein

_log = Logger()

F = TypeVar("F", bound=Callable[..., Any])

#: Loopback only unless told otherwise: an HTTP gateway into WAMP is not for the world by default.
DEFAULT_LISTEN = "tcp:8090:interface=127.0.0.1"

#: How long after a join a missing procedure is blamed on callees still re-registering.
REJOIN_GRACE = 5.0


#: Pending connections the kernel queues for a TCP listener. Twisted's default
#: of 50 overflows under a burst of new connections, and the kernel then drops
#: SYNs, which clients retry only after a second.
DEFAULT_BACKLOG = 1024


def with_backlog(listen: str) -> str:
    """A TCP endpoint string with wampweb's backlog, unless it names its own."""
    if listen.startswith(("tcp:", "tcp6:", "ssl:")) and "backlog=" not in listen:
        return f"{listen}:backlog={DEFAULT_BACKLOG}"
    return listen


def _default_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class ManagedComponent:
    """
    One named Component as application code sees it: its current session,
    the registrations and subscriptions it declares, and calls and publishes
    that cannot hang.
    """

    def __init__(
        self,
        name: str,
        component: Component,
        reactor: IReactorTime,
        *,
        retry_after: float = 2.0,
        session_wait: float = 0.0,
        call_timeout: float = 30.0,
        stable_after: float = 10.0,
        join_timeout: float = DEFAULT_JOIN_TIMEOUT,
        on_failed: Callable[[ComponentFailedError], object] | None = None,
    ) -> None:
        self.name = name
        self.component = component
        self.reactor = reactor
        self.tracker = SessionTracker(name, reactor, retry_after=retry_after)
        self.declarations = Declarations(self.tracker, reactor)
        self.operations = Operations(
            self.tracker,
            reactor,
            default_timeout=call_timeout,
            default_session_wait=session_wait,
        )
        self.supervisor = ComponentSupervisor(
            name,
            component,
            self.tracker,
            reactor,
            stable_after=stable_after,
            join_timeout=join_timeout,
            on_failed=on_failed,
        )
        self._joined_at: float | None = None
        self.tracker.when_joined(lambda _session, _event: self._note_join())
        #: Call a procedure with a deadline; fails at once if the session
        #: leaves meanwhile (:meth:`wampweb.Operations.call`).
        self.call = self.operations.call
        #: Publish, acknowledged: fires with the router's publication
        #: (:meth:`wampweb.Operations.publish`).
        self.publish = self.operations.publish

    def _note_join(self) -> None:
        self._joined_at = self.reactor.seconds()

    # -- declarations ------------------------------------------------------------

    def register(self, uri: str, options: RegisterOptions | None = None) -> Callable[[F], F]:
        """Register the decorated function as ``uri`` on every session; readiness waits for it."""
        return self.declarations.register(uri, options)

    def subscribe(self, topic: str, options: SubscribeOptions | None = None) -> Callable[[F], F]:
        """Subscribe the decorated function to ``topic`` on every session."""
        return self.declarations.subscribe(topic, options)

    # -- sessions ----------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """Where this Component's session stands (see :class:`~wampweb.SessionState`)."""
        return self.tracker.state

    @property
    def ready(self) -> bool:
        """Joined, and every declared registration and subscription is in place."""
        return self.tracker.state is SessionState.READY

    def session_now(self) -> Session:
        """The joined session, or :class:`~wampweb.NoSessionError` (HTTP 503) at once."""
        return self.tracker.session_now()

    def wait_for_session(self, timeout: float) -> Deferred[Session]:
        """A joined session within ``timeout`` seconds, or :class:`~wampweb.NoSessionError`."""
        return self.tracker.wait_for_session(timeout)

    def rejoined_recently(self) -> bool:
        """True shortly after a reconnect, when callees may still be re-registering."""
        return (
            self.tracker.join_count > 1
            and self._joined_at is not None
            and self.reactor.seconds() - self._joined_at < REJOIN_GRACE
        )

    def with_session(self, wait: float | None = None) -> Callable[[F], F]:
        """
        Hand a Klein route the current session as the keyword argument ``session``.

        With no session within ``wait`` seconds (default: the app's
        ``session_wait``), the route is not run and the client gets a 503
        with ``Retry-After``.
        """
        bound = self.operations.default_session_wait if wait is None else wait

        def decorator(route: F) -> F:
            @functools.wraps(route)
            async def with_session_route(*args: Any, **kwargs: Any) -> Any:
                session = await self.tracker.wait_for_session(bound)
                result = route(*args, session=session, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return result

            return cast(F, with_session_route)

        return decorator

    def status(self) -> dict[str, Any]:
        """What a health check reports about this Component."""
        tracker = self.tracker
        return {
            "state": tracker.state.value,
            "joins": tracker.join_count,
            "leaves": tracker.leave_count,
            "restarts": self.supervisor.restarts,
            "last_leave_reason": tracker.last_leave_reason,
            "in_flight": self.operations.in_flight,
            "missing": dict(self.declarations.missing),
            "failure": tracker.failure.reason if tracker.failure else None,
            "failed_attempts": self.supervisor.outage.failures,
            "last_connect_error": self.supervisor.outage.last_error,
        }


class WampWeb(MultiService):
    """
    A Klein app with named WAMP Components, run as one Twisted service.

    ``listen`` is a Twisted server endpoint string or endpoint (None: no
    listener; serve :meth:`resource` yourself). ``drain_timeout`` bounds how long stopping
    waits for requests in flight. ``session_wait`` is how long a request
    waits for a session before its 503; ``call_timeout`` is the default
    deadline of calls and publishes. ``header_timeout`` is how long a client
    may take to send a request's headers (slow senders get 408), and
    ``idle_timeout`` how long an idle connection is kept. ``access_log``:
    None (no line per request), ``"-"`` (into the log) or a file path.
    """

    def __init__(
        self,
        app: Klein | None = None,
        *,
        listen: str | IStreamServerEndpoint | None = DEFAULT_LISTEN,
        reactor: Any = None,
        drain_timeout: float = 10.0,
        retry_after: float = 2.0,
        session_wait: float = 0.0,
        call_timeout: float = 30.0,
        stable_after: float = 10.0,
        header_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        access_log: str | None = None,
    ) -> None:
        MultiService.__init__(self)
        self._app: Klein | None = None
        self.listen = listen
        self._reactor = reactor
        self.drain_timeout = drain_timeout
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.access_log = access_log
        self.retry_after = retry_after
        self.session_wait = session_wait
        self.call_timeout = call_timeout
        self.stable_after = stable_after
        self.components: dict[str, ManagedComponent] = {}
        self.port: IListeningPort | None = None
        #: Fires with the first Component failure that cannot be retried (see CLI).
        self.failed: Deferred[ComponentFailedError] = Deferred()
        self._draining = DrainingResource(retry_after=retry_after)
        self._site: Site | None = None
        if app is not None:
            self._adopt(app)

    @property
    def app(self) -> Klein:
        """
        The Klein app that serves every path no mount serves, created on
        first use. A process that serves only mounted resources (the bridge,
        the health checks) never imports Klein and werkzeug, a few megabytes
        of every worker's memory.
        """
        if self._app is None:
            # Imported here, not at the top: importing klein installs the
            # global reactor, and `import wampweb` must not.
            from klein import Klein

            return self._adopt(Klein())
        return self._app

    def _adopt(self, app: Klein) -> Klein:
        self._app = app
        self._install_error_handlers(app)
        self._draining.inner = app.resource()
        return app

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            self._reactor = _default_reactor()
        return self._reactor

    # -- building -----------------------------------------------------------------------

    def add_component(
        self,
        name: str,
        component: Component,
        *,
        join_timeout: float = DEFAULT_JOIN_TIMEOUT,
        heartbeat_interval: float | None = None,
        heartbeat_timeout: float | None = None,
    ) -> ManagedComponent:
        """
        Manage ``component`` under ``name``; it starts and stops with the app.

        ``join_timeout``: seconds each connection attempt may take from
        connected to joined before it is dropped and tried again (0: no limit).
        Autobahn sets none, so a router that accepts the connection and then
        says nothing would otherwise hold the Component for ever.

        ``heartbeat_interval`` and ``heartbeat_timeout``: how often a joined
        session over RawSocket proves its link alive, and how long it waits
        for the answer before dropping the link (interval 0: never). RawSocket
        has no ping of its own; over WebSocket, Autobahn's auto-ping does this.
        Given, they apply to every transport of ``component``; left out, a
        transport keeps what its configuration says, or 10 s and 5 s.
        """
        if name in self.components:
            raise ValueError(f"a component named {name!r} is already managed")
        if heartbeat_interval is not None or heartbeat_timeout is not None:
            settings = heartbeat_settings(
                DEFAULT_HEARTBEAT.interval if heartbeat_interval is None else heartbeat_interval,
                DEFAULT_HEARTBEAT.timeout if heartbeat_timeout is None else heartbeat_timeout,
            )
            for transport in getattr(component, "_transports", ()):
                keep_settings(transport, settings)
        managed = ManagedComponent(
            name,
            component,
            self.reactor,
            retry_after=self.retry_after,
            session_wait=self.session_wait,
            call_timeout=self.call_timeout,
            stable_after=self.stable_after,
            join_timeout=join_timeout,
            on_failed=self._component_failed,
        )
        self.components[name] = managed
        managed.supervisor.setServiceParent(self)  # type: ignore[no-untyped-call]
        return managed

    def __getitem__(self, name: str) -> ManagedComponent:
        try:
            return self.components[name]
        except KeyError:
            known = ", ".join(sorted(self.components)) or "none"
            raise KeyError(f"no component named {name!r} (known: {known})") from None

    def resource(self) -> IResource:
        """The app's resource, counting requests so that stopping can drain them."""
        return self._draining

    def mount(self, path: str, resource: IResource) -> None:
        """
        Serve ``path`` and everything below it with a plain Twisted resource.

        Mounted resources skip Klein's per-request routing, which is most of
        the cost of a small request; the bridge's endpoints are mounted so.
        """
        self._draining.mount(path, resource)

    @property
    def mounts(self) -> dict[str, IResource]:
        """The mounted resources by path, in the order they were mounted."""
        return {
            "/" + "/".join(s.decode() for s in segments): resource
            for segments, resource in self._draining.mounts.items()
        }

    def site(self) -> Site:
        """The Site the listener serves: JSON errors, never a traceback."""
        if self._site is None:
            self._site = make_site(
                self._draining,
                reactor=self.reactor,
                header_timeout=self.header_timeout,
                idle_timeout=self.idle_timeout,
                access_log=self.access_log,
            )
        return self._site

    def add_health_routes(self, health: str = "/health", ready: str = "/ready") -> None:
        """
        ``GET /health``: the process answers (always 200) with every Component's state.
        ``GET /ready``: 200 only when every Component is ready, else 503 + Retry-After.

        Both are mounted (see :meth:`mount`), not Klein routes: a probe that
        runs every few seconds should not need Klein, nor pay for its routing.
        """
        self.mount(health, GetResource(self._health))
        self.mount(ready, GetResource(self._readiness))

    def _health(self, request: IRequest) -> bytes:
        return self._status_body(request, 200)

    def _readiness(self, request: IRequest) -> bytes:
        all_ready = all(c.ready for c in self.components.values())
        if not all_ready:
            request.setHeader(b"retry-after", retry_after_value(self.retry_after))
        return self._status_body(request, 200 if all_ready else 503)

    def _status_body(self, request: IRequest, status: int) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        body = {name: c.status() for name, c in self.components.items()}
        return json.dumps({"components": body}, separators=(",", ":")).encode()

    def _install_error_handlers(self, app: Klein) -> None:
        components = self.components

        @app.handle_errors(WampWebError, ApplicationError, InvalidUriError)
        def wamp_error(request: IRequest, failure: Failure) -> bytes:
            rejoined = any(c.rejoined_recently() for c in components.values())
            return render_error(request, failure, rejoined_recently=rejoined)

    # -- lifecycle -------------------------------------------------------------------------

    def startService(self) -> None:
        """Start every Component, then listen (when ``listen`` is set)."""
        self._draining.draining = False
        MultiService.startService(self)
        if self.listen is not None:
            endpoint = (
                serverFromString(self.reactor, with_backlog(self.listen))
                if isinstance(self.listen, str)
                else self.listen
            )
            listening = endpoint.listen(self.site())
            listening.addCallbacks(self._listening, self._listen_failed)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        address = port.getHost()
        _log.info(
            "wampweb listening on http://{host}:{port}/",
            host=getattr(address, "host", "?"),
            port=getattr(address, "port", "?"),
        )
        return port

    def _listen_failed(self, failure: Failure) -> None:
        _log.failure("wampweb could not listen on {listen}", failure, listen=self.listen)
        if not self.failed.called:
            self.failed.errback(failure)

    def stopService(self) -> Deferred[None]:
        """Stop accepting, drain (bounded), then leave every session and stop."""
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self.running = False
        if self.port is not None:
            port, self.port = self.port, None
            stopped = port.stopListening()
            if stopped is not None:
                await stopped
        in_flight = self._draining.in_flight
        drained = self._draining.drain()
        if in_flight:
            _log.info("draining {n} request(s) in flight", n=in_flight)
            timer = self.reactor.callLater(self.drain_timeout, drained.cancel)
            try:
                await drained
            except Exception:
                _log.warn(
                    "{n} request(s) still in flight after {t:g} s; stopping anyway",
                    n=self._draining.in_flight,
                    t=self.drain_timeout,
                )
            if timer.active():
                timer.cancel()
        stops = [
            ensureDeferred(_as_coroutine(service.stopService())) for service in reversed(list(self))
        ]
        await DeferredList(stops, consumeErrors=True)

    def _component_failed(self, error: ComponentFailedError) -> None:
        if not self.failed.called:
            self.failed.callback(error)

    def run_until_stopped(self, reactor: IReactorCore) -> Deferred[None]:
        """
        Start, and fire when the reactor shuts down, or fail when a Component
        fails for good: the shape ``twisted.internet.task.react`` wants.

        Once the reactor runs, SIGINT and SIGTERM stop it once: a repeat
        while stopping (Ctrl-C pressed again) is logged, where Twisted's own
        handlers would log a critical ``ReactorNotRunning`` traceback.
        """
        self.startService()
        reactor.callWhenRunning(stop_once_on_signals, reactor)
        finished: Deferred[None] = Deferred()

        def component_failed(error: object) -> None:
            if not finished.called:
                exc = error.value if isinstance(error, Failure) else error
                finished.errback(exc if isinstance(exc, BaseException) else RuntimeError(exc))

        self.failed.addBoth(component_failed)
        reactor.addSystemEventTrigger("before", "shutdown", self.stopService)

        def reactor_stopped() -> None:
            if not finished.called:
                finished.callback(None)

        reactor.addSystemEventTrigger("after", "shutdown", reactor_stopped)
        return finished


async def _as_coroutine(result: object) -> None:
    if isinstance(result, Deferred):
        await result
