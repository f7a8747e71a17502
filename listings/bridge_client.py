"""
A signed bridge request from Python, with the standard library only
(docs/bridge-security.rst): what ``wampweb sign`` does, for your own client.
"""

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode


def signed_query(
    key: str,
    secret: bytes,
    body: bytes,
    *,
    seq: int = 1,
    nonce: int | None = None,
    now: datetime | None = None,
) -> str:
    """The query string that signs ``body`` for ``key``, Crossbar's way."""
    when = now if now is not None else datetime.now(UTC)
    # UTC, milliseconds, a trailing Z: 2011-10-14T16:59:51.123Z
    timestamp = when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    # A fresh nonce for every request: the bridge refuses one it has seen.
    nonce_text = str(secrets.randbelow(2**53) if nonce is None else nonce)
    seq_text = str(seq)
    # The fields exactly as sent, then the body byte for byte, no separators.
    message = (key + timestamp + seq_text + nonce_text).encode("utf-8") + body
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    # URL-safe alphabet, '=' padding kept (urlencode sends it as %3D).
    signature = base64.urlsafe_b64encode(digest).decode("ascii")
    fields = {
        "key": key,
        "timestamp": timestamp,
        "seq": seq_text,
        "nonce": nonce_text,
        "signature": signature,
    }
    return urlencode(fields)


def post_signed(url: str, key: str, secret: bytes, payload: dict[str, Any]) -> tuple[int, Any]:
    """POST ``payload`` signed; the status and the decoded answer."""
    body = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        f"{url}?{signed_query(key, secret, body)}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


if __name__ == "__main__":
    import os
    import sys

    # python -m listings.bridge_client http://127.0.0.1:8090/publish shop SHOP_SECRET
    url, key, variable = sys.argv[1:4]
    secret = os.environ[variable].encode("utf-8")
    print(*post_signed(url, key, secret, {"topic": "com.example.hello", "args": ["Hi"]}))
