"""
The WAMP peers of the benchmark, each run as a process of its own.

- ``callee``: registers ``bench.echo`` (answers its first argument).
- ``subscriber``: subscribes to ``bench.topic``, counts the events, and tells the
  count over HTTP on loopback (``GET /count`` answers the number as text).

Both are plain Autobahn Components over RawSocket + msgpack (the cheapest way
to reach Crossbar.io from Python), so they take as little of the machine as
possible from the servers being measured. Each prints ``READY`` on stdout once
joined and registered or subscribed; ``benchmarks/run.py`` waits for that line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from autobahn.twisted.component import Component
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import Site

PROCEDURE = "bench.echo"
TOPIC = "bench.topic"


def _component(router: str, realm: str) -> Component:
    url = urlparse(router)
    transport = {
        "type": "rawsocket",
        "url": router,
        "serializer": "msgpack",
        "endpoint": {"type": "tcp", "host": url.hostname, "port": url.port},
        "max_retries": 0,
    }
    return Component(transports=[transport], realm=realm)


def _ready() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()


class _Count(Resource):
    isLeaf = True

    def __init__(self) -> None:
        Resource.__init__(self)
        self.count = 0

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return str(self.count).encode()


def _run(
    reactor: Any, options: argparse.Namespace, declare: Callable[[Any], Deferred[Any]]
) -> Deferred[None]:
    """Run a Component that ``declare``s on each join, and says READY once it has."""
    component = _component(options.router, options.realm)

    def joined(session: Any, _details: Any) -> Any:
        return declare(session).addCallback(lambda _: _ready())

    component.on("join", joined)
    done: Deferred[None] = component.start(reactor)
    return done


def _run_callee(reactor: Any, options: argparse.Namespace) -> Deferred[None]:
    def echo(*args: Any, **_kwargs: Any) -> Any:
        return args[0] if len(args) == 1 else list(args)

    return _run(reactor, options, lambda session: session.register(echo, PROCEDURE))


def _run_subscriber(reactor: Any, options: argparse.Namespace) -> Deferred[None]:
    counter = _Count()
    reactor.listenTCP(options.port, Site(counter), interface="127.0.0.1")

    def on_event(*_args: Any, **_kwargs: Any) -> None:
        counter.count += 1

    return _run(reactor, options, lambda session: session.subscribe(on_event, TOPIC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["callee", "subscriber"])
    parser.add_argument("--router", required=True, help="rs://127.0.0.1:PORT")
    parser.add_argument("--realm", default="realm1")
    parser.add_argument("--port", type=int, default=0, help="subscriber: HTTP port of /count")
    options = parser.parse_args()
    run = _run_callee if options.role == "callee" else _run_subscriber
    task.react(lambda reactor: run(reactor, options))


if __name__ == "__main__":
    main()
