from __future__ import annotations

import errno
import socket
import ssl

import pycurl
import pytest

from vigil.monitors.curl import CurlClosedError, CurlError
from vigil.monitors.errors import describe_curl_error, describe_exception
from vigil.monitors.texts import bytes_text, days_text, seconds_text


def chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


def certificate_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.verify_message = message
    return error


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


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (CurlError(pycurl.E_OPERATION_TIMEDOUT, "Operation timed out after 10001 milliseconds"), "timeout after 10 s"),
        (
            CurlError(pycurl.E_COULDNT_CONNECT, "Failed to connect to x port 1", errno.ECONNREFUSED),
            "connection refused",
        ),
        (CurlError(pycurl.E_COULDNT_CONNECT, "Failed to connect: No route to host"), "host unreachable"),
        (
            CurlError(pycurl.E_RECV_ERROR, "Recv failure: Connection reset by peer", errno.ECONNRESET),
            "connection reset by peer",
        ),
        (
            CurlError(pycurl.E_COULDNT_RESOLVE_HOST, "Could not resolve host: a.invalid"),
            "DNS error: cannot resolve the host",
        ),
        (
            CurlError(pycurl.E_COULDNT_RESOLVE_PROXY, "Could not resolve proxy: p"),
            "DNS error: cannot resolve the proxy",
        ),
        (
            CurlError(pycurl.E_PEER_FAILED_VERIFICATION, "SSL certificate problem: certificate has expired"),
            "invalid certificate: certificate has expired",
        ),
        (
            CurlError(
                pycurl.E_PEER_FAILED_VERIFICATION, "SSL certificate OpenSSL verify result: self-signed certificate (18)"
            ),
            "invalid certificate: self-signed certificate",
        ),
        (
            CurlError(
                pycurl.E_PEER_FAILED_VERIFICATION,
                "SSL: no alternative certificate subject name matches target host name 'shop.example'",
            ),
            "invalid certificate: Hostname mismatch, certificate is not valid for 'shop.example'.",
        ),
        (
            CurlError(pycurl.E_SSL_CONNECT_ERROR, "OpenSSL/3.0.13: error:0A00010B:SSL routines::wrong version number"),
            "TLS error: WRONG_VERSION_NUMBER",
        ),
        (CurlError(pycurl.E_TOO_MANY_REDIRECTS, "Maximum (20) redirects followed"), "too many redirects"),
        (CurlError(pycurl.E_URL_MALFORMAT, "URL rejected: Malformed input to a URL function"), "invalid URL"),
        (CurlError(pycurl.E_SEND_ERROR, "Send failure: Broken pipe", errno.EPIPE), "connection closed by peer"),
        (
            CurlError(pycurl.E_BAD_CONTENT_ENCODING, "Error while processing content unencoding"),
            "HTTP error: Error while processing content unencoding",
        ),
        (CurlClosedError(), "HTTP error: the HTTP client was closed"),
    ],
)
def test_describe_curl_error(error: CurlError, reason: str) -> None:
    assert describe_curl_error(error, timeout=10) == reason
    assert describe_exception(chained(RuntimeError("wrapped"), error), timeout=10) == reason
