"""The access log: off by default, into wampweb's log with "-", or into a file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from wampweb import WampWeb
from wampweb._config import ConfigError, access_log_from_flag, load_config
from wampweb._http import make_site


def serve_one(access_log: str | None) -> list[str]:
    """One GET through a site; the text of every log event emitted meanwhile."""
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock = Clock()
        web = WampWeb(listen=None, reactor=clock)
        web.add_health_routes()
        site = make_site(web.resource(), reactor=clock, access_log=access_log)
        site.doStart()
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert transport.value().startswith(b"HTTP/1.1 200")
        site.doStop()
    finally:
        globalLogPublisher.removeObserver(events.append)
    return [formatEvent(event) for event in events]


def test_no_access_log_by_default() -> None:
    assert not any("GET /health" in line for line in serve_one(None))


def test_dash_sends_a_line_per_request_to_the_log() -> None:
    assert any('"GET /health HTTP/1.1" 200' in line for line in serve_one("-"))


def test_a_path_gets_a_line_per_request(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    lines = serve_one(str(path))
    assert not any("GET /health" in line for line in lines)
    assert '"GET /health HTTP/1.1" 200' in path.read_text()


def test_the_config_resolves_the_path_against_the_files_folder(tmp_path: Path) -> None:
    config = tmp_path / "wampweb.toml"
    config.write_text(
        textwrap.dedent(
            """
            [server]
            access_log = "logs/access.log"
            [components.main]
            realm = "realm1"
            url = "ws://127.0.0.1:8080/ws"
            """
        )
    )
    (tmp_path / "logs").mkdir()
    assert load_config(config).server.access_log == str(tmp_path / "logs" / "access.log")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('"missing/access.log"', "does not exist"),
        ('"."', "is a folder"),
        ('""', "must not be empty"),
        ("true", "expected a string"),
    ],
)
def test_unusable_access_logs_are_refused_with_the_key(
    tmp_path: Path, value: str, reason: str
) -> None:
    config = tmp_path / "wampweb.toml"
    config.write_text(
        f'[server]\naccess_log = {value}\n[components.main]\nrealm = "r"\nurl = "ws://h:1/ws"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert info.value.key == "server.access_log"
    assert reason in info.value.reason


def test_the_flag_is_checked_like_the_key(tmp_path: Path) -> None:
    assert access_log_from_flag("-") == "-"
    with pytest.raises(ConfigError) as info:
        access_log_from_flag(str(tmp_path / "missing" / "access.log"))
    assert info.value.key == "access_log"


def test_the_cli_refuses_an_unusable_access_log_before_starting(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wampweb",
            "run",
            "--router",
            "ws://127.0.0.1:1/ws",
            "--access-log",
            str(tmp_path / "missing" / "access.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "access_log" in result.stderr
    assert "does not exist" in result.stderr
