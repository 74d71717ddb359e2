from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop

from tests.monitors.servers import BIG_BODY, closed_port, counting_server
from vigil import __version__
from vigil.config import Settings
from vigil.monitors import http
from vigil.monitors.registry import HttpClients
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import HttpMonitorSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[http.HttpClient]:
    client = http.new_http_client()
    yield client
    await client.aclose()


def spec(url: str, **fields: Any) -> HttpMonitorSpec:
    return HttpMonitorSpec.model_validate({"type": "http", "url": url, **fields})


async def test_ok(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/ok", contains="ok"), client=client)
    assert (result.outcome, result.reason) == (Outcome.UP, "status 200")
    assert result.details["status_code"] == 200
    assert result.monitor_id == f"http:{http_base}/ok"
    assert 0 < result.latency < 2
    assert result.started_at.tzinfo is not None


async def test_unexpected_status(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/503"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "status 503 (expected 200-399)")


async def test_expected_status_list(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/503", expected_status=["2xx", 503]), client=client)
    assert result.outcome is Outcome.UP
    result = await http.check(spec(f"{http_base}/ok", expected_status=[204, "300-302"]), client=client)
    assert result.reason == "status 200 (expected 204, 300-302)"


async def test_keyword_missing(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/ok", contains="healthy"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "keyword 'healthy' missing")


async def test_regex(http_base: str, client: http.HttpClient) -> None:
    assert (await http.check(spec(f"{http_base}/ok", regex=r"status:\s+ok"), client=client)).outcome is Outcome.UP
    result = await http.check(spec(f"{http_base}/ok", regex=r"^fine$"), client=client)
    assert result.reason == "no match for regex '^fine$'"


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ('$.status == "ok"', None),
        ("$.db.ok", None),
        ("$.checks[0].healthy == false", None),
        ('$.status != "ok"', '$.status is "ok" (expected anything else)'),
        ('$.status == "down"', '$.status is "ok" (expected "down")'),
        ("$.db.lag == false", "$.db.lag is 0 (expected false)"),
        ("$.checks[0].healthy", "$.checks[0].healthy is false"),
        ("$.cache.ok", "$.cache missing"),
    ],
)
async def test_json_condition(http_base: str, client: http.HttpClient, condition: str, reason: str | None) -> None:
    result = await http.check(spec(f"{http_base}/json", json_path=condition), client=client)
    assert result.reason == (reason or "status 200")
    assert result.outcome is (Outcome.DOWN if reason else Outcome.UP)


async def test_json_condition_on_text(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/ok", json_path="$.status"), client=client)
    assert result.reason == "body is not JSON (needed for $.status)"


async def test_redirects(http_base: str, client: http.HttpClient) -> None:
    followed = await http.check(spec(f"{http_base}/redirect", contains="ok"), client=client)
    assert (followed.outcome, followed.details["redirects"]) == (Outcome.UP, 1)
    assert followed.details["url"] == f"{http_base}/ok"
    kept = await http.check(spec(f"{http_base}/redirect", follow_redirects=False, expected_status=200), client=client)
    assert kept.reason == "status 302 (expected 200)"
    looping = await http.check(spec(f"{http_base}/loop"), client=client)
    assert (looping.outcome, looping.reason) == (Outcome.DOWN, "too many redirects")


async def test_large_body_is_capped(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/big"), client=client)
    assert (result.outcome, result.reason) == (Outcome.UP, "status 200; response larger than 1 MiB: read first 1 MiB")
    assert result.details["bytes_read"] == 1024 * 1024 < BIG_BODY
    small = await http.check(spec(f"{http_base}/big", max_body="64KiB", contains="ok"), client=client)
    assert small.reason == "keyword 'ok' missing (response larger than 64 KiB: read first 64 KiB)"


async def test_post_body(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(
        spec(f"{http_base}/echo", method="post", body="hello", contains="got hello"), client=client
    )
    assert (result.outcome, result.details["status_code"]) == (Outcome.UP, 201)
    assert result.monitor_id == f"http:POST:{http_base}/echo"


async def test_timeout_waiting_for_response(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/hang", timeout="500ms", interval="1m"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 500 ms while waiting for the response")
    assert 0.4 < result.latency < 2


async def test_slow_is_degraded(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/slow?s=0.3", max_latency="100ms"), client=client)
    assert result.outcome is Outcome.DEGRADED
    assert result.reason.startswith("slow: 3") and result.reason.endswith(" ms (degraded above 100 ms); status 200")
    result = await http.check(spec(f"{http_base}/slow?s=0.3", degraded_if={"latency_ms_above": 100}), client=client)
    assert result.outcome is Outcome.DEGRADED
    fast = await http.check(spec(f"{http_base}/ok", degraded_if={"latency_ms_above": 5000}), client=client)
    assert fast.outcome is Outcome.UP


async def test_connection_refused(client: http.HttpClient) -> None:
    result = await http.check(spec(f"http://127.0.0.1:{closed_port()}/"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "connection refused")


async def test_https_verification(https_base: str, trust: ssl.SSLContext) -> None:
    async with HttpClients(trust=trust) as trusting, HttpClients() as system:
        ok = await http.check(spec(f"{https_base}/ok"), client=trusting.for_spec(spec(f"{https_base}/ok")))
        assert (ok.outcome, ok.reason) == (Outcome.UP, "status 200")
        strict = spec(f"{https_base}/ok")
        refused = await http.check(strict, client=system.for_spec(strict))
        assert refused.outcome is Outcome.DOWN
        assert refused.reason.startswith("invalid certificate: ")
        lax = spec(f"{https_base}/ok", verify_tls=False)
        assert (await http.check(lax, client=system.for_spec(lax))).outcome is Outcome.UP


@pytest.fixture
async def no_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make names under .invalid fail to resolve without asking the system resolver (and refuse any other name)."""

    async def getaddrinfo(host: object, *args: object, **kwargs: object) -> Any:
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        raise AssertionError(f"unexpected lookup of {host!r}")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)


async def test_dns_error(no_resolver: None, client: http.HttpClient) -> None:
    result = await http.check(spec("http://nothing-here.invalid/"), client=client)
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "DNS error: cannot resolve the host (Name or service not known)",
    )


async def test_timeout_reading_the_body(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/stall", timeout="500ms", interval="1m"), client=client)
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "timeout after 500 ms while reading the body (status 200)",
    )


async def test_huge_body_is_not_read(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/huge", max_body="64KiB"), client=client)
    assert (result.outcome, result.reason) == (Outcome.UP, "status 200; response larger than 64 KiB: read first 64 KiB")
    assert (result.details["bytes_read"], result.details["truncated"]) == (65536, True)
    assert result.latency < 2


async def test_details(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/ok"), client=client)
    assert result.details == {
        "status_code": 200,
        "url": f"{http_base}/ok",
        "redirects": 0,
        "bytes_read": 11,
        "truncated": False,
    }
    with_user = http_base.replace("http://", "http://monitor:secret@")
    hidden = await http.check(spec(f"{with_user}/headers", json_path='$.authorization != ""'), client=client)
    assert (hidden.outcome, hidden.details["url"]) == (Outcome.UP, f"{http_base}/headers")
    basic = '$.authorization == "Basic bW9uaXRvcjpzZWNyZXQ="'  # the URL's credentials win over a header
    both = spec(f"{with_user}/headers", headers={"Authorization": "Bearer x"}, json_path=basic)
    assert (await http.check(both, client=client)).reason == "status 200"


async def test_charset(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/latin1", contains="café ok"), client=client)
    assert result.outcome is Outcome.UP


async def test_request_headers(http_base: str, client: http.HttpClient) -> None:
    agent = f"Vigil/{__version__} (uptime monitor)"
    sent = spec(f"{http_base}/headers", headers={"X-Probe": "1"}, json_path=f'$.user_agent == "{agent}"')
    assert (await http.check(sent, client=client)).reason == "status 200"
    probe = spec(f"{http_base}/headers", headers={"X-Probe": "yes"}, json_path='$.x_probe == "yes"')
    assert (await http.check(probe, client=client)).reason == "status 200"
    # A body goes out as it is: no Content-Type unless the monitor sets one.
    untyped = spec(f"{http_base}/headers", method="POST", body="{}", json_path='$.content_type == ""')
    assert (await http.check(untyped, client=client)).reason == "status 200"
    typed = spec(
        f"{http_base}/headers",
        method="POST",
        body="{}",
        headers={"Content-Type": "application/json"},
        json_path='$.content_type == "application/json"',
    )
    assert (await http.check(typed, client=client)).reason == "status 200"


async def test_no_cookies_kept(http_base: str, client: http.HttpClient) -> None:
    assert (await http.check(spec(f"{http_base}/cookie"), client=client)).outcome is Outcome.UP
    result = await http.check(spec(f"{http_base}/headers", json_path='$.cookie == ""'), client=client)
    assert (result.outcome, result.reason) == (Outcome.UP, "status 200")


async def test_no_connection_reuse(client: http.HttpClient) -> None:
    with counting_server() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for _ in range(3):
            assert (await http.check(spec(url), client=client)).reason == "status 200"
    assert server.connections == 3


async def test_protocol_errors(http_base: str, line_port: int, client: http.HttpClient) -> None:
    garbage = await http.check(spec(f"http://127.0.0.1:{line_port}/"), client=client)
    assert (garbage.outcome, garbage.reason) == (
        Outcome.DOWN,
        "protocol error: Bad status line: Expected HTTP/, RTSP/ or ICE/: b'-ERR unknown command'",
    )
    dropped = await http.check(spec(f"{http_base}/drop"), client=client)
    assert dropped.reason == "protocol error: Server disconnected without sending a response."
    partial = await http.check(spec(f"{http_base}/partial"), client=client)
    assert partial.reason == (
        "protocol error: peer closed connection without sending complete message body (received 3 bytes, expected 100)"
    )


async def test_tls_errors(tls_ports: dict[str, int], trust: ssl.SSLContext) -> None:
    async with HttpClients(trust=trust) as clients:

        async def reason(name: str) -> str:
            monitor = spec(f"https://localhost:{tls_ports[name]}/")
            return (await http.check(monitor, client=clients.for_spec(monitor))).reason

        assert await reason("expired") == "invalid certificate: certificate has expired"
        assert await reason("mismatch") == (
            "invalid certificate: Hostname mismatch, certificate is not valid for 'localhost'."
        )
        plain = await http.check(spec(f"https://127.0.0.1:{closed_port()}/"), client=clients.for_spec(spec("http://x")))
        assert plain.reason == "connection refused"


async def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch, no_resolver: None, http_base: str) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", http_base)
    monkeypatch.setenv("NO_PROXY", "direct.invalid")
    client = http.new_http_client()  # reads the environment as it is now
    try:
        assert client.proxy_for("http://direct.invalid/") is None
        assert client.proxy_for("https://secure.invalid/") is None
        assert client.proxy_for("http://via-proxy.invalid/ok") == http_base
        result = await http.check(spec("http://via-proxy.invalid/ok", contains="ok"), client=client)
        assert (result.outcome, result.reason) == (Outcome.UP, "status 200")
    finally:
        await client.aclose()


async def test_server_that_never_answers(quiet_port: int, client: http.HttpClient) -> None:
    result = await http.check(spec(f"http://127.0.0.1:{quiet_port}/", timeout="300ms", interval="1m"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 300 ms while waiting for the response")


async def test_other_methods(http_base: str, client: http.HttpClient) -> None:
    # The test server implements GET and POST only: others get 501, which must come back, not hang.
    for method in ("HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"):
        result = await http.check(spec(f"{http_base}/ok", method=method, timeout="2s"), client=client)
        assert result.reason == "status 501 (expected 200-399)", method
    typed = spec(f"{http_base}/headers", method="POST", json_path='$.content_type == ""')
    assert (await http.check(typed, client=client)).reason == "status 200"  # POST without a body: untyped too


async def test_redirect_to_another_scheme(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/ftp"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "redirect to a URL that is not HTTP(S)")


async def test_compressed_body(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/gzip", contains="status: ok, compressed"), client=client)
    assert (result.outcome, result.details["bytes_read"]) == (Outcome.UP, 23)


async def test_url_with_spaces_and_non_ascii(http_base: str, client: http.HttpClient) -> None:
    result = await http.check(spec(f"{http_base}/no such/café"), client=client)
    assert result.reason == "status 404 (expected 200-399)"
    bad_port = await http.check(spec("http://127.0.0.1:99999/"), client=client)
    assert (bad_port.outcome, bad_port.reason) == (Outcome.DOWN, "invalid URL")


def _fd_count() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def test_close_with_checks_in_flight(quiet_port: int) -> None:
    before = _fd_count()
    client = http.new_http_client()
    urls = [f"http://127.0.0.1:{quiet_port}/"] * 5
    checks = [asyncio.create_task(http.check(spec(url, timeout="5s", interval="1m"), client=client)) for url in urls]
    await asyncio.sleep(0.2)
    await client.aclose()
    results = await asyncio.gather(*checks)
    assert {(result.outcome, result.reason) for result in results} == {
        (Outcome.DOWN, "HTTP error: the HTTP client was closed")
    }
    assert _fd_count() <= before


async def test_private_ca_file(https_base: str, ca: trustme.CA, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    client = http.new_http_client(verify=str(pem))
    try:
        result = await http.check(spec(f"{https_base}/ok"), client=client)
        assert (result.outcome, result.reason) == (Outcome.UP, "status 200")
    finally:
        await client.aclose()


async def test_context_settings_are_honoured(tls_ports: dict[str, int], ca: trustme.CA) -> None:
    lenient = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    lenient.load_verify_locations(cadata=ca.cert_pem.bytes().decode())
    lenient.check_hostname = False
    client = http.new_http_client(verify=lenient)
    try:
        mismatch = await http.check(spec(f"https://localhost:{tls_ports['mismatch']}/", timeout="2s"), client=client)
        expired = await http.check(spec(f"https://localhost:{tls_ports['expired']}/", timeout="2s"), client=client)
    finally:
        await client.aclose()
    # The TLS test servers hang up after the handshake: getting as far as the response is the point.
    assert mismatch.reason == "protocol error: Server disconnected without sending a response."
    assert expired.reason == "invalid certificate: certificate has expired"


def test_checks_under_uvloop(http_base: str, quiet_port: int) -> None:
    async def run() -> list[str]:
        client = http.new_http_client()
        try:
            monitors = [
                spec(f"{http_base}/ok"),
                spec(f"http://127.0.0.1:{quiet_port}/", timeout="300ms", interval="1m"),
                spec(f"{http_base}/huge", max_body="64KiB"),
                spec(f"http://127.0.0.1:{closed_port()}/"),
            ]
            return [result.reason for result in await asyncio.gather(*(http.check(m, client=client) for m in monitors))]
        finally:
            await client.aclose()

    assert uvloop.run(run()) == [
        "status 200",
        "timeout after 300 ms while waiting for the response",
        "status 200; response larger than 64 KiB: read first 64 KiB",
        "connection refused",
    ]


async def test_as_many_checks_at_once_as_the_scheduler_allows_none_waiting_out_its_timeout(
    client: http.HttpClient,
) -> None:
    # 150 checks at once against a server that answers each after 0.6 s, with a 1 s timeout. The scheduler lets
    # 500 run at once (VIGIL_CHECK_CONCURRENCY); a smaller connection cap in the client would queue the last
    # ones inside libcurl, with their timeout running, and they would end "timeout" although the server is fine.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.6)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=512)
    async with server:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        results = await asyncio.gather(*(http.check(spec(url, timeout="1s"), client=client) for _ in range(150)))
    assert [r.reason for r in results if r.outcome is not Outcome.UP] == []
    assert Settings.model_fields["check_concurrency"].default <= http.MAX_CONNECTIONS  # the scheduler queues
