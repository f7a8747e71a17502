"""Running a wampweb app under ``twisted.internet.task.react``."""

from typing import Any

from autobahn.twisted.component import Component
from twisted.internet.task import react

from wampweb import WampWeb


def main(reactor: Any, router_url: str = "ws://127.0.0.1:8080/ws") -> Any:
    web = WampWeb(listen="tcp:8090:interface=127.0.0.1", reactor=reactor)
    web.add_component("default", Component(transports=router_url, realm="realm1"))
    web.add_health_routes()
    # Fires when the reactor stops (SIGINT/SIGTERM: drained, sessions left
    # with GOODBYE); fails if a Component fails for good, so the exit code is 1.
    return web.run_until_stopped(reactor)


if __name__ == "__main__":
    react(main)
