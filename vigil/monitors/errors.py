"""Turning the exceptions of network and process code into short reasons ("connection refused").

libcurl's errors (:class:`~vigil.monitors.curl.CurlError`, from the HTTP checks) are described in the words the
aiohttp checks used before: the reasons people see did not change when the checks moved to libcurl.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from collections.abc import Iterator

import pycurl

from vigil.monitors.curl import CurlError
from vigil.monitors.texts import seconds_text

__all__ = ["causes", "describe_curl_error", "describe_exception", "first_line"]

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
        if isinstance(item, CurlError):
            return describe_curl_error(item, timeout=timeout)
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"invalid certificate: {getattr(item, 'verify_message', None) or first_line(item)}"
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


# libcurl's TLS errors, in the words of Python's ssl module (which the checks used before libcurl).
_CURL_TLS = (pycurl.E_SSL_CONNECT_ERROR, pycurl.E_SSL_CERTPROBLEM, pycurl.E_SSL_CIPHER, pycurl.E_SSL_CACERT_BADFILE)
_CURL_NETWORK = (pycurl.E_COULDNT_CONNECT, pycurl.E_SEND_ERROR, pycurl.E_RECV_ERROR)
# "SSL certificate problem: certificate has expired" (libcurl 7–8.x), or since 8.x
# "SSL certificate OpenSSL verify result: certificate has expired (10)": OpenSSL's text is what ssl said too.
_VERIFY_RESULT = re.compile(r"^SSL certificate (?:problem|OpenSSL verify result): |\s*\(\d+\)$")
_HOST_MISMATCH = re.compile(
    r"(?:no alternative certificate subject name|does not match) .*?target host ?name '([^']*)'"
)


def describe_curl_error(error: CurlError, *, timeout: float) -> str:
    """Return the reason for a transfer libcurl ended with ``error``: "connection refused", "timeout after 10 s"…

    The HTTP check reads the codes that need the transfer's state (a body cut short, a proxy's refusal) itself.
    """
    code, message = error.code, first_line(error.message)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return f"timeout after {seconds_text(timeout)}"
    if code in (pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY):
        what = "proxy" if code == pycurl.E_COULDNT_RESOLVE_PROXY else "host"
        return f"DNS error: cannot resolve the {what}"
    if code == pycurl.E_PEER_FAILED_VERIFICATION:
        mismatch = _HOST_MISMATCH.search(message)
        if mismatch is not None:
            return f"invalid certificate: Hostname mismatch, certificate is not valid for '{mismatch[1]}'."
        return f"invalid certificate: {_VERIFY_RESULT.sub('', message)}"
    if code in _CURL_TLS:
        # "OpenSSL/3.0: error:0A00010B:SSL routines::wrong version number" → ssl's reason, WRONG_VERSION_NUMBER
        reason = message.rpartition("::")[2] if "::" in message else message
        return f"TLS error: {reason.upper().replace(' ', '_') if '::' in message else reason}"
    if code in _CURL_NETWORK:
        if error.os_errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[error.os_errno]
        for phrase, reason in _PHRASES:
            if phrase in message.lower():
                return reason
    if code in (pycurl.E_TOO_MANY_REDIRECTS,):
        return "too many redirects"
    if code in (pycurl.E_URL_MALFORMAT, pycurl.E_UNSUPPORTED_PROTOCOL):
        return "invalid URL"
    return f"HTTP error: {message or f'libcurl error {code}'}"
