"""``wampweb sign`` and ``wampweb verify``, driven through their argument parser."""

from __future__ import annotations

import argparse
import io
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from twisted.internet.task import Clock

from wampweb._signing import RequestVerifier, SigningKey
from wampweb._signing_cli import register_commands

BODY = '{"topic":"com.myapp.topic1","args":["Hello, world"]}'
VECTOR_SIGNATURE = "CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA="


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="wampweb")
    register_commands(top.add_subparsers(dest="command"))
    return top


class Ran:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


Run = Callable[..., Ran]


@pytest.fixture
def wampweb(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run ``wampweb <argv>`` in-process as ``_cli.main`` would dispatch it."""

    def run(*argv: str, stdin: bytes = b"") -> Ran:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        options = parser().parse_args(argv)
        code = options.handler(options)
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    monkeypatch.setenv("BRIDGE_SECRET", "secret")
    return run


def curl_parts(line: str) -> tuple[str, bytes]:
    """The URL and the body a printed curl command sends."""
    words = shlex.split(line)
    assert words[:4] == ["curl", "-s", "-X", "POST"]
    assert words[5:7] == ["-H", "Content-Type: application/json"]
    assert words[7] in ("--data-binary", "--data-raw")
    return words[4], words[8].encode("utf-8", "surrogateescape")


def verifies(url: str, body: bytes, secret: bytes = b"secret", key: str = "foobar") -> str | None:
    clock = Clock()
    clock.advance(time.time())
    args = parse_qs(urlsplit(url).query.encode(), keep_blank_values=True)
    return RequestVerifier([SigningKey(key, secret)], clock=clock).verify(args, body)


# -- sign ------------------------------------------------------------------------------


def test_sign_prints_the_spec_vector_when_given_its_fields(wampweb: Run) -> None:
    ran = wampweb(
        "sign", "--url", "http://127.0.0.1:8080/publish", "--key", "foobar",
        "--secret-env", "BRIDGE_SECRET", "--data", BODY, "--seq", "1", "--nonce", "123456",
        "--timestamp", "2011-10-14T16:59:51.123Z",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    assert ran.out == (
        "curl -s -X POST 'http://127.0.0.1:8080/publish?key=foobar"
        "&timestamp=2011-10-14T16:59:51.123Z&seq=1&nonce=123456"
        "&signature=CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA%3D' "
        "-H 'Content-Type: application/json' "
        """--data-binary '{"topic":"com.myapp.topic1","args":["Hello, world"]}'\n"""
    )
    url, body = curl_parts(ran.out)
    assert parse_qs(urlsplit(url).query)["signature"] == [VECTOR_SIGNATURE]
    assert body == BODY.encode()


def test_a_signed_curl_line_verifies_now(wampweb: Run) -> None:
    ran = wampweb("sign", "--url", "http://h/publish", "--key", "foobar",
                  "--secret-env", "BRIDGE_SECRET", "--data", BODY)  # fmt: skip
    assert ran.code == 0
    assert ran.err == ""
    assert verifies(*curl_parts(ran.out)) == "foobar"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('it\'s "quoted" $HOME `x` \\ !', id="shell-specials"),
        pytest.param('{"a": "line\nbreak"}\n', id="newlines"),
        pytest.param('{"emoji": "😀", "umlaut": "ü"}', id="unicode"),
        pytest.param("@/etc/passwd", id="starts-with-at"),
        pytest.param("", id="empty"),
        pytest.param("  -d x  ", id="looks-like-an-option"),
    ],
)
def test_any_body_is_sent_byte_for_byte(wampweb: Run, body: str) -> None:
    ran = wampweb("sign", "--url", "http://h/hook", "--key", "foobar",
                  "--secret-env", "BRIDGE_SECRET", "--data", body)  # fmt: skip
    assert ran.code == 0
    url, sent = curl_parts(ran.out)
    assert sent == body.encode()
    assert verifies(url, sent) == "foobar"
    if body.startswith("@"):
        assert "--data-raw" in ran.out  # --data-binary would read a file named by it


def test_a_real_shell_reads_the_same_arguments(wampweb: Run, tmp_path: Path) -> None:
    body = 'it\'s $HOME and `date` and "quotes"\nand a tab\t😀'
    ran = wampweb("sign", "--url", "http://h/p?x=1", "--key", "foo bar&=",
                  "--secret-env", "BRIDGE_SECRET", "--data", body)  # fmt: skip
    script = "args() { for a; do printf '%s\\0' \"$a\"; done; }; " + ran.out.replace(
        "curl", "args", 1
    )
    words = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    assert words.split(b"\0")[:-1] == [w.encode() for w in shlex.split(ran.out)[1:]]
    url, sent = curl_parts(ran.out)
    assert sent == body.encode()
    assert parse_qs(urlsplit(url).query)["x"] == ["1"]
    assert verifies(url, sent, key="foo bar&=") == "foo bar&="


def test_a_body_a_command_line_cannot_hold_is_sent_from_its_file(
    wampweb: Run, tmp_path: Path
) -> None:
    data = tmp_path / "body with space.bin"
    data.write_bytes(b"\x00\xff binary")
    ran = wampweb("sign", "--url", "http://h/hook", "--key", "foobar",
                  "--secret-env", "BRIDGE_SECRET", "--data-file", str(data))  # fmt: skip
    assert ran.code == 0
    assert shlex.split(ran.out)[-2:] == ["--data-binary", f"@{data}"]
    url = shlex.split(ran.out)[4]
    assert verifies(url, data.read_bytes()) == "foobar"
    assert "not JSON" in ran.err

    ran = wampweb("sign", "--url", "http://h/hook", "--key", "foobar",
                  "--secret-env", "BRIDGE_SECRET", "--data-file", "-", stdin=b"\x00")  # fmt: skip
    assert ran.code == 2
    assert "--data-file" in ran.err


def test_a_data_file_keeps_its_final_newline(wampweb: Run, tmp_path: Path) -> None:
    data = tmp_path / "body.json"
    data.write_bytes(BODY.encode() + b"\n")
    ran = wampweb("sign", "--url", "http://h/p", "--key", "foobar",
                  "--secret-env", "BRIDGE_SECRET", "--data-file", str(data))  # fmt: skip
    url, sent = curl_parts(ran.out)
    assert sent == BODY.encode() + b"\n"
    assert verifies(url, sent) == "foobar"


def test_the_secret_can_come_from_a_file_or_stdin_without_its_newline(
    wampweb: Run, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"s3cr\xc3\xa9t\n")
    for source, stdin in ((str(secret_file), b""), ("-", b"s3cr\xc3\xa9t\r\n")):
        ran = wampweb("sign", "--url", "http://h/p", "--key", "foobar",
                      "--secret-file", source, "--data", BODY, stdin=stdin)  # fmt: skip
        assert ran.code == 0, ran.err
        assert verifies(*curl_parts(ran.out), secret="s3crét".encode()) == "foobar"


def test_the_secret_is_never_a_plain_argument(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["sign", "--url", "http://h/p", "--key", "k", "--secret", "x"],
        ["sign", "--url", "http://h/p", "--key", "k"],
        ["verify", "--url", "http://h/p"],
        ["sign", "--url", "http://h/p", "--key", "k", "--secret-env", "A", "--secret-file", "f"],
    ):
        with pytest.raises(SystemExit) as exit:
            parser().parse_args(argv)
        assert exit.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--secret-env", "NOT_SET_ANYWHERE"], "'NOT_SET_ANYWHERE' is not set"),
        (["--secret-env", "EMPTY_SECRET"], "the secret is empty"),
        (["--secret-file", "/nonexistent/secret"], "cannot read '/nonexistent/secret'"),
        (["--secret-env", "BRIDGE_SECRET", "--seq", "1.5"], "--seq: must be an integer"),
        (["--secret-env", "BRIDGE_SECRET", "--nonce", "x"], "--nonce: must be an integer"),
        (["--secret-env", "BRIDGE_SECRET", "--timestamp", "2011-10-14T16:59:51Z"], "e.g."),
        (["--secret-file", "-", "--data-file", "-"], "both the secret and the body"),
    ],
)
def test_sign_explains_unusable_options(
    wampweb: Run, monkeypatch: pytest.MonkeyPatch, argv: list[str], complaint: str
) -> None:
    monkeypatch.setenv("EMPTY_SECRET", "")
    ran = wampweb("sign", "--url", "http://h/p", "--key", "k", *argv, stdin=b"x")
    assert ran.code == 2
    assert ran.out == ""
    assert complaint in ran.err


@pytest.mark.parametrize(
    ("url", "complaint"),
    [("ftp://h/p", "http:// or https://"), ("/publish", "http:// or https://"),
     ("http://h/p?nonce=1", "already has signing parameters (nonce)")],
)  # fmt: skip
def test_sign_refuses_a_url_it_cannot_sign(wampweb: Run, url: str, complaint: str) -> None:
    ran = wampweb("sign", "--url", url, "--key", "k", "--secret-env", "BRIDGE_SECRET")
    assert ran.code == 2
    assert complaint in ran.err


# -- verify ----------------------------------------------------------------------------


def signed_now(wampweb: Run, *extra: str, body: str = BODY) -> str:
    ran = wampweb("sign", "--url", "http://h/publish", "--key", "foobar",
                  "--secret-env", "BRIDGE_SECRET", "--data", body, *extra)  # fmt: skip
    return curl_parts(ran.out)[0]


def test_verify_says_ok_for_a_good_request(wampweb: Run) -> None:
    url = signed_now(wampweb)
    ran = wampweb("verify", "--url", url, "--secret-env", "BRIDGE_SECRET", "--data", BODY)
    assert (ran.code, ran.out) == (0, "OK: the request is correctly signed with key 'foobar'\n")
    ran = wampweb("verify", "--url", url, "--secret-env", "BRIDGE_SECRET", "--data", BODY,
                  "--key", "foobar")  # fmt: skip
    assert ran.code == 0


def test_verify_lists_every_reason_and_exits_1(wampweb: Run) -> None:
    url = (
        "http://h/publish?key=foobar&timestamp=2011-10-14T16:59:51.123Z&seq=1&nonce=123456"
        "&signature=CtkX_B8rsSt_wM7B0ybn8Te4NfbupfjN8BWd2AllYZA"
    )
    ran = wampweb("verify", "--url", url, "--secret-env", "BRIDGE_SECRET", "--data", BODY)
    assert ran.code == 1
    lines = ran.out.splitlines()
    assert lines[0] == "FAILED: 2 problem(s)"
    assert "in the past, outside the ±300 s window" in lines[1]
    assert "lacks its '=' padding" in lines[2]
    ran = wampweb("verify", "--url", url + "%3D", "--secret-env", "BRIDGE_SECRET",
                  "--data", BODY, "--window", "0")  # fmt: skip
    assert ran.code == 0


def test_verify_names_a_wrong_secret_or_a_wrong_key(wampweb: Run, monkeypatch) -> None:
    url = signed_now(wampweb)
    monkeypatch.setenv("OTHER", "not the secret")
    ran = wampweb("verify", "--url", url, "--secret-env", "OTHER", "--data", BODY)
    assert ran.code == 1
    assert "secret differs" in ran.out
    ran = wampweb("verify", "--url", url, "--secret-env", "BRIDGE_SECRET", "--data", BODY,
                  "--key", "bazapp")  # fmt: skip
    assert ran.code == 1
    assert "key 'foobar' is not one of the configured keys ('bazapp')" in ran.out


def test_verify_notices_the_body_differs_by_a_newline(wampweb: Run, tmp_path: Path) -> None:
    url = signed_now(wampweb)
    data = tmp_path / "body.json"
    data.write_text(BODY + "\n")
    ran = wampweb("verify", "--url", url, "--secret-env", "BRIDGE_SECRET",
                  "--data-file", str(data))  # fmt: skip
    assert ran.code == 1
    assert "without its final newline, but sent with it" in ran.out


def test_verify_of_an_unsigned_url_lists_the_missing_parameters(wampweb: Run) -> None:
    ran = wampweb("verify", "--url", "http://h/publish", "--secret-env", "BRIDGE_SECRET")
    assert ran.code == 1
    assert ran.out.splitlines()[1:] == [
        f"  - the '{name}' query parameter is missing"
        for name in ("key", "timestamp", "seq", "nonce", "signature")
    ]


def test_verify_refuses_a_negative_window(wampweb: Run) -> None:
    ran = wampweb("verify", "--url", "http://h/p", "--secret-env", "BRIDGE_SECRET",
                  "--window", "-1")  # fmt: skip
    assert ran.code == 2
    assert "--window" in ran.err


# -- as a process ----------------------------------------------------------------------

_MAIN = """
import argparse, sys
from wampweb._signing_cli import register_commands
top = argparse.ArgumentParser(prog="wampweb")
register_commands(top.add_subparsers(dest="command"))
options = top.parse_args(sys.argv[1:])
sys.exit(options.handler(options))
"""


def test_sign_then_verify_as_processes_with_the_secret_on_stdin() -> None:
    def run(*argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-c", _MAIN, *argv], input=b"secret\n", capture_output=True,
            timeout=60, check=False,
        )  # fmt: skip

    signed = run("sign", "--url", "http://h/publish", "--key", "foobar",
                 "--secret-file", "-", "--data", BODY)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    url, body = curl_parts(signed.stdout.decode())
    checked = run("verify", "--url", url, "--secret-file", "-", "--data", body.decode())
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout == b"OK: the request is correctly signed with key 'foobar'\n"
