from __future__ import annotations

import ssl
from typing import Any

import pytest

from tests.monitors.servers import closed_port
from vigil.monitors import tls
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import TlsMonitorSpec

pytestmark = pytest.mark.anyio


def spec(port: int, **fields: Any) -> TlsMonitorSpec:
    return TlsMonitorSpec.model_validate({"type": "tls", "host": "localhost", "port": port, **fields})


async def test_valid(tls_ports: dict[str, int], trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(tls_ports["valid"]), context=trust)
    assert result.outcome is Outcome.UP
    assert result.reason.startswith("certificate valid for ")
    assert result.reason.endswith("(CN=localhost, issuer Vigil Test CA)")
    assert result.details["names"] == ["localhost", "127.0.0.1"]
    assert result.details["days_left"] > 14


async def test_valid_by_ip(tls_ports: dict[str, int], trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(tls_ports["valid"], host="127.0.0.1"), context=trust)
    assert result.outcome is Outcome.UP


async def test_expiring_soon_is_degraded(tls_ports: dict[str, int], trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(tls_ports["expiring"]), context=trust)
    assert (result.outcome, result.reason) == (
        Outcome.DEGRADED,
        "certificate expires in 3 days (CN=localhost, issuer Vigil Test CA)",
    )
    assert (await tls.check(spec(tls_ports["expiring"], degraded_days=2), context=trust)).outcome is Outcome.UP


async def test_expired(tls_ports: dict[str, int], trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(tls_ports["expired"]), context=trust)
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "certificate expired 2 days ago (CN=localhost, issuer Vigil Test CA)",
    )
    assert result.details["days_left"] < -2


async def test_hostname_mismatch(tls_ports: dict[str, int], trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(tls_ports["mismatch"]), context=trust)
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "hostname mismatch: certificate is not valid for 'localhost' (CN=other.test, issuer Vigil Test CA)",
    )
    good_name = await tls.check(spec(tls_ports["mismatch"], server_name="other.test"), context=trust)
    assert good_name.outcome is Outcome.UP


async def test_untrusted_issuer(tls_ports: dict[str, int]) -> None:
    result = await tls.check(spec(tls_ports["valid"]))  # the system trust store does not know the test CA
    assert result.outcome is Outcome.DOWN
    assert result.reason.startswith("invalid certificate: ")
    assert result.reason.endswith("(CN=localhost, issuer Vigil Test CA)")


async def test_refused(trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(closed_port()), context=trust)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "connection refused")


async def test_not_tls(silent_port: int, trust: ssl.SSLContext) -> None:
    result = await tls.check(spec(silent_port, timeout="300ms"), context=trust)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 300 ms during the TLS handshake")
