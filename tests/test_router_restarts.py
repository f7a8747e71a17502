"""
A wampweb app against a real Crossbar.io router that is killed and restarted.

The promise: while the router is gone, requests get an honest 503 with
``Retry-After`` at once; a call in flight when it dies gets an error answer
instead of hanging; when the router is back the app rejoins on its own and
the routes work again.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import pytest_twisted
import treq
from autobahn.twisted.component import Component
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from wampweb import WampWeb
from wampweb._bridge import mount_bridge
from wampweb._router import EmbeddedRouter

pytestmark = pytest.mark.integration

RESTARTS = 5


def make_component(router: EmbeddedRouter) -> Component:
    return Component(
        transports=[
            {
                "url": router.url,
                "initial_retry_delay": 0.5,
                "max_retry_delay": 3.0,
                "retry_delay_growth": 1.5,
                "retry_delay_jitter": 0.1,
            }
        ],
        realm="realm1",
    )


async def post_json(url: str, body: object) -> tuple[int, Any, float, Any]:
    """Status, parsed body, seconds taken, and headers of one real HTTP POST."""
    started = time.monotonic()
    response = await treq.post(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        persistent=False,
    )
    content = await response.content()
    elapsed = time.monotonic() - started
    return response.code, json.loads(content), elapsed, response.headers


@pytest_twisted.ensureDeferred
async def test_the_app_survives_five_router_kills(fresh_router: EmbeddedRouter) -> None:
    web = WampWeb(listen="tcp:0:interface=127.0.0.1", reactor=reactor, call_timeout=30.0)
    backend = web.add_component("default", make_component(fresh_router))
    mount_bridge(web)
    hanging: list[Deferred[None]] = []
    invoked: list[Deferred[None]] = []

    @backend.register("test.slow")
    def slow() -> Deferred[None]:
        # Never answers: the router dies while this call is in flight.
        never: Deferred[None] = Deferred()
        hanging.append(never)
        if invoked:
            invoked.pop(0).callback(None)
        return never

    web.startService()
    try:
        await backend.wait_for_session(15.0)
        assert web.port is not None
        base = f"http://127.0.0.1:{web.port.getHost().port}"
        publish = {"topic": "test.topic", "args": [1]}

        for round_ in range(1, RESTARTS + 1):
            # The routes work.
            status, body, _, _ = await post_json(f"{base}/publish", publish)
            assert status == 200, (round_, body)
            assert isinstance(body["id"], int)

            # A call is in flight at the callee...
            reached: Deferred[None] = Deferred()
            invoked.append(reached)
            in_flight = Deferred.fromCoroutine(
                post_json(f"{base}/call", {"procedure": "test.slow"})
            )
            await reached

            # ...when the router dies.
            killed_at = time.monotonic()
            fresh_router.kill()
            status, body, _, _ = await in_flight
            answered_after = time.monotonic() - killed_at
            assert status == 502, (round_, body)
            assert body["error"] == "wampweb.error.session_lost"
            assert answered_after < 1.0, (
                f"round {round_}: in-flight call answered after {answered_after:.2f} s"
            )

            # During the outage every request gets a fast, honest 503.
            for _ in range(5):
                status, body, elapsed, headers = await post_json(f"{base}/publish", publish)
                assert status == 503, (round_, body)
                assert headers.getRawHeaders("retry-after"), "503 without Retry-After"
                assert elapsed < 0.1, f"round {round_}: 503 took {elapsed * 1000:.0f} ms"

            # The router comes back on the same URL; the app rejoins on its own.
            fresh_router.start()
            await fresh_router.wait_ready(reactor, timeout=30.0)
            back_at = time.monotonic()
            await backend.wait_for_session(10.0)
            rejoined_after = time.monotonic() - back_at
            assert rejoined_after < 5.0, f"round {round_}: rejoined {rejoined_after:.2f} s after"
            assert backend.tracker.join_count == round_ + 1

        status, body, _, _ = await post_json(f"{base}/publish", publish)
        assert status == 200
        assert backend.tracker.leave_count == RESTARTS
        assert backend.operations.in_flight == 0, "nothing left pending inside wampweb"
    finally:
        await web.stopService()
