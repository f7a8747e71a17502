"""
An ``--app`` hook for the wampweb process of the leak scenario: one extra
route, ``GET /faults/objects``, that collects garbage and counts what a leak
would leave behind (WAMP sessions and their protocols, pending Deferreds,
timers), so the scenario can watch them from outside across router restarts.

Loaded by ``wampweb run --app faults_app:setup`` with ``benchmarks/`` on
``PYTHONPATH``; importing it does nothing else.
"""

from __future__ import annotations

import gc
import json
from typing import Any


def setup(web: Any) -> None:
    @web.app.route("/faults/objects", methods=["GET"])
    def objects(request: Any) -> bytes:
        from autobahn.wamp.protocol import ApplicationSession
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred

        gc.collect()
        sessions = 0
        protocols = 0
        pending = 0
        for thing in gc.get_objects():
            if isinstance(thing, ApplicationSession):
                sessions += 1
            elif isinstance(thing, Deferred):
                if not thing.called:
                    pending += 1
            elif type(thing).__name__.startswith("WampRawSocketClient") or type(
                thing
            ).__name__.startswith("WampWebSocketClient"):
                protocols += 1
        body = {
            "sessions": sessions,
            "protocols": protocols,
            "pending_deferreds": pending,
            "delayed_calls": len(reactor.getDelayedCalls()),  # type: ignore[attr-defined]
            "in_flight": {name: c.operations.in_flight for name, c in web.components.items()},
        }
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(body).encode()
