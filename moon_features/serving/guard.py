"""RequestGuard: what every request passes before the app sees it (pure ASGI, on the event loop).

In order, each step answering by itself and cheaply:
1. access: with an auth_token set, /events (and /score with auth_score) need
   `Authorization: Bearer <token>`; 401 otherwise, before a byte of the body is read;
2. size: a Content-Length above max_body_bytes is a 413 at once; a body without one (chunked)
   is counted as it arrives and refused the moment it passes the limit. Nothing larger than the
   limit is ever held in memory, and nothing is parsed here;
3. load: at most max_in_flight /score + /events requests are handled at once (keep it below the
   thread pool's 40 threads so /health always finds one); more get 503 with Retry-After;
4. containment: an unexpected exception is logged by type and place only (never its message or
   the request: either may hold the body) and answered 500 without a traceback.
"""
from __future__ import annotations

import hmac
import json
import logging
import traceback

from .settings import ServingSettings

logger = logging.getLogger("moon_features.serving")
BOUNDED_PATHS = frozenset({"/score", "/events"})


async def reply(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """A small JSON answer straight from ASGI."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class RequestGuard:
    def __init__(self, app, settings: ServingSettings):
        self.app = app
        self.limit = settings.max_body_bytes
        self.max_in_flight = settings.max_in_flight
        self.token = settings.auth_token.encode() if settings.auth_token else None
        self.protected = {"/events"} | ({"/score"} if settings.auth_score else set())
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if self.token is not None and path in self.protected and not self._authorized(scope):
            return await reply(send, 401, "this endpoint needs `Authorization: Bearer <token>` (the service's "
                                          "auth_token)", {"www-authenticate": "Bearer"})
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await reply(send, 413, self._too_large())
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            body = await self._read_body(receive)
            if body is None:
                return await reply(send, 413, self._too_large())
            receive = _replay(body, receive)
        bounded = path in BOUNDED_PATHS
        if bounded and self.in_flight >= self.max_in_flight:
            return await reply(send, 503, f"the service is handling {self.max_in_flight} requests; retry shortly",
                               {"retry-after": "1"})
        self.in_flight += bounded
        try:
            await self._contained(scope, receive, send)
        finally:
            self.in_flight -= bounded

    def _authorized(self, scope) -> bool:
        given = _header(scope, b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.token)

    def _too_large(self) -> str:
        return f"the request body exceeds {self.limit} bytes (max_body_bytes)"

    async def _read_body(self, receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client went away; the app sees an empty or partial body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _contained(self, scope, receive, send):
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: log the place, answer 500
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f"{frame.filename}:{frame.lineno}" if frame else "?"
            logger.error("unhandled %s in %s %s at %s", type(exc).__name__, scope.get("method"), scope.get("path"), where)
            if not started:
                await reply(send, 500, "internal error; the service log names its type and place")


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
