"""Request targets sent byte for byte (issue 4, "Origin hardening"; issue 16, item 7).

An HTTP client library would normalise `..`, `//` or `%2F` away before sending; these send
the target as written: `http_sender` on a socket to a live server, `asgi_sender` to the app
in-process, decoded as uvicorn decodes it (``path`` percent-decoded once, ``raw_path`` as sent).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import anyio
from litestar.testing import TestClient


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Send = Callable[[str, str, dict[str, str]], Reply]


def http_sender(url: str) -> Send:
    """Requests written byte for byte on a socket; the reply parsed by http.client."""
    host, port = url.removeprefix("http://").rsplit(":", 1)

    def send(method: str, target: str, headers: dict[str, str]) -> Reply:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
            body = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)

    return send


def asgi_sender(client: TestClient[Any]) -> Send:
    """The raw target handed to the app in-process, decoded as uvicorn decodes it."""
    app = client.app

    def send(method: str, target: str, headers: dict[str, str]) -> Reply:
        raw_path, _, query = target.encode("latin-1").partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"testserver")]
            + [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
            "extensions": {},
        }
        messages: list[dict[str, Any]] = []

        async def run() -> None:
            # As httpx's ASGI transport: the request body once, then a disconnect only
            # once the response is complete (a streaming response listens for it).
            sent_request = False
            done = anyio.Event()

            async def receive() -> dict[str, Any]:
                nonlocal sent_request
                if not sent_request:
                    sent_request = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                await done.wait()
                return {"type": "http.disconnect"}

            async def collect(message: dict[str, Any]) -> None:
                messages.append(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    done.set()

            await app(scope, receive, collect)

        client.blocking_portal.call(run)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        fields = {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}
        return Reply(start["status"], fields, body if method != "HEAD" else b"")

    return send
