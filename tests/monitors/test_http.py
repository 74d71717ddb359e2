from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.monitors.servers import BIG_BODY, closed_port
from vigil.monitors import http
from vigil.monitors.registry import HttpClients
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import HttpMonitorSpec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    client = http.new_http_client()
    yield client
    await client.aclose()


def spec(url: str, **fields: Any) -> HttpMonitorSpec:
    return HttpMonitorSpec.model_validate({"type": "http", "url": url, **fields})


async def test_ok(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/ok", contains="ok"), client=client)
    assert (result.outcome, result.reason) == (Outcome.UP, "status 200")
    assert result.details["status_code"] == 200
    assert result.monitor_id == f"http:{http_base}/ok"
    assert 0 < result.latency < 2
    assert result.started_at.tzinfo is not None


async def test_unexpected_status(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/503"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "status 503 (expected 200-399)")


async def test_expected_status_list(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/503", expected_status=["2xx", 503]), client=client)
    assert result.outcome is Outcome.UP
    result = await http.check(spec(f"{http_base}/ok", expected_status=[204, "300-302"]), client=client)
    assert result.reason == "status 200 (expected 204, 300-302)"


async def test_keyword_missing(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/ok", contains="healthy"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "keyword 'healthy' missing")


async def test_regex(http_base: str, client: httpx.AsyncClient) -> None:
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
async def test_json_condition(http_base: str, client: httpx.AsyncClient, condition: str, reason: str | None) -> None:
    result = await http.check(spec(f"{http_base}/json", json_path=condition), client=client)
    assert result.reason == (reason or "status 200")
    assert result.outcome is (Outcome.DOWN if reason else Outcome.UP)


async def test_json_condition_on_text(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/ok", json_path="$.status"), client=client)
    assert result.reason == "body is not JSON (needed for $.status)"


async def test_redirects(http_base: str, client: httpx.AsyncClient) -> None:
    followed = await http.check(spec(f"{http_base}/redirect", contains="ok"), client=client)
    assert (followed.outcome, followed.details["redirects"]) == (Outcome.UP, 1)
    assert followed.details["url"] == f"{http_base}/ok"
    kept = await http.check(spec(f"{http_base}/redirect", follow_redirects=False, expected_status=200), client=client)
    assert kept.reason == "status 302 (expected 200)"
    looping = await http.check(spec(f"{http_base}/loop"), client=client)
    assert (looping.outcome, looping.reason) == (Outcome.DOWN, "too many redirects")


async def test_large_body_is_capped(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/big"), client=client)
    assert (result.outcome, result.reason) == (Outcome.UP, "status 200; response larger than 1 MiB: read first 1 MiB")
    assert result.details["bytes_read"] == 1024 * 1024 < BIG_BODY
    small = await http.check(spec(f"{http_base}/big", max_body="64KiB", contains="ok"), client=client)
    assert small.reason == "keyword 'ok' missing (response larger than 64 KiB: read first 64 KiB)"


async def test_post_body(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(
        spec(f"{http_base}/echo", method="post", body="hello", contains="got hello"), client=client
    )
    assert (result.outcome, result.details["status_code"]) == (Outcome.UP, 201)
    assert result.monitor_id == f"http:POST:{http_base}/echo"


async def test_timeout_waiting_for_response(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/hang", timeout="500ms", interval="1m"), client=client)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 500 ms while waiting for the response")
    assert 0.4 < result.latency < 2


async def test_slow_is_degraded(http_base: str, client: httpx.AsyncClient) -> None:
    result = await http.check(spec(f"{http_base}/slow?s=0.3", max_latency="100ms"), client=client)
    assert result.outcome is Outcome.DEGRADED
    assert result.reason.startswith("slow: 3") and result.reason.endswith(" ms (degraded above 100 ms); status 200")
    result = await http.check(spec(f"{http_base}/slow?s=0.3", degraded_if={"latency_ms_above": 100}), client=client)
    assert result.outcome is Outcome.DEGRADED
    fast = await http.check(spec(f"{http_base}/ok", degraded_if={"latency_ms_above": 5000}), client=client)
    assert fast.outcome is Outcome.UP


async def test_connection_refused(client: httpx.AsyncClient) -> None:
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
