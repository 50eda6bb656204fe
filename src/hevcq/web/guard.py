"""What every request passes before the app sees it: the Host a credential-free server
answers to, a bounded body read in bounded time, and the security headers of every response.

An ASGI middleware, so ``hevcq serve``, the ingest's dashboard and Lambda share it.
"""

from __future__ import annotations

import asyncio
import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The API's bodies are a file name and a pool, or a redrive request: a few hundred bytes.
# Uploads go to S3 on a presigned POST, never through this server.
MAX_BODY_BYTES = 8 * 1024
# The largest request head (request line and headers): a JWT with its groups fits. The
# HTTP parser refuses a head still incomplete past it; the guard refuses one that arrived
# whole in one read, which the parser lets through up to a read's size.
MAX_HEAD_BYTES = 16 * 1024
# Time a client has to send a whole request body once its head arrived.
BODY_TIMEOUT_S = 10.0
# The names a browser on this machine reaches a loopback server by.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
# media-src blob: lets the job page's player (hls.js) attach its MediaSource; its worker is
# off, so no worker-src is needed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


CLOSE = {"connection": "close"}  # the rest of a refused body is never read


def refused_body(status: int, detail: str) -> HTTPException:
    """A body too large or too slow, raised from ``receive``: FastAPI answers it as it is."""
    return HTTPException(status, detail, headers=CLOSE)


def host_allowed(host: str | None, port: int) -> bool:
    """True for a loopback name with the server's own port (DNS rebinding sends another name)."""
    if not host:
        return False
    if host.endswith("]") or ":" not in host:  # no port: the scheme's default
        name, given = host, "80"
    else:
        name, _, given = host.rpartition(":")
    return name.lower() in LOOPBACK_NAMES and given == str(port)


def head_size(scope: Scope) -> int:
    """The bytes of a request's head as sent: its line, each header, the blank line."""
    query = scope["query_string"]
    path = len(scope.get("raw_path") or b"") + (1 + len(query) if query else 0)
    line = len(scope["method"]) + 1 + path + len(" HTTP/1.1\r\n")
    return line + sum(len(k) + len(v) + 4 for k, v in scope["headers"]) + 2


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def refusal(status: int, detail: str) -> list[Message]:
    """The ASGI messages of a JSON error response that closes the connection."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class Guard:
    """The checks before the app: Host (credential-free only), body size and time, headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        local_only: bool,
        max_body: int | None = None,
        body_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.local_only = local_only
        # Read when the app is made, not when this module is: tests shorten them.
        self.max_body = MAX_BODY_BYTES if max_body is None else max_body
        self.body_timeout_s = BODY_TIMEOUT_S if body_timeout_s is None else body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse what must not reach the app; add the security headers to every answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        refused = self._refusal(scope)
        if refused is not None:
            for message in refusal(*refused):
                await send(message)
            return
        await self.app(scope, _bounded(receive, self.max_body, self.body_timeout_s), send)

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        if head_size(scope) > MAX_HEAD_BYTES:
            return 431, f"request head over {MAX_HEAD_BYTES} bytes"
        server = scope.get("server")
        port = server[1] if server else 0
        if self.local_only and not host_allowed(_header(scope, b"host"), port):
            return 421, "unknown host: open the dashboard at its loopback address"
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, f"request body over {self.max_body} bytes"
        return None


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            given = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in given]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _bounded(receive: Receive, max_body: int, timeout_s: float) -> Receive:
    """``receive`` that refuses a body past ``max_body`` bytes or ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    state = {"read": 0, "done": False}

    async def wrapped() -> Message:
        if state["done"]:  # the body is in: what follows is a disconnect, however late
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise refused_body(408, "request body too slow") from None
        if message["type"] == "http.request":
            state["read"] += len(message.get("body", b""))
            if state["read"] > max_body:
                raise refused_body(413, f"request body over {max_body} bytes")
            state["done"] = not message.get("more_body", False)
        return message

    return wrapped
