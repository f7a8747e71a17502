"""Procedures and subscriptions declared once, made again on every session."""

from typing import Any

from wampweb import WampWeb


def declare(web: WampWeb, component: Any) -> list[str]:
    backend = web.add_component("backend", component)
    seen: list[str] = []

    @backend.register("com.example.add")
    def add(a: int, b: int) -> int:
        return a + b

    @backend.subscribe("com.example.hello")
    def on_hello(greeting: str) -> None:
        seen.append(greeting)

    # GET /ready answers 200 only once both are in place on the current session.
    web.add_health_routes()
    return seen
