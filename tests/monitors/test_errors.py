from __future__ import annotations

import errno
import socket
import ssl

import pytest

from vigil.monitors.errors import describe_exception
from vigil.monitors.texts import bytes_text, days_text, seconds_text


def chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TimeoutError(), "timeout after 10 s"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), "connection refused"),
        (
            chained(RuntimeError("All connection attempts failed"), ConnectionRefusedError(111, "x")),
            "connection refused",
        ),
        (
            ExceptionGroup("many", [ValueError("a"), ConnectionResetError(errno.ECONNRESET, "x")]),
            "connection reset by peer",
        ),
        (OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5)"), "connection refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "host unreachable"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "DNS error: cannot resolve the host (Name or service not known)",
        ),
        (
            RuntimeError('connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused'),
            "connection refused",
        ),
        (
            ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            "TLS error: [SSL: WRONG_VERSION_NUMBER] wrong version number",
        ),
        (OSError(errno.EMFILE, "Too many open files"), "OS error: Too many open files"),
        (KeyError("bug"), None),
    ],
)
def test_describe(exc: Exception, reason: str | None) -> None:
    assert describe_exception(exc, timeout=10) == reason


def test_texts() -> None:
    assert [seconds_text(s) for s in (0.25, 10, 2.5, 150, 3 * 3600, 3 * 86400)] == [
        "250 ms",
        "10 s",
        "2.5 s",
        "2.5 min",
        "3 h",
        "3 d",
    ]
    assert [bytes_text(n) for n in (300, 65536, 1 << 20, 3 << 29)] == ["300 bytes", "64 KiB", "1 MiB", "1.5 GiB"]
    assert [days_text(s) for s in (3.2 * 86400, 86400, 5 * 3600, 3600)] == ["3 days", "1 day", "5 hours", "1 hour"]
