"""HTTP(S) checks: status, body conditions and latency, through libcurl (pycurl) driven by the event loop.

Why libcurl: the target is at most 0.4 CPU-seconds per 1,000 checks, storing the results included, and every
check opens a fresh connection. Against a local target answering 200 "ok", 2,000 requests 20 at a time cost
1.0 CPU-seconds per 1,000 through httpx, 0.4 through aiohttp's request machinery alone, 0.13 with a raw blocking
socket and 0.10 through libcurl's multi interface (fresh connection each): libcurl connects, speaks TLS, writes
the request and parses the answer in C, and Python only runs when a socket is ready or a timer is due
(:mod:`vigil.monitors.curl`). Through the whole runtime, 1,000 monitors at 5 s went from 0.43–0.51 CPU-s per
1,000 checks (aiohttp) to 0.27–0.33, and one core from ~1,150 to ~3,000 checks a second (BENCHMARKS.md, "The
check engine").

What a check does, whichever library: a new connection each time (``FRESH_CONNECT``, ``FORBID_REUSE``) and a
full TLS handshake (no session resumption), so each check measures connecting; the host name resolved each time
by the system resolver (``getaddrinfo`` through the event loop, as aiohttp's threaded resolver did); no cookies,
no ``~/.netrc``; proxies from the environment as it was when the client was made; HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import re
import socket
import ssl
import urllib.request
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

import pycurl

from vigil import __version__
from vigil.monitors.curl import CurlError, CurlSession
from vigil.monitors.errors import describe_curl_error
from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.jsonpath import parse_json_condition
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import HttpMonitorSpec, format_status_ranges, without_userinfo
from vigil.monitors.texts import bytes_text

__all__ = ["MAX_CONNECTIONS", "MAX_REDIRECTS", "USER_AGENT", "HttpClient", "check", "new_http_client"]

USER_AGENT = f"Vigil/{__version__} (uptime monitor)"
# Open at once per client; more transfers wait in libcurl's queue, and that wait counts against their timeout.
# So it is as high as the scheduler's default concurrency (VIGIL_CHECK_CONCURRENCY, 500): the scheduler's limit is
# the one that queues, and its wait shows as lateness, not as a false "timeout". At 100, 3,000 checks a second
# timed out 8-38 checks a minute that had not even started connecting (BENCHMARKS.md, the check engine).
MAX_CONNECTIONS = 500
MAX_REDIRECTS = 20  # followed; the 21st is "too many redirects"

# CURLOPT_FOLLOWLOCATION = CURLFOLLOW_OBEYCODE (libcurl 8.13): a custom method (PUT, DELETE…) becomes GET after a
# 303, as browsers, aiohttp and POST requests do; older libcurl reads any non-zero value as "follow".
_FOLLOW = 2 if pycurl.version_info()[2] >= 0x080D00 else 1
_HTTP = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # sent with "Content-Length: 0" when there is no body
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What libcurl's URL parser refuses and browsers (and aiohttp) percent-encode: spaces, controls, non-ASCII.
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~" + '"<>\\^`{|}'
_UNSAFE = re.compile(r"[^\x21-\x7e]")


@dataclass(frozen=True, slots=True)
class HttpClient:
    """What checks share: libcurl's multi handles, the options every request takes, the environment's proxies.

    ``template`` is an easy handle holding the options common to every request (TLS trust, no connection
    reuse, the user agent…); each check runs on a ``duphandle()`` of it, which costs a third of setting them.
    """

    curl: CurlSession
    template: pycurl.Curl
    proxies: dict[str, str] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self.curl.closed

    def proxy_for(self, url: str) -> str | None:
        """Return the proxy for ``url`` from ``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``."""
        if not self.proxies:
            return None
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme.lower()) or self.proxies.get("all")
        if proxy is None or _bypassed(parts.hostname or "", self.proxies.get("no", "")):
            return None
        return proxy

    async def aclose(self) -> None:
        """Stop the checks in flight (each ends down, "HTTP error: the HTTP client was closed") and free libcurl."""
        self.curl.close()
        self.template.close()


def _bypassed(host: str, no_proxy: str) -> bool:
    # NO_PROXY as curl reads it: "*", or names that also cover their subdomains ("example.com", ".example.com").
    for entry in no_proxy.lower().split(","):
        name = entry.strip().lstrip(".")
        if name == "*" or (name and (host == name or host.endswith(f".{name}"))):
            return True
    return False


def new_http_client(
    *, verify: bool | str | ssl.SSLContext = True, max_connections: int = MAX_CONNECTIONS
) -> HttpClient:
    """Return a client for HTTP checks: one per ``verify_tls`` setting, shared by every monitor using it.

    ``verify`` is True for the system trust store (the one Python's ``ssl`` uses, ``SSL_CERT_FILE`` included),
    the path of a PEM file of trusted CAs, an ``ssl.SSLContext`` whose CA certificates are trusted instead (its
    ``check_hostname`` and ``verify_mode`` are honoured; a context with no CA certificates loaded means the
    system store), or False for no verification.

    The client keeps no cookies: every check must see what a fresh visitor sees, whatever other monitors
    sharing the client were sent. At most ``max_connections`` are open at once; more requests wait in libcurl's
    queue with their timeout running. No connection is reused either, and host names are resolved again each time,
    so each check measures a full connection. Per-request timeouts come from each monitor. Proxies come from
    the environment as it is now (``HTTPS_PROXY`` and the like); ``~/.netrc`` is not read. It can be made
    outside an event loop and used in several; close it with ``await client.aclose()``.
    """
    proxies = {scheme: url for scheme, url in urllib.request.getproxies_environment().items() if url}
    return HttpClient(CurlSession(max_connections=max_connections), _template(verify), proxies)


def _template(verify: bool | str | ssl.SSLContext) -> pycurl.Curl:
    template = pycurl.Curl()
    setopt = template.setopt
    setopt(pycurl.NOSIGNAL, 1)  # no SIGALRM: libcurl runs in a threaded program
    setopt(pycurl.FRESH_CONNECT, 1)  # a check measures connecting: no connection taken from libcurl's cache…
    setopt(pycurl.FORBID_REUSE, 1)  # …and none left in it
    setopt(pycurl.SSL_SESSIONID_CACHE, 0)  # a full handshake each time: a resumed one would skip the certificate
    setopt(pycurl.DNS_CACHE_TIMEOUT, 0)  # names libcurl resolves itself (redirects, proxies): each time too
    setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    setopt(pycurl.HTTP09_ALLOWED, 1)  # so that a server not speaking HTTP is reported with what it said
    setopt(pycurl.PROTOCOLS, _HTTP)
    setopt(pycurl.REDIR_PROTOCOLS, _HTTP)
    setopt(pycurl.USERAGENT, USER_AGENT)
    setopt(pycurl.ACCEPT_ENCODING, "")  # every encoding libcurl can decode; the body is checked decoded
    setopt(pycurl.PROXY, "")  # "" keeps libcurl from reading the proxy variables itself: proxy_for chooses
    setopt(pycurl.MAXREDIRS, MAX_REDIRECTS)
    # No cookie engine (no COOKIEFILE) and no NETRC: libcurl reads neither unless told to.
    for option, value in _tls_options(verify):
        setopt(option, value)
    return template


def _tls_options(verify: bool | str | ssl.SSLContext) -> tuple[tuple[int, Any], ...]:
    if verify is False or (isinstance(verify, ssl.SSLContext) and verify.verify_mode == ssl.CERT_NONE):
        return ((pycurl.SSL_VERIFYPEER, 0), (pycurl.SSL_VERIFYHOST, 0))
    if isinstance(verify, str):
        return ((pycurl.CAINFO, verify), (pycurl.CAPATH, None))
    check_host = 2 if not isinstance(verify, ssl.SSLContext) or verify.check_hostname else 0
    cas = verify.get_ca_certs(binary_form=True) if isinstance(verify, ssl.SSLContext) else []
    if cas:  # a private trust store: only these CAs (libcurl's built-in file and directory unset)
        pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in cas)
        return (
            (pycurl.CAINFO, None),
            (pycurl.CAPATH, None),
            (pycurl.CAINFO_BLOB, pem),
            (pycurl.SSL_VERIFYHOST, check_host),
        )
    # The store Python's ssl module uses (libcurl's built-in default depends on how the wheel was built); when
    # Python finds neither a file nor a directory, libcurl's default stays.
    paths = ssl.get_default_verify_paths()
    store = ((pycurl.CAINFO, paths.cafile), (pycurl.CAPATH, paths.capath)) if paths.cafile or paths.capath else ()
    return (*store, (pycurl.SSL_VERIFYHOST, check_host))


async def check(spec: HttpMonitorSpec, *, client: HttpClient) -> CheckResult:
    """Return the result of one request to ``spec.url``; never raises.

    Down on a network error, a timeout, a status outside ``expected_status``, or a failed body condition;
    degraded when slower than ``max_latency``. The body is read up to ``max_body`` only.
    """
    return await guarded(spec, lambda progress: _probe(spec, client, progress))


class _Body:
    """libcurl's write callback: keeps the body up to ``cap`` bytes, then stops the transfer."""

    __slots__ = ("bad_status_line", "cap", "chunks", "headers", "size", "truncated")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.headers = False
        self.truncated = False
        self.bad_status_line: bytes | None = None

    def header(self, line: bytes) -> None:
        # libcurl's header callback, only to know that a status line came (getinfo is refused inside callbacks).
        self.headers = True

    def write(self, data: bytes) -> int | None:
        if not self.headers:
            # Body bytes before any header: an HTTP/0.9 answer, which is how libcurl sees a server that is not
            # speaking HTTP ("SSH-2.0-…", "-ERR …"). Stop at once, as a parser would, with what it said.
            self.bad_status_line = data.split(b"\n", 1)[0].rstrip(b"\r")[:100]
            return 0
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.cap:
            # Anything but len(data) makes libcurl stop (CURLE_WRITE_ERROR) and close the connection: a 5 GB
            # download costs one buffer more than the cap, not 5 GB.
            self.truncated = True
            return 0
        return None

    def content(self) -> bytes:
        body = b"".join(self.chunks)
        return body[: self.cap] if self.truncated else body


async def _probe(spec: HttpMonitorSpec, client: HttpClient, progress: Progress) -> Verdict:
    progress.step = "while waiting for the response"
    proxy = client.proxy_for(spec.url)
    try:
        target = _target(spec.url)
    except ValueError:  # a port out of range, a host name IDNA refuses
        return Verdict(Outcome.DOWN, "invalid URL")
    # Resolved here, not by libcurl: the system resolver as before, and a DNS failure reads as it always did.
    # Through a proxy, the proxy resolves the name.
    resolve = None if proxy is not None or target.literal else await _resolve(target)
    handle = client.template.duphandle()
    try:
        body = _Body(int(spec.max_body))
        _configure(handle, spec, target.url, body, proxy, resolve)
        try:
            await client.curl.perform(handle)
        except CurlError as exc:
            if not body.truncated:
                return Verdict(Outcome.DOWN, _describe_failure(exc, handle, body, spec.timeout))
        except asyncio.CancelledError:  # the guard's timeout (or shutdown): say how far the request got
            status = handle.getinfo(pycurl.RESPONSE_CODE)
            if status:
                progress.step = f"while reading the body (status {status})"
            raise
        return _verdict(spec, handle, body)
    finally:
        handle.close()


class _Target(NamedTuple):
    """What a check needs to know about its URL, worked out once per URL."""

    url: str  # as libcurl takes it
    host: str  # IDNA-encoded
    port: int
    literal: bool  # the host is an IP address: nothing to resolve


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    host = _ascii_host(parts.hostname or "")
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    return _Target(_curl_url(url, parts), host, parts.port or _DEFAULT_PORTS[parts.scheme.lower()], literal)


async def _resolve(target: _Target) -> list[str]:
    """Return the ``CURLOPT_RESOLVE`` entry giving libcurl the host's addresses; raises socket.gaierror."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        target.host, target.port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
    )
    addresses = dict.fromkeys(f"[{info[4][0]}]" if info[0] == socket.AF_INET6 else str(info[4][0]) for info in infos)
    # An entry libcurl keeps in its DNS cache until the next check replaces it; it serves only this host and port.
    return [f"{target.host}:{target.port}:{','.join(addresses)}"]


def _configure(
    handle: pycurl.Curl, spec: HttpMonitorSpec, url: str, body: _Body, proxy: str | None, resolve: list[str] | None
) -> None:
    setopt = handle.setopt
    setopt(pycurl.URL, url)
    setopt(pycurl.HTTPHEADER, _headers(spec))
    setopt(pycurl.WRITEFUNCTION, body.write)
    setopt(pycurl.HEADERFUNCTION, body.header)
    if proxy:
        setopt(pycurl.PROXY, proxy)
        setopt(pycurl.NOPROXY, "")  # NO_PROXY was applied when choosing the proxy
    if resolve:
        setopt(pycurl.RESOLVE, resolve)
    if spec.follow_redirects:
        setopt(pycurl.FOLLOWLOCATION, _FOLLOW)
    _set_method(handle, spec)


def _set_method(handle: pycurl.Curl, spec: HttpMonitorSpec) -> None:
    method, data = spec.method, spec.body.encode() if spec.body is not None else None
    if data is None and method in _BODY_METHODS:
        data = b""
    if method == "HEAD":
        handle.setopt(pycurl.NOBODY, 1)
    elif method not in ("GET", "POST") or (method == "GET" and data is not None):
        # POST is implied by a body. A custom method stays on redirects, unless _FOLLOW says to obey the code.
        handle.setopt(pycurl.CUSTOMREQUEST, method)
    if data is not None:
        handle.setopt(pycurl.POSTFIELDSIZE, len(data))
        handle.setopt(pycurl.COPYPOSTFIELDS, data)


def _headers(spec: HttpMonitorSpec) -> list[str]:
    names = {name.lower() for name in spec.headers}
    headers = spec.headers
    # Credentials in the URL win over an Authorization header, as they did with httpx and aiohttp.
    if "authorization" in names and "@" in spec.url:
        parts = urlsplit(spec.url)
        if parts.username is not None or parts.password is not None:
            headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
    # "Name;" sends an empty header ("Name:" would remove it). libcurl's own Content-Type for a body and its
    # "Expect: 100-continue" are removed: a body is sent as is, typed only by the monitor's headers.
    lines = [f"{name}: {value}" if value else f"{name};" for name, value in headers.items()]
    if (spec.body is not None or spec.method in _BODY_METHODS) and "content-type" not in names:
        lines.append("Content-Type:")
    lines.append("Expect:")
    return lines


def _verdict(spec: HttpMonitorSpec, handle: pycurl.Curl, body: _Body) -> Verdict:
    status = int(handle.getinfo(pycurl.RESPONSE_CODE))
    content = body.content()
    details: dict[str, object] = {
        "status_code": status,
        "url": without_userinfo(str(handle.getinfo(pycurl.EFFECTIVE_URL))),
        "redirects": int(handle.getinfo(pycurl.REDIRECT_COUNT)),
        "bytes_read": len(content),
        "truncated": body.truncated,
    }
    failure = _failure(spec, status, handle, content)
    if not body.truncated:
        return Verdict(Outcome.UP if failure is None else Outcome.DOWN, failure or f"status {status}", details)
    note = f"response larger than {bytes_text(spec.max_body)}: read first {bytes_text(spec.max_body)}"
    if failure is not None:
        return Verdict(Outcome.DOWN, f"{failure} ({note})", details)
    return Verdict(Outcome.UP, f"status {status}; {note}", details)


def _failure(spec: HttpMonitorSpec, code: int, handle: pycurl.Curl, body: bytes) -> str | None:
    """Return why the response fails the monitor's conditions, or None when it passes them all."""
    if not any(low <= code <= high for low, high in spec.expected_status):
        return f"status {code} (expected {format_status_ranges(spec.expected_status)})"
    if spec.contains is None and spec.regex is None and spec.json_path is None:
        return None
    text = _decode(body, _charset(handle.getinfo(pycurl.CONTENT_TYPE)))
    if spec.contains is not None and spec.contains not in text:
        return f"keyword {spec.contains!r} missing"
    if spec.regex is not None and spec.regex.search(text) is None:
        return f"no match for regex {spec.regex.pattern!r}"
    if spec.json_path is not None:
        try:
            document = json.loads(text)
        except ValueError:
            return f"body is not JSON (needed for {spec.json_path})"
        return parse_json_condition(spec.json_path).evaluate(document)
    return None


def _charset(content_type: str | None) -> str | None:
    """Return the ``charset`` parameter of a Content-Type header, or None."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _ascii_host(host: str) -> str:
    return host if host.isascii() else host.encode("idna").decode("ascii")


def _curl_url(url: str, parts: SplitResult) -> str:
    """Return the URL as libcurl takes it: IDNA host names, spaces and non-ASCII percent-encoded, no fragment."""
    if _UNSAFE.search(url) is None:
        return url
    netloc = parts.netloc
    if parts.hostname and not parts.hostname.isascii():
        userinfo, at, hostport = netloc.rpartition("@")
        netloc = userinfo + at + hostport.lower().replace(parts.hostname, _ascii_host(parts.hostname))
    path, query = quote(parts.path, safe=_URL_SAFE), quote(parts.query, safe=_URL_SAFE)
    return urlunsplit((parts.scheme, quote(netloc, safe=_URL_SAFE), path, query, ""))


def _describe_failure(exc: CurlError, handle: pycurl.Curl, body: _Body, timeout: float) -> str:
    """Return the reason for a transfer libcurl ended with an error, in the words the checks always used."""
    if body.bad_status_line is not None:
        return f"protocol error: Bad status line: Expected HTTP/, RTSP/ or ICE/: {body.bad_status_line!r}"
    code = exc.code
    # OpenSSL's "unexpected eof while reading" is a TLS server hanging up without a word (or a close_notify).
    hung_up = code == pycurl.E_RECV_ERROR and "unexpected eof" in exc.message
    if code == pycurl.E_GOT_NOTHING or (hung_up and not handle.getinfo(pycurl.RESPONSE_CODE)):
        return "protocol error: Server disconnected without sending a response."
    if code == pycurl.E_PARTIAL_FILE:
        expected = int(handle.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD_T))
        if expected < 0:
            detail = " (incomplete chunked read)"
        else:
            detail = f" (received {int(handle.getinfo(pycurl.SIZE_DOWNLOAD_T))} bytes, expected {expected})"
        return f"protocol error: peer closed connection without sending complete message body{detail}"
    proxy_status = int(handle.getinfo(pycurl.HTTP_CONNECTCODE))
    if proxy_status >= 300:
        return f"proxy refused the connection: status {proxy_status}"
    if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT) and handle.getinfo(pycurl.REDIRECT_COUNT):
        invalid = code == pycurl.E_URL_MALFORMAT
        return "redirect to an invalid URL" if invalid else "redirect to a URL that is not HTTP(S)"
    return describe_curl_error(exc, timeout=timeout)
