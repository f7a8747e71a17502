"""
``wampweb sign`` and ``wampweb verify``: signed bridge requests by hand.

Getting a Crossbar-style signature right from a shell or a new client library
is fiddly (no separators, URL-safe base64 *with* padding, a timestamp with
fractional seconds, the body byte for byte), and a 401 says nothing about
which part is wrong. ``sign`` prints a ``curl`` command that is right by
construction; ``verify`` lists every reason a request would be refused.

The secret is never a command-line argument, where it would land in shell
history and in ``ps`` output: it comes from an environment variable, a file,
or standard input.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit, urlunsplit

from wampweb._errors import ConfigError
from wampweb._signing import (
    DEFAULT_TIMESTAMP_DELTA_LIMIT,
    TIMESTAMP_EXAMPLE,
    SigningKey,
    _canonical_integer,
    compute_signature,
    explain,
    format_timestamp,
    parse_timestamp,
)

_SIGNING_PARAMETERS = ("key", "timestamp", "seq", "nonce", "signature")
_STDIN = "-"


def register_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sign`` and ``verify`` to the ``wampweb`` command's subcommands."""
    sign = commands.add_parser(
        "sign",
        help="print a curl command for a signed HTTP bridge request",
        description=(
            "Sign a request the way Crossbar.io's HTTP bridge expects and print a curl "
            "command that sends it, body byte for byte."
        ),
    )
    sign.add_argument("--url", required=True, help="the bridge URL, e.g. http://host/publish")
    sign.add_argument("--key", required=True, help="the signing key (the public name)")
    _add_secret_arguments(sign)
    _add_data_arguments(sign)
    sign.add_argument("--seq", default="1", help="sequence number (default 1)")
    sign.add_argument("--nonce", default=None, help="nonce (default: random in 0..2**53)")
    sign.add_argument(
        "--timestamp", default=None, help=f"timestamp (default: now, e.g. {TIMESTAMP_EXAMPLE})"
    )
    sign.set_defaults(handler=_sign_command)

    verify = commands.add_parser(
        "verify",
        help="check a signed HTTP bridge request and say why it would be refused",
        description=(
            "Check the signing parameters in a request URL against a secret and the "
            "body; print OK (exit 0) or every reason it fails (exit 1)."
        ),
    )
    verify.add_argument("--url", required=True, help="the full request URL, query included")
    _add_secret_arguments(verify)
    verify.add_argument(
        "--key", default=None, help="the key the secret belongs to (default: the URL's key)"
    )
    _add_data_arguments(verify)
    verify.add_argument(
        "--window",
        type=float,
        default=DEFAULT_TIMESTAMP_DELTA_LIMIT,
        help=f"timestamp window in seconds, 0 = none (default {DEFAULT_TIMESTAMP_DELTA_LIMIT:g})",
    )
    verify.set_defaults(handler=_verify_command)


def _add_secret_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--secret-env", metavar="NAME", help="read the secret from this environment variable"
    )
    group.add_argument(
        "--secret-file",
        metavar="PATH",
        help="read the secret from this file ('-' for standard input); one final newline "
        "is dropped",
    )


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--data", metavar="BODY", help="the request body (default: empty)")
    group.add_argument(
        "--data-file", metavar="PATH", help="read the body from this file, byte for byte"
    )


# -- reading inputs --------------------------------------------------------------------


def _read_secret(options: argparse.Namespace) -> bytes:
    if options.secret_env is not None:
        value = os.environ.get(options.secret_env)
        if value is None:
            raise ConfigError(
                f"environment variable {options.secret_env!r} is not set", key="--secret-env"
            )
        secret = value.encode("utf-8", "surrogateescape")
    else:
        if options.secret_file == _STDIN:
            secret = sys.stdin.buffer.read()
        else:
            secret = _read_file(options.secret_file, "--secret-file")
    # As the server reads secrets from its config: surrounding whitespace (a
    # file's newline) is not part of a secret, or the two would disagree.
    secret = secret.strip()
    if not secret:
        raise ConfigError("the secret is empty", key=_secret_source(options))
    return secret


def _secret_source(options: argparse.Namespace) -> str:
    return "--secret-env" if options.secret_env is not None else "--secret-file"


def _read_body(options: argparse.Namespace) -> bytes:
    if options.data is not None:
        # argv was decoded with surrogateescape: this gives back the bytes typed.
        return str(options.data).encode("utf-8", "surrogateescape")
    if options.data_file is None:
        return b""
    if options.data_file == _STDIN:
        if options.secret_file == _STDIN:
            raise ConfigError(
                "standard input cannot hold both the secret and the body", key="--data-file"
            )
        return sys.stdin.buffer.read()
    return _read_file(options.data_file, "--data-file")


def _read_file(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {path!r}: {error.strerror}", key=option) from None


def _fail(error: ConfigError) -> int:
    sys.stderr.write(f"wampweb: {error}\n")
    return 2


# -- sign ------------------------------------------------------------------------------


def _sign_command(options: argparse.Namespace) -> int:
    try:
        line = _signed_curl(options, now=datetime.now(UTC))
    except ConfigError as error:
        return _fail(error)
    sys.stdout.write(line + "\n")
    return 0


def _signed_curl(options: argparse.Namespace, *, now: datetime) -> str:
    """The curl command line for ``options``: a pure function of its inputs and ``now``."""
    secret = _read_secret(options)
    body = _read_body(options)
    seq = str(options.seq)
    nonce = str(options.nonce) if options.nonce is not None else str(secrets.randbelow(2**53))
    for name, value in (("--seq", seq), ("--nonce", nonce)):
        if _canonical_integer(value.encode()) is None:
            raise ConfigError(f"must be an integer, not {value!r}", key=name)
    timestamp = options.timestamp if options.timestamp is not None else format_timestamp(now)
    try:
        parse_timestamp(timestamp)
    except ValueError:
        raise ConfigError(
            f"{timestamp!r} is not what the bridge accepts (e.g. {TIMESTAMP_EXAMPLE!r})",
            key="--timestamp",
        ) from None
    key = str(options.key)
    signature = compute_signature(secret, key, timestamp, seq, nonce, body)
    url = _signed_url(
        str(options.url),
        [
            ("key", key),
            ("timestamp", timestamp),
            ("seq", seq),
            ("nonce", nonce),
            ("signature", signature),
        ],
    )
    if not _is_json(body):
        sys.stderr.write(
            "wampweb: warning: the body is not JSON; a publisher or caller will answer "
            "400 (a webhook takes any body)\n"
        )
    return " ".join(
        [
            "curl -s -X POST",
            shlex.quote(url),
            "-H 'Content-Type: application/json'",
            _curl_body(body, options.data_file),
        ]
    )


def _signed_url(url: str, parameters: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"must be an http:// or https:// URL, not {url!r}", key="--url")
    already = parse_qs(parts.query, keep_blank_values=True)
    clash = [name for name in _SIGNING_PARAMETERS if name in already]
    if clash:
        raise ConfigError(
            f"the URL already has signing parameters ({', '.join(clash)}); give it without them",
            key="--url",
        )
    # quote (not quote_plus): a space in a key must not become a '+' that some
    # parser reads back as a plus.
    signing = urlencode(parameters, quote_via=quote, safe=":")
    query = f"{parts.query}&{signing}" if parts.query else signing
    return urlunsplit(parts._replace(query=query))


def _curl_body(body: bytes, data_file: str | None) -> str:
    """
    The curl option that sends ``body`` exactly.

    ``--data-binary`` sends its argument untouched, except that one starting
    with ``@`` names a file; ``--data-raw`` has no ``@`` rule. A body a shell
    argument cannot carry (a NUL byte, bytes that are not UTF-8) is sent from
    the file it came from.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\0" not in text:
        option = "--data-raw" if text.startswith("@") else "--data-binary"
        return f"{option} {shlex.quote(text)}"
    if data_file is not None and data_file != _STDIN:
        return f"--data-binary @{shlex.quote(data_file)}"
    raise ConfigError(
        "this body cannot be written on a command line (NUL bytes or not UTF-8); "
        "save it to a file and give --data-file",
        key="--data-file",
    )


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


# -- verify ----------------------------------------------------------------------------


def _verify_command(options: argparse.Namespace) -> int:
    try:
        reasons, key = _verify_reasons(options, now=datetime.now(UTC))
    except ConfigError as error:
        return _fail(error)
    if not reasons:
        sys.stdout.write(f"OK: the request is correctly signed with key '{key}'\n")
        return 0
    sys.stdout.write(f"FAILED: {len(reasons)} problem(s)\n")
    sys.stdout.writelines(f"  - {reason}\n" for reason in reasons)
    return 1


def _verify_reasons(options: argparse.Namespace, *, now: datetime) -> tuple[list[str], str]:
    """Why the request would be refused (empty if it would not), and the key checked."""
    if not options.window >= 0:
        raise ConfigError(f"must be >= 0, not {options.window!r}", key="--window")
    parts = urlsplit(str(options.url))
    # What Twisted builds request.args with: bytes, blank values kept.
    args = parse_qs(parts.query.encode("utf-8"), keep_blank_values=True)
    secret = _read_secret(options)
    body = _read_body(options)
    if options.key is not None:
        key = str(options.key)
    else:
        sent = args.get(b"key")
        key = sent[0].decode("utf-8", "replace") if sent else ""
    keys = [SigningKey(key=key, secret=secret)] if options.key is not None or key else []
    reasons = explain(args, body, keys, now=now, timestamp_delta_limit=options.window)
    return reasons, key
