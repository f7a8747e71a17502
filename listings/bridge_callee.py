"""
Procedures to try the HTTP caller with (docs/bridge-caller.rst):

    python -m wampweb run --app listings.bridge_callee:setup

They are registered on the bridge's own Component, so the one process both
serves ``POST /call`` and answers it.
"""

from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult
from twisted.internet.task import deferLater

from wampweb import WampWeb


def setup(web: WampWeb) -> None:
    default = web["default"]

    @default.register("com.example.add")
    def add(a: int, b: int) -> int:
        return a + b

    @default.register("com.example.split")
    def split(name: str) -> CallResult:
        first, _, last = name.partition(" ")
        return CallResult(first, last, length=len(name))

    @default.register("com.example.reserve")
    def reserve(item: str) -> None:
        raise ApplicationError("com.example.error.out_of_stock", f"no {item} left", item=item)

    @default.register("com.example.slow")
    def slow(seconds: float) -> Any:
        return deferLater(web.reactor, seconds, lambda: "done")
