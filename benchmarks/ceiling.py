"""
The ceiling: an HTTP server that does everything the bridge does except WAMP.

It parses the same JSON body, checks that the topic (or procedure) is there,
and answers ``{"id": 1}``; no router is involved. ``web`` is a plain
``twisted.web`` resource (the floor of any Twisted HTTP server), ``klein`` the
same behind a Klein route (what a Klein app pays per request).

Prints ``READY`` on stdout once listening; ``benchmarks/run.py`` waits for it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.web.resource import Resource
from twisted.web.server import Site

_KEYS = {b"publish": "topic", b"call": "procedure"}
_OK = b'{"id": 1}'


def _answer(request: Any, key: str) -> bytes:
    request.setHeader(b"content-type", b"application/json; charset=UTF-8")
    try:
        body = json.loads(request.content.read())
    except ValueError:
        request.setResponseCode(400)
        return b'{"error": "bad json"}'
    if not isinstance(body, dict) or key not in body:
        request.setResponseCode(400)
        return b'{"error": "missing key"}'
    return _OK


class _Endpoint(Resource):
    isLeaf = True

    def __init__(self, key: str) -> None:
        Resource.__init__(self)
        self.key = key

    def render_POST(self, request: Any) -> bytes:
        return _answer(request, self.key)


def _web_root() -> Resource:
    root = Resource()
    for path, key in _KEYS.items():
        root.putChild(path, _Endpoint(key))
    return root


def _klein_root() -> Any:
    from klein import Klein

    app = Klein()

    @app.route("/publish", methods=["POST"])
    def publish(request: Any) -> bytes:
        return _answer(request, "topic")

    @app.route("/call", methods=["POST"])
    def call(request: Any) -> bytes:
        return _answer(request, "procedure")

    return app.resource()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["web", "klein"])
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    root = _web_root() if options.kind == "web" else _klein_root()
    reactor: Any = _reactor
    reactor.listenTCP(options.port, Site(root), interface="127.0.0.1")
    reactor.callWhenRunning(lambda: (sys.stdout.write("READY\n"), sys.stdout.flush()))
    reactor.run()


if __name__ == "__main__":
    main()
