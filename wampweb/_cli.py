"""
``wampweb``: run the bridge, check a config file, watch a topic.

``wampweb run`` with nothing else starts a real Crossbar.io router as a
child process, connects to it and serves the HTTP bridge on loopback, so one
command shows the whole thing working. Everything printed for the user goes
to stdout; the log goes to stderr through ``twisted.logger``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from wampweb._app import DEFAULT_LISTEN, WampWeb
from wampweb._bridge import BridgeKind, mount_bridge
from wampweb._build import app_from_config
from wampweb._errors import ConfigError, WampWebError
from wampweb._outage import without_retry_chatter
from wampweb._signals import stop_once_on_signals
from wampweb._workers import worker_count

_log = Logger()

DEFAULT_REALM = "realm1"
DEMO_TOPIC = "com.example.hello"


def main(argv: Sequence[str] | None = None) -> None:
    """The ``wampweb`` console script."""
    parser = _parser()
    options = parser.parse_args(argv)
    if options.command is None:
        parser.print_help()
        raise SystemExit(2)
    handler: Callable[[argparse.Namespace], int] = options.handler
    raise SystemExit(handler(options))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wampweb",
        description="Put WAMP inside a web application: an HTTP bridge to any WAMP router.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="serve the HTTP bridge (starts a local Crossbar.io router if none is configured)",
        description=(
            "Serve the HTTP bridge. With neither --config nor --router, a local "
            "Crossbar.io router is started as a child process and stopped on exit."
        ),
    )
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    run.add_argument("--router", metavar="URL", help="router URL (ws://... or rs://...)")
    run.add_argument(
        "--realm", metavar="REALM", default=None, help=f"realm to join (default {DEFAULT_REALM})"
    )
    run.add_argument(
        "--listen",
        metavar="ENDPOINT",
        default=None,
        help=f"Twisted server endpoint to serve HTTP on (default {DEFAULT_LISTEN})",
    )
    run.add_argument(
        "--app",
        metavar="MODULE:CALLABLE",
        help="a function called with the WampWeb app before it starts, to add routes",
    )
    run.add_argument(
        "--workers",
        type=worker_count,
        default=1,
        metavar="N",
        help="worker processes sharing the port (a number, or 'auto' for one per core)",
    )
    run.add_argument(
        "--access-log",
        metavar="FILE",
        default=None,
        help="write a line per request to FILE, or to the log with '-' (default: none)",
    )
    run.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warn", "error"],
        help="how much to log on stderr (default info)",
    )
    run.set_defaults(handler=_run_command)

    check = commands.add_parser("check-config", help="validate a TOML configuration file")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=_check_config_command)

    tail = commands.add_parser(
        "tail", help="print the events published to a topic, one JSON line each"
    )
    tail.add_argument("topic", metavar="TOPIC")
    tail.add_argument("--router", metavar="URL", required=True, help="router URL")
    tail.add_argument("--realm", default=DEFAULT_REALM, help=f"realm (default {DEFAULT_REALM})")
    tail.add_argument(
        "--count", type=int, default=0, help="exit after this many events (default: never)"
    )
    tail.add_argument("--log-level", default="error", choices=["debug", "info", "warn", "error"])
    tail.set_defaults(handler=_tail_command)

    from wampweb._signing_cli import register_commands

    register_commands(commands)
    return parser


# -- check-config ----------------------------------------------------------------------


def _check_config_command(options: argparse.Namespace) -> int:
    from wampweb._config import load_config

    try:
        config = load_config(options.file)
    except ConfigError as error:
        sys.stderr.write(f"wampweb: {error}\n")
        return 1
    names = ", ".join(sorted(config.components))
    sys.stdout.write(f"{options.file}: OK ({len(config.components)} component(s): {names})\n")
    return 0


# -- run ------------------------------------------------------------------------------


def _run_command(options: argparse.Namespace) -> int:
    from wampweb._config import (
        WampWebConfig,
        access_log_from_flag,
        config_from_flags,
        load_config,
    )

    if options.config and (options.router or options.realm):
        sys.stderr.write("wampweb: give either --config or --router/--realm, not both\n")
        return 2
    if options.realm and not options.router and not options.config:
        sys.stderr.write("wampweb: --realm needs --router (or put it in --config)\n")
        return 2
    config: WampWebConfig | None = None
    try:
        if options.config:
            config = load_config(options.config)
        elif options.router:
            config = config_from_flags(
                options.router, options.realm or DEFAULT_REALM, options.listen
            )
        setup = _load_app_factory(options.app) if options.app else None
        access_log = access_log_from_flag(options.access_log) if options.access_log else None
    except ConfigError as error:
        sys.stderr.write(f"wampweb: {error}\n")
        return 1

    if options.workers > 1:
        return _run_workers(options, config)
    _start_logging(options.log_level, sys.stderr)
    # Twisted only takes over SIGINT when it has Python's default handler; a
    # parent that started us with SIGINT ignored would make Ctrl-C a no-op.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from twisted.internet import task

    def run(reactor: Any) -> Deferred[None]:
        return ensureDeferred(
            _serve(
                reactor,
                config,
                options.listen,
                setup,
                sys.stdout,
                listen_fd=options.listen_fd,
                access_log=access_log,
            )
        )

    try:
        task.react(run)
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


async def _serve(
    reactor: Any,
    config: Any,
    listen: str | None,
    setup: Callable[[WampWeb], object] | None,
    out: TextIO,
    *,
    listen_fd: int | None = None,
    access_log: str | None = None,
) -> None:
    from wampweb._config import config_from_flags

    # react() calls us before the reactor runs, and so before Twisted installs
    # its SIGINT/SIGTERM handlers: announcing "stop with Ctrl-C" before then
    # would be a lie for a moment.
    running: Deferred[None] = Deferred()
    reactor.callWhenRunning(running.callback, None)
    await running
    stop_once_on_signals(reactor)

    router = None
    if config is None:
        from wampweb._router import EmbeddedRouter

        router = EmbeddedRouter(realm=DEFAULT_REALM)
        _log.info("no router configured: starting a local Crossbar.io router")
        router.start()
        reactor.addSystemEventTrigger("after", "shutdown", router.close)
        try:
            await router.wait_ready(reactor)
        except WampWebError:
            router.close()
            raise
        # RawSocket + msgpack: the cheapest way to a local Crossbar.io (no
        # WebSocket framing or masking; see docs/benchmarks.rst).
        config = config_from_flags(router.rawsocket_url, DEFAULT_REALM, listen)
    elif listen is not None:
        config = attrs.evolve(config, server=attrs.evolve(config.server, listen=listen))
    if access_log is not None:
        config = attrs.evolve(config, server=attrs.evolve(config.server, access_log=access_log))

    web = app_from_config(config, reactor=reactor)
    web.add_health_routes()
    if not config.bridge:
        # No [[bridge]] tables: Crossbar-compatible publisher, caller and webhook.
        first = "default" if "default" in web.components else next(iter(web.components))
        mount_bridge(web, first)
    if setup is not None:
        setup(web)
    if listen_fd is not None:
        # A worker: the parent bound the port and prints the welcome.
        web.listen = adopted_endpoint(reactor, listen_fd)
        finished = web.run_until_stopped(reactor)
        _freeze_startup_objects()
        await finished
        return
    finished = web.run_until_stopped(reactor)
    _freeze_startup_objects()
    port = await _wait_listening(web, reactor)
    if port is None:
        await finished
        return
    mounts = [
        (path, _kind_of(resource), _signed(resource)) for path, resource in web.mounts.items()
    ]
    _print_welcome(out, mounts, port, router.url if router is not None else None)
    await finished


def _freeze_startup_objects() -> None:
    """
    Keep what startup made (modules, classes, config: most of the heap) out
    of the garbage collector's full passes, which otherwise walk all of it
    every time and stall every request in flight for milliseconds.
    """
    gc.collect()
    gc.freeze()


def _signed(resource: object) -> bool:
    verifier = getattr(getattr(resource, "settings", None), "verifier", None)
    return bool(getattr(verifier, "signed", False))


def _kind_of(resource: object) -> BridgeKind | None:
    kind = getattr(getattr(resource, "settings", None), "kind", None)
    return kind if isinstance(kind, BridgeKind) else None


def adopted_endpoint(reactor: Any, fd: int) -> Any:
    """The listening socket a ``--workers`` parent handed down."""
    import socket as sockets

    from twisted.internet.endpoints import AdoptedStreamServerEndpoint

    probe = sockets.socket(fileno=os.dup(fd))
    family = probe.family
    probe.close()
    return AdoptedStreamServerEndpoint(reactor, fd, family)


def _run_workers(options: argparse.Namespace, config: Any) -> int:
    """The ``--workers`` parent: bind once, start the router if wanted, supervise."""
    from wampweb._workers import bind, parse_tcp_listen, supervise

    listen = options.listen or (config.server.listen if config is not None else DEFAULT_LISTEN)
    try:
        host, port = parse_tcp_listen(listen)
    except ConfigError as error:
        sys.stderr.write(f"wampweb: {error}\n")
        return 2
    passed = ["--log-level", options.log_level]
    if options.access_log:
        passed += ["--access-log", options.access_log]
    if options.app:
        passed += ["--app", options.app]
    router = None
    try:
        if config is None:
            from wampweb._router import EmbeddedRouter

            router = EmbeddedRouter(realm=DEFAULT_REALM)
            router.start()
            router.wait_ready_blocking()
            passed += ["--router", router.rawsocket_url, "--realm", DEFAULT_REALM]
        elif options.config:
            passed += ["--config", options.config]
        else:
            passed += ["--router", options.router, "--realm", options.realm or DEFAULT_REALM]
        sock = bind(host, port)
        mounts = _configured_mounts(config)

        def welcome() -> None:
            router_url = router.url if router is not None else None
            _print_welcome(sys.stdout, mounts, sock.getsockname()[1], router_url, options.workers)

        return supervise(options.workers, passed, sock, on_ready=welcome)
    except (OSError, WampWebError) as error:
        sys.stderr.write(f"wampweb: {error}\n")
        return 1
    finally:
        if router is not None:
            router.close()


def _configured_mounts(config: Any) -> list[tuple[str, BridgeKind | None, bool]]:
    if config is not None and config.bridge:
        return [(mount.path, mount.kind, bool(mount.keys)) for mount in config.bridge]
    return [
        ("/publish", BridgeKind.PUBLISHER, False),
        ("/call", BridgeKind.CALLER, False),
        ("/webhook", BridgeKind.WEBHOOK, False),
    ]


async def _wait_listening(web: WampWeb, reactor: Any) -> int | None:
    """The HTTP port once listening, or None if listening failed."""
    from twisted.internet.task import deferLater

    for _ in range(200):
        if web.port is not None:
            return int(getattr(web.port.getHost(), "port", 0))
        if web.failed.called:
            return None
        await deferLater(reactor, 0.01, lambda: None)
    return None


def _print_welcome(
    out: TextIO,
    mounts: list[tuple[str, BridgeKind | None, bool]],
    port: int,
    router_url: str | None,
    workers: int = 1,
) -> None:
    base = f"http://127.0.0.1:{port}"
    processes = f" with {workers} worker processes" if workers > 1 else ""
    lines = [f"wampweb is serving {base}/{processes}"]
    if router_url is not None:
        lines.append(f"with a local Crossbar.io router at {router_url} (realm {DEFAULT_REALM}).")
        lines += [
            "",
            "Watch events in another terminal:",
            f"  wampweb tail {DEMO_TOPIC} --router {router_url}",
        ]
    lines += ["", "Try:"]
    lines += [
        f"  {_curl_line(base, path, kind, signed)}"
        for path, kind, signed in mounts
        if kind is not None
    ]
    lines += [f"  curl -s {base}/ready", "", "Stop with Ctrl-C."]
    out.write("\n".join(lines) + "\n")
    out.flush()


def _curl_line(base: str, path: str, kind: BridgeKind, signed: bool = False) -> str:
    """A request that works against a freshly started mount (signed ones: how to sign it)."""
    url = f"{base}{path}"
    if signed:
        return f"wampweb sign --url {url} --key KEY --secret-env SECRET_VARIABLE --data '...'"
    if kind is BridgeKind.WEBHOOK:
        return f"curl -s -X POST {url} -d 'any text, e.g. a webhook payload'"
    if kind is BridgeKind.CALLER:
        body = json.dumps({"procedure": "wamp.session.count"})
    else:
        body = json.dumps({"topic": DEMO_TOPIC, "args": ["Hello from HTTP"]})
    return f"curl -s -X POST {url} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def _load_app_factory(spec: str) -> Callable[[WampWeb], object]:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--app must look like MODULE:CALLABLE, not {spec!r}", key="--app")
    # As `python -m` does: the app's module usually sits in the current folder.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"cannot import {module_name!r}: {error}", key="--app") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigError(f"{spec!r} is not a callable", key="--app")
    return factory  # type: ignore[no-any-return]


def _start_logging(level: str, stream: TextIO) -> None:
    predicates: list[Any] = [LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))]
    if level != "debug":
        # wampweb says what they say once per outage (wampweb._outage).
        predicates.append(without_retry_chatter)
    observer = FilteringLogObserver(textFileLogObserver(stream), predicates)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


# -- tail -----------------------------------------------------------------------------


#: How long ``tail`` waits, when stopped, for the router's answer to its GOODBYE.
_TAIL_LEAVE_BOUND = 2.0


def _tail_command(options: argparse.Namespace) -> int:
    from autobahn.twisted.component import Component
    from twisted.internet import task

    _start_logging(options.log_level, sys.stderr)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    out = sys.stdout

    def run(reactor: Any) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        received = [0]
        component = Component(transports=options.router, realm=options.realm)

        def on_event(*args: Any, **kwargs: Any) -> None:
            out.write(json.dumps({"args": list(args), "kwargs": kwargs}, default=str) + "\n")
            out.flush()
            received[0] += 1
            if options.count and received[0] == options.count:
                component.stop()  # leave with a GOODBYE; the Component then ends

        def joined(session: Any, details: Any) -> Any:
            subscribed = session.subscribe(on_event, options.topic)
            subscribed.addCallback(
                lambda _: sys.stderr.write(f"wampweb: listening on {options.topic}\n")
            )
            return subscribed

        component.on("join", joined)
        left: Deferred[None] = Deferred()

        def leave_before_shutdown() -> Deferred[None]:
            # Ctrl-C: leave with a GOODBYE (bounded) rather than drop the
            # link, which Autobahn logs as an error and the router sees late.
            if not left.called:
                component.stop()
                reactor.callLater(_TAIL_LEAVE_BOUND, give_up)
            return left

        def give_up() -> None:
            if not left.called:
                left.callback(None)

        reactor.addSystemEventTrigger("before", "shutdown", leave_before_shutdown)
        reactor.callWhenRunning(stop_once_on_signals, reactor)

        def ended(result: object) -> None:
            if not left.called:
                left.callback(None)
            if done.called:
                return
            if isinstance(result, Failure):
                sys.stderr.write(f"wampweb: {result.getErrorMessage()}\n")
                done.errback(SystemExit(1))  # react() exits with this code
                return
            done.callback(None)

        component.start(reactor).addBoth(ended)
        return done

    try:
        task.react(run)
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0
