"""
The documentation builds without a warning, and the examples in it work.

The example in docs/testing.rst is copied here verbatim, between the two marker comments, so
that it runs as a real test. `test_the_testing_page_shows_the_example_tested_here` fails as soon
as the page and this copy differ: change both together. (The other tests import what they need
inside their bodies, so that the example's imports stay exactly as the page shows them.)
"""

# --- begin: the example in docs/testing.rst (it mirrors the page; keep them identical) ---
import json

from twisted.internet.task import Clock

from wampweb import WampWeb
from wampweb.testing import FakeComponent, stub_client


def make_web(component, reactor):
    """The app under test: one route that calls a procedure."""
    web = WampWeb(listen=None, reactor=reactor, call_timeout=5.0)
    backend = web.add_component("backend", component)

    @web.app.route("/sum/<int:a>/<int:b>")
    async def total(request, a, b):
        result = await backend.call("com.example.add", [a, b])
        return json.dumps({"sum": result}).encode()

    return web


def answer(client, request):
    """Status and JSON body of a request, once the in-memory connection carried it."""
    client.flush()
    responses = []
    request.addCallback(responses.append)
    bodies = []
    client.json_content(responses[0]).addCallback(bodies.append)
    return responses[0].code, bodies[0]


def test_the_sum_route_answers_503_until_joined_then_the_callees_result():
    fake = FakeComponent()
    web = make_web(fake, Clock())
    web.startService()
    client = stub_client(web.resource())

    # No session yet: a 503 at once, and nothing was sent.
    status, body = answer(client, client.get("http://app/sum/1/2"))
    assert status == 503
    assert body["error"] == "wampweb.error.no_session"

    # A session joins; the call reaches it, and the test answers it.
    session = fake.join()
    pending = client.get("http://app/sum/1/2")
    client.flush()
    (call,) = session.of_kind("call")
    assert (call.uri, call.args) == ("com.example.add", (1, 2))
    call.answer.callback(3)
    assert answer(client, pending) == (200, {"sum": 3})


def test_a_lost_session_is_a_502_and_a_missed_deadline_a_504():
    clock = Clock()
    fake = FakeComponent()
    web = make_web(fake, clock)
    web.startService()
    client = stub_client(web.resource())

    # The router goes away while the call is in flight: a 502 at once.
    fake.join()
    pending = client.get("http://app/sum/1/2")
    client.flush()
    fake.leave()
    status, body = answer(client, pending)
    assert (status, body["error"]) == (502, "wampweb.error.session_lost")

    # After the reconnect the callee never answers: a 504 when the
    # deadline passes, and the call is cancelled at the router.
    session = fake.join()
    pending = client.get("http://app/sum/1/2")
    client.flush()
    clock.advance(5.0)
    status, body = answer(client, pending)
    assert (status, body["error"]) == (504, "wampweb.error.deadline")
    assert session.of_kind("call")[0].cancelled


# --- end: the example in docs/testing.rst ---


BEGIN = "# --- begin: the example in docs/testing.rst"
END = "# --- end: the example in docs/testing.rst ---"


def docs_dir():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "docs"


def test_the_docs_build_without_a_warning(tmp_path):
    import subprocess
    import sys

    docs = docs_dir()
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",  # every warning is an error
        "--keep-going",  # ...but report all of them at once
        "-q",
        "-b",
        "html",
        "-d",
        str(tmp_path / "doctrees"),
        str(docs),
        str(tmp_path / "html"),
    ]
    result = subprocess.run(
        command, cwd=docs.parent, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr or result.stdout
    assert (tmp_path / "html" / "index.html").is_file()


def test_the_testing_page_shows_the_example_tested_here():
    import re
    import textwrap
    from pathlib import Path

    page = (docs_dir() / "testing.rst").read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:(?: {4}.*)?\n)+)", page, re.MULTILINE)
    shown = [textwrap.dedent(block).strip() for block in blocks]
    source = Path(__file__).read_text(encoding="utf-8")
    tested = source.split(BEGIN, 1)[1].split("\n", 1)[1].split(END, 1)[0].strip()
    assert tested in shown, "docs/testing.rst and tests/test_docs.py show different examples"


def test_the_api_page_documents_every_public_name():
    import re

    import wampweb

    page = (docs_dir() / "api.rst").read_text(encoding="utf-8")
    directive = r"^\.\. auto(?:class|function|data|exception):: wampweb\.(\w+)$"
    documented = set(re.findall(directive, page, re.MULTILINE))
    assert set(wampweb.__all__) - documented == set(), "add them to docs/api.rst"
    assert documented - set(wampweb.__all__) == set(), "not public: remove from docs/api.rst"
    assert ".. automodule:: wampweb.testing" in page
