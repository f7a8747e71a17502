"""
The Autobahn docs' Klein listing (``docs/listings/webapp.py``), done with wampweb.

The original keeps ``self._session`` from ``on('join')``, answers 500 when it
is None, publishes without waiting for the router, prints, and listens on a
fixed port. Here:

- with no session the route answers 503 with ``Retry-After`` (try again soon),
  and the route body never runs;
- the publish is acknowledged and awaited, so a 200 means the router took it,
  and a failure is reported (502 session lost, 504 no answer in time);
- logging goes through ``twisted.logger``; ports are chosen by the caller
  (``--listen``), with a free loopback port by default;
- with no ``--router``, a local Crossbar.io router is started for the demo.

Run it::

    python -m examples.webapp                      # local router, free port
    python -m examples.webapp --router ws://127.0.0.1:8080/ws --listen tcp:8080:interface=127.0.0.1
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autobahn.twisted.component import Component
from klein import Klein
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.web.iweb import IRequest

from wampweb import WampWeb

TOPIC = "com.myapp.request_served"

log = Logger()


def make_web(component: Any, *, listen: str | None, reactor: Any = None) -> WampWeb:
    """The web application: one route that publishes when it is requested."""
    web = WampWeb(Klein(), listen=listen, reactor=reactor)
    wamp = web.add_component("default", component)

    @web.app.route("/", branch=True)
    @wamp.with_session()
    async def render_slash(request: IRequest, session: Any) -> bytes:
        publication = await wamp.publish(TOPIC)
        log.info("published to {topic} ({id})", topic=TOPIC, id=publication.id)
        return f"Published to '{TOPIC}' (publication {publication.id})\n".encode()

    return web


async def _main(reactor: Any, router_url: str | None, listen: str) -> None:
    router = None
    if router_url is None:
        from wampweb._router import EmbeddedRouter

        router = EmbeddedRouter()
        router.start()
        reactor.addSystemEventTrigger("after", "shutdown", router.close)
        await router.wait_ready(reactor)
        router_url = router.url
    web = make_web(Component(transports=router_url, realm="realm1"), listen=listen)
    finished = web.run_until_stopped(reactor)
    log.info("router {url}; serving {listen}", url=router_url, listen=listen)
    await finished


def main(reactor: Any, *argv: str) -> Any:
    parser = argparse.ArgumentParser(prog="python -m examples.webapp")
    parser.add_argument("--router", default=None, help="router URL (default: start one)")
    parser.add_argument("--listen", default="tcp:0:interface=127.0.0.1")
    options = parser.parse_args(argv)
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)])
    return ensureDeferred(_main(reactor, options.router, options.listen))


if __name__ == "__main__":
    react(main, sys.argv[1:])
