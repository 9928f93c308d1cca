"""Limits on what one request may ask of the server, checked in front of Gradio's routes (ASGI middleware).

- An upload over the size limit gets "413: too large (max N MB)". Gradio stops reading such a file at
  the limit and answers at once; the client, still sending, then saw its connection reset instead of
  the answer. Here the rest of the body is read and thrown away (up to ``DRAIN_LIMIT_BYTES``, so a
  client cannot keep the server busy forever) before the clear answer goes out.
- A visitor (one page: Gradio's session hash) may have at most ``max_jobs`` requests queued or running;
  one more gets "429: you already have N jobs waiting". Without it one client could fill the queue and
  make every other visitor wait behind it.
- With a login, the page served to someone not logged in (Gradio's login form) carries no description
  of the studio: Gradio puts its API description (every endpoint, with each model's name in the
  choices) into that page too, which here is emptied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_LIMIT_BYTES = 1 << 30
JOIN_BODY_LIMIT_BYTES = 1 << 20  # a queue request holds widget values; files come through the upload route
DEFAULT_MAX_JOBS = 4
PAGE_BODY_LIMIT_BYTES = 16 << 20
_API_INFO = re.compile(rb"(window\.gradio_api_info = ).*?(;</script>)", re.DOTALL)


def too_large_message(max_bytes: int) -> str:
    return (f"That file is too large (max {max_bytes / 2**20:.0f} MB per file); use a smaller or shorter one "
            f"(whoever runs the studio sets the limit: cadenza app --max-upload-mb)")


def too_many_jobs_message(max_jobs: int) -> str:
    return (f"You already have {max_jobs} jobs waiting or running; wait for one to finish "
            f"or press Cancel, then try again")


class RequestLimits:
    """ASGI middleware: ``max_upload_bytes`` per uploaded file (Gradio enforces it, this makes the answer
    arrive), and at most ``max_jobs`` queued or running jobs per session, counted by ``pending_jobs``
    (session hash -> jobs; None: no per-session limit). ``logged_in(scope)``: whether a request carries
    a valid login (None: the studio has no login)."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_jobs: int = DEFAULT_MAX_JOBS,
                 pending_jobs: Callable[[str], int] | None = None,
                 logged_in: Callable[[Scope], bool] | None = None) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_jobs = max(1, max_jobs)
        self.pending_jobs = pending_jobs
        self.logged_in = logged_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "").rstrip("/")
        if scope.get("method") in ("GET", "HEAD") and self.logged_in is not None and _is_page(path):
            if not self.logged_in(scope):
                return await self._login_page(scope, receive, send)
        if scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        if path.endswith("/upload"):
            return await self._upload(scope, receive, send)
        if path.endswith("/queue/join") and self.pending_jobs is not None:
            return await self._join(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = False
        body_done = False

        async def counting_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 413:
                refused = True  # Gradio's own answer is replaced below, once the body is read
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if refused:
            if not body_done:
                await _drain(receive)
            await _reply(send, 413, too_large_message(self.max_upload_bytes), "text/plain")

    async def _login_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's page for someone not logged in, with its API description emptied."""
        start: Message | None = None
        chunks: list[bytes] = []

        async def holding_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await _send_page(send, start, b"".join(chunks))
                elif sum(map(len, chunks)) > PAGE_BODY_LIMIT_BYTES:  # not a page: let it through as it is
                    await send(start)
                    await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})
                    start = None
            else:
                await send(message)

        await self.app(scope, receive, holding_send)

    async def _join(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks, size, more = [], 0, True
        while more and size <= JOIN_BODY_LIMIT_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay(chunks, receive, message), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        session = _session_of(b"".join(chunks)) if not more else None
        if session is not None and self.pending_jobs(session) >= self.max_jobs:
            return await _reply(send, 429, json.dumps({"detail": too_many_jobs_message(self.max_jobs)}),
                                "application/json")
        await self.app(scope, _replay(chunks, receive, None, more), send)


def _is_page(path: str) -> bool:
    """The routes that answer with Gradio's page (the studio, or its login form): / and the run history."""
    return path in ("", "/") or path.endswith("/runs")


async def _send_page(send: Send, start: Message, body: bytes) -> None:
    body = _API_INFO.sub(rb"\1{}\2", body)
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _session_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    session = data.get("session_hash") if isinstance(data, dict) else None
    return session if isinstance(session, str) else None


def _replay(chunks: list[bytes], receive: Receive, pending: Message | None, more: bool = False) -> Receive:
    """A ``receive`` that gives back the body already read, then the rest from ``receive``."""
    queue: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}] if chunks else []
    if pending is not None:
        queue.append(pending)

    async def replayed() -> Message:
        return queue.pop(0) if queue else await receive()

    return replayed


async def _drain(receive: Receive) -> None:
    read = 0
    while read <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reply(send: Send, status: int, text: str, content_type: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", f"{content_type}; charset=utf-8".encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
