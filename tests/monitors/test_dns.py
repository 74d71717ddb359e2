from __future__ import annotations

from typing import Any

import pytest

from vigil.monitors import dns
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import DnsMonitorSpec

pytestmark = pytest.mark.anyio


def spec(port: int, name: str, **fields: Any) -> DnsMonitorSpec:
    return DnsMonitorSpec.model_validate({"type": "dns", "name": name, "nameserver": f"127.0.0.1:{port}", **fields})


async def test_a_record(dns_port: int) -> None:
    result = await dns.check(spec(dns_port, "up.test", expected=["192.0.2.11"]))
    assert (result.outcome, result.reason) == (Outcome.UP, "up.test A is 192.0.2.10, 192.0.2.11")
    assert result.details["values"] == ["192.0.2.10", "192.0.2.11"]
    assert result.monitor_id == "dns:up.test/A"


async def test_expected_value_missing(dns_port: int) -> None:
    result = await dns.check(spec(dns_port, "up.test", expected=["192.0.2.10", "192.0.2.99"]))
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "up.test A is 192.0.2.10, 192.0.2.11, expected 192.0.2.99",
    )


@pytest.mark.parametrize(
    ("name", "kind", "expected", "shown"),
    [
        ("alias.test", "CNAME", ["up.test."], "up.test"),
        ("mail.test", "mx", ["mx2.test", "10 mx1.test"], "10 mx1.test, 20 mx2.test"),
        ("txt.test", "TXT", ["v=spf1 -all"], "v=spf1 -all"),
    ],
)
async def test_other_types(dns_port: int, name: str, kind: str, expected: list[str], shown: str) -> None:
    result = await dns.check(spec(dns_port, name, record_type=kind, expected=expected))
    assert (result.outcome, result.reason) == (Outcome.UP, f"{name} {kind.upper()} is {shown}")


async def test_nxdomain(dns_port: int) -> None:
    result = await dns.check(spec(dns_port, "gone.test"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "DNS error: NXDOMAIN for gone.test")


async def test_no_record_of_that_type(dns_port: int) -> None:
    result = await dns.check(spec(dns_port, "up.test", record_type="AAAA"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "DNS error: no AAAA record for up.test")


async def test_servfail(dns_port: int) -> None:
    result = await dns.check(spec(dns_port, "servfail.test"))
    assert result.outcome is Outcome.DOWN
    assert result.reason.startswith("DNS error: no nameserver answered for servfail.test: ")
    assert result.reason.endswith(f"127.0.0.1@{dns_port}: SERVFAIL")


async def test_no_answer_times_out(dns_port: int) -> None:
    result = await dns.check(spec(dns_port, "drop.test", timeout="300ms"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 300 ms waiting for 127.0.0.1")
