"""Turning the exceptions of network and process code into short reasons ("connection refused")."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator

from vigil.monitors.texts import seconds_text

__all__ = ["causes", "describe_exception", "first_line"]

_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by peer",
    errno.ECONNABORTED: "connection aborted",
    errno.EPIPE: "connection closed by peer",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRNOTAVAIL: "address not available",
    errno.ETIMEDOUT: "connection timed out",
}
# Libraries that flatten the OS error into text (libpq, asyncio's "Multiple exceptions") are read by phrase.
_PHRASES = (
    ("connection refused", "connection refused"),
    ("connect call failed", "connection refused"),
    ("could not translate host name", "DNS error: cannot resolve the host"),
    ("name or service not known", "DNS error: cannot resolve the host"),
    ("no route to host", "host unreachable"),
    ("network is unreachable", "network unreachable"),
    ("connection reset", "connection reset by peer"),
    ("password authentication failed", "authentication failed"),
)


def first_line(text: object, limit: int = 200) -> str:
    """Return the first non-empty line of ``str(text)``, cut to ``limit`` characters."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield the exception, then its causes, contexts and group members, each once, outermost first."""
    pending, seen = [exc], set[int]()
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(item for item in (current.__cause__, current.__context__) if item is not None)


def describe_exception(exc: BaseException, *, timeout: float) -> str | None:
    """Return the reason for a network, TLS or OS failure anywhere in the cause chain, or None if unknown.

    ``timeout`` is the check's limit, named in "timeout after 10 s".
    """
    chain = list(causes(exc))
    for item in chain:
        if isinstance(item, TimeoutError):
            return f"timeout after {seconds_text(timeout)}"
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"invalid certificate: {item.verify_message}"
        if isinstance(item, ssl.SSLError):
            return f"TLS error: {getattr(item, 'reason', None) or first_line(item)}"
        if isinstance(item, socket.gaierror):
            return f"DNS error: cannot resolve the host ({item.strerror})"
        if isinstance(item, OSError) and item.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[item.errno]
    for item in chain:
        text = str(item).lower()
        for phrase, reason in _PHRASES:
            if phrase in text:
                return reason
    for item in chain:
        if isinstance(item, OSError) and (item.strerror or str(item)):
            return f"OS error: {first_line(item.strerror or item)}"
    return None
