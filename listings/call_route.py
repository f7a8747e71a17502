"""A route that calls a procedure: bounded, and honest about failures."""

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest

from wampweb import WampWeb


def make_web(component: Any, *, reactor: Any = None) -> WampWeb:
    web = WampWeb(Klein(), listen=None, reactor=reactor)
    backend = web.add_component("backend", component)

    @web.app.route("/sum/<int:a>/<int:b>")
    async def total(request: IRequest, a: int, b: int) -> bytes:
        # Wait up to 2 s for a session (a reconnect in progress), give the
        # callee 5 s. No session: 503; session lost meanwhile: 502;
        # deadline: 504 and a CANCEL to the router; no callee: 404.
        result = await backend.call("com.example.add", [a, b], timeout=5.0, session_wait=2.0)
        return f"{result}\n".encode()

    return web
