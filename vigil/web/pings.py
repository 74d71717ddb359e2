"""Heartbeat endpoints: ``/ping/<token>`` (success), ``/start``, ``/fail`` and ``/<exit status>``.

A 200 means the ping is committed to the database; anything else means it is not, and cron jobs retry on it
(``curl --retry``). Every job of every user calls these, so they are served by a plain ASGI middleware in
front of FastAPI's routing: routing, dependency injection and Request/Response objects cost about three times
the rest of a ping (measured: 4,800 vs 17,000 requests/s for an empty handler on the benchmark machine). The
body is read only for POST, and only up to :data:`BODY_READ_LIMIT` bytes.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.monitors.models import PING_BODY_LIMIT, PingKind
from vigil.monitors.pings import DatabaseUnavailableError, PingNotRecordedError
from vigil.web.backend import Backend

__all__ = ["BODY_READ_LIMIT", "PREFIX", "TOKEN_RE", "PingMiddleware"]

PREFIX = "/ping/"
# Enough bytes for PING_BODY_LIMIT characters of any UTF-8 (at most 4 bytes each), and no more: a job piping a
# huge log into curl costs 10 KiB of reading, not its size.
BODY_READ_LIMIT = 10 * 1024
# The token alphabet and length of vigil.monitors.schemas.HeartbeatMonitorSpec.token (and of token_urlsafe).
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
METHODS = frozenset({"GET", "POST", "HEAD"})
_SUFFIXES = {"start": PingKind.START, "fail": PingKind.FAIL}
_EXIT_STATUS = re.compile(r"[0-9]{1,3}")
_EXIT_STATUS_MAX = 255

logger = logging.getLogger(__name__)


class PingMiddleware:
    """Answers ``/ping/…`` requests itself and passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, backend: Backend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in METHODS:
            await _answer(send, 405, "method not allowed: use GET, POST or HEAD", [(b"allow", b"GET, POST, HEAD")])
            return
        parsed = _parse(path[len(PREFIX) :])
        if isinstance(parsed, tuple):
            status, text = parsed
            await _answer(send, status, text)
            return
        token, kind = parsed.token, parsed.kind
        at = datetime.now(UTC)  # when it arrived, not when its body was read or its commit done
        try:
            body = await _read_body(receive) if method == "POST" else None
        except _DisconnectedError:
            return  # the client went away before sending the whole request: nothing to record, no one to answer
        await self._record(send, token, kind, at, body)

    async def _record(self, send: Send, token: str, kind: PingKind, at: datetime, body: str | None) -> None:
        try:
            recorded = await self.backend.pings.record(token=token, kind=kind, at=at, body=body)
        except DatabaseUnavailableError as exc:
            retry = str(max(1, math.ceil(exc.retry_after))).encode()
            text = "not recorded: the database is unavailable; retry later"
            await _answer(send, 503, text, [(b"retry-after", retry)])
            return
        except PingNotRecordedError:
            await _answer(send, 500, "not recorded: the database refused the ping")
            return
        if recorded is None:
            await _answer(send, 404, "unknown token")
            return
        await _answer(send, 200, "OK")


class _Parsed:
    __slots__ = ("kind", "token")

    def __init__(self, token: str, kind: PingKind) -> None:
        self.token = token
        self.kind = kind


def _parse(rest: str) -> _Parsed | tuple[int, str]:
    """Return the token and kind of ``<token>[/start|/fail|/<exit status>][/]``, or the status and text to answer."""
    parts = rest.removesuffix("/").split("/")
    if len(parts) > 2 or not parts[0]:
        return 404, "not found: ping URLs are /ping/<token>, /ping/<token>/start and /ping/<token>/fail"
    token = parts[0]
    if TOKEN_RE.fullmatch(token) is None:
        return 400, "malformed token"
    if len(parts) == 1:
        return _Parsed(token, PingKind.SUCCESS)
    suffix = parts[1]
    if suffix in _SUFFIXES:
        return _Parsed(token, _SUFFIXES[suffix])
    if _EXIT_STATUS.fullmatch(suffix) is not None:
        status = int(suffix)
        if status > _EXIT_STATUS_MAX:
            return 400, "exit status must be 0 to 255"
        return _Parsed(token, PingKind.SUCCESS if status == 0 else PingKind.FAIL)
    return 404, "not found: after the token comes /start, /fail or an exit status (0 to 255)"


class _DisconnectedError(Exception):
    pass


async def _read_body(receive: Receive) -> str | None:
    """Return the first characters of the body (UTF-8, invalid bytes replaced), None when it is empty.

    Raises _DisconnectedError when the client left before sending it.
    """
    chunks: list[bytes] = []
    size = 0
    while size < BODY_READ_LIMIT:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _DisconnectedError
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    # Past the limit the rest is left unread: the server discards it.
    text = b"".join(chunks)[:BODY_READ_LIMIT].decode("utf-8", errors="replace")[:PING_BODY_LIMIT]
    return text or None


async def _answer(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = f"{text}\n".encode()
    start_headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})
