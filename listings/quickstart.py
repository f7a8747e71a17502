"""A Klein route that publishes, with the session wampweb keeps for it."""

from typing import Any

from autobahn.twisted.component import Component
from klein import Klein
from twisted.web.iweb import IRequest

from wampweb import WampWeb


def make_web(component: Any, *, reactor: Any = None) -> WampWeb:
    web = WampWeb(Klein(), listen="tcp:0:interface=127.0.0.1", reactor=reactor)
    backend = web.add_component("backend", component)

    @web.app.route("/hello", methods=["POST"])
    @backend.with_session()
    async def hello(request: IRequest, session: Any) -> bytes:
        # Acknowledged: a 200 means the router took it. Without a session the
        # route never runs and the client gets 503 + Retry-After.
        publication = await backend.publish("com.example.hello", ["Hello from HTTP"])
        return f"published {publication.id}\n".encode()

    return web


def component_for(router_url: str) -> Component:
    return Component(transports=router_url, realm="realm1")
