"""Local servers for monitor tests: HTTP, TCP, TLS and DNS on 127.0.0.1, ephemeral ports, in daemon threads.

Every server stops when its fixture ends, and every handler that waits does so for a bounded time, so a test
that goes wrong cannot leave anything behind.
"""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

MAX_WAIT = 10.0  # no handler waits longer than this, whatever the test does
BIG_BODY = 5 * 1024 * 1024


class _HttpHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # tests need no access log
        return

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        routes: dict[str, Callable[[], object]] = {
            "/ok": lambda: self._send(200, b"status: ok\n"),
            "/503": lambda: self._send(503, b"maintenance\n"),
            "/slow": lambda: self._slow(float(query.get("s", ["1"])[0])),
            "/redirect": lambda: self._send(302, b"", location="/ok"),
            "/loop": lambda: self._send(302, b"", location="/loop"),
            "/json": lambda: self._send(200, json.dumps(JSON_BODY).encode(), kind="application/json"),
            "/big": self._big,
            "/huge": self._huge,
            "/hang": lambda: self.server.stopping.wait(MAX_WAIT),
            "/stall": self._stall,
            "/headers": self._headers,
            "/cookie": lambda: self._send(200, b"have a cookie\n", cookie="seen=1; Path=/"),
            "/latin1": lambda: self._send(200, "caf\xe9 ok\n".encode("latin-1"), kind="text/plain; charset=latin-1"),
            "/partial": self._partial,
            "/drop": self._drop,
            "/ftp": lambda: self._send(302, b"", location="ftp://files.invalid/x"),
            "/gzip": self._gzip,
        }
        routes.get(url.path, lambda: self._send(404, b"not found\n"))()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if urlsplit(self.path).path == "/headers":
            self._headers()
            return
        self._send(201, b"got " + body, kind="text/plain")

    def _headers(self) -> None:
        """Answer the request headers a test may look at, as JSON (absent ones as "")."""
        names = ("User-Agent", "Cookie", "Content-Type", "Authorization", "X-Probe", "Host")
        seen = {name.lower().replace("-", "_"): self.headers.get(name, "") for name in names}
        self._send(200, json.dumps(seen).encode(), kind="application/json")

    def _send(
        self, status: int, body: bytes, *, location: str = "", kind: str = "text/plain", cookie: str = ""
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if location:
            self.send_header("Location", location)
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def _slow(self, seconds: float) -> None:
        self.server.stopping.wait(min(seconds, MAX_WAIT))
        self._send(200, b"status: ok, eventually\n")

    def _big(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(BIG_BODY))
        self.end_headers()
        chunk = b"x" * 65536
        try:
            for _ in range(BIG_BODY // len(chunk)):
                self.wfile.write(chunk)
        except OSError:  # the monitor stops reading at its cap and hangs up
            pass

    def _huge(self) -> None:
        # Announces 5 GB and sends until the client hangs up (or for MAX_WAIT at most).
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(HUGE_BODY))
        self.end_headers()
        chunk, deadline = b"x" * 65536, time.monotonic() + MAX_WAIT
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                self.wfile.write(chunk)
        except OSError:
            pass

    def _stall(self) -> None:
        # Headers and part of the body, then nothing until the client gives up.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"status: ok, and then")
        self.wfile.flush()
        self.server.stopping.wait(MAX_WAIT)

    def _partial(self) -> None:
        # Promises 100 bytes, sends 3 and hangs up.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"abc")
        self.close_connection = True

    def _gzip(self) -> None:
        body = gzip.compress(b"status: ok, compressed\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True  # hangs up without a word


HUGE_BODY = 5 * 1024**3
JSON_BODY = {"status": "ok", "db": {"ok": True, "lag": 0}, "checks": [{"name": "disk", "healthy": False}]}


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HttpHandler)
        self.stopping = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client hanging up mid-answer is what some tests do on purpose


@contextmanager
def http_server(tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Yield the base URL of a local HTTP server.

    Routes: /ok /503 /slow?s= /redirect /loop /json /big /huge /hang /stall /headers /cookie /latin1 /partial /drop
    /ftp (a redirect to ftp://) /gzip;
    any path through it as a proxy (``GET http://any.invalid/ok``) is served as that path.

    With ``tls``, it serves HTTPS at https://localhost:PORT (the handshake happens as each connection is accepted).
    """
    server = _HttpServer()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with _serving(server):
        scheme, host = ("https", "localhost") if tls else ("http", "127.0.0.1")
        yield f"{scheme}://{host}:{server.server_address[1]}"


@contextmanager
def _serving(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping = getattr(server, "stopping", None)
        if stopping is not None:
            stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(MAX_WAIT)


class _LineHandler(socketserver.BaseRequestHandler):
    """Answers "PING" with "+PONG" and "QUIET" with nothing (until the client leaves), like a tiny protocol."""

    def handle(self) -> None:
        self.request.settimeout(MAX_WAIT)
        try:
            data = self.request.recv(1024)
            if data.startswith(b"PING"):
                self.request.sendall(b"+PONG\r\n")
            elif data.startswith(b"QUIET"):
                self.request.recv(1024)
            else:
                self.request.sendall(b"-ERR unknown command\r\n")
        except OSError:
            pass


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


@contextmanager
def line_server() -> Iterator[int]:
    """Yield the port of a TCP server answering PING with +PONG."""
    server = _TcpServer(("127.0.0.1", 0), _LineHandler)
    with _serving(server):
        yield server.server_address[1]


@contextmanager
def silent_listener() -> Iterator[int]:
    """Yield the port of a socket that listens but never accepts: connections complete, then nothing comes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class _CountingHandler(socketserver.BaseRequestHandler):
    """Answers every request on a connection with 200 "ok", keeping the connection open for more."""

    server: _CountingServer

    def handle(self) -> None:
        self.server.connections += 1
        self.request.settimeout(MAX_WAIT)
        try:
            while self.request.recv(65536):
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n")
        except OSError:
            pass


class _CountingServer(_TcpServer):
    connections = 0


@contextmanager
def counting_server() -> Iterator[_CountingServer]:
    """Yield a keep-alive HTTP server on 127.0.0.1 that counts the connections it accepted (``.connections``)."""
    server = _CountingServer(("127.0.0.1", 0), _CountingHandler)
    with _serving(server):
        yield server


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _TlsHandler(socketserver.BaseRequestHandler):
    server: _TlsServer

    def handle(self) -> None:
        self.request.settimeout(MAX_WAIT)
        try:
            with self.server.context.wrap_socket(self.request, server_side=True) as tls:
                tls.recv(1)  # until the client hangs up
        except OSError:  # includes the handshake failures that clients refusing our certificate cause
            pass


class _TlsServer(_TcpServer):
    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _TlsHandler)
        self.context = context


@contextmanager
def tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """Yield the port of a TLS server presenting the certificate configured in ``context``."""
    server = _TlsServer(context)
    with _serving(server):
        yield server.server_address[1]


# name → (record type, values); other names get NXDOMAIN, "servfail.test." SERVFAIL, "drop.test." no answer.
DNS_RECORDS = {
    "up.test.": ("A", ["192.0.2.10", "192.0.2.11"]),
    "alias.test.": ("CNAME", ["up.test."]),
    "mail.test.": ("MX", ["10 mx1.test.", "20 mx2.test."]),
    "txt.test.": ("TXT", ['"v=spf1 -all"']),
}


def _dns_answer(wire: bytes) -> bytes | None:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    question = query.question[0]
    name = question.name.to_text().lower()
    if name == "drop.test.":
        return None
    if name == "servfail.test.":
        response.set_rcode(dns.rcode.SERVFAIL)
    elif name not in DNS_RECORDS:
        response.set_rcode(dns.rcode.NXDOMAIN)
    else:
        kind, values = DNS_RECORDS[name]
        if dns.rdatatype.from_text(kind) == question.rdtype:
            response.answer.append(dns.rrset.from_text_list(name, 300, "IN", kind, values))
    return response.to_wire()


@contextmanager
def dns_server() -> Iterator[int]:
    """Yield the UDP port of a tiny authoritative server for the names in DNS_RECORDS."""
    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)

        def serve() -> None:
            deadline = time.monotonic() + 300  # a forgotten server stops by itself
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    wire, peer = sock.recvfrom(4096)
                except TimeoutError:
                    continue
                answer = _dns_answer(wire)
                if answer is not None:
                    sock.sendto(answer, peer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield sock.getsockname()[1]
        finally:
            stop.set()
            thread.join(MAX_WAIT)
