from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trustme

from tests.monitors import servers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def http_base() -> Iterator[str]:
    with servers.http_server() as base:
        yield base


@pytest.fixture(scope="session")
def line_port() -> Iterator[int]:
    with servers.line_server() as port:
        yield port


@pytest.fixture(scope="session")
def silent_port() -> Iterator[int]:
    with servers.silent_listener() as port:
        yield port


@pytest.fixture
def quiet_port() -> Iterator[int]:
    """A port that accepts connections (into its backlog) and never answers, for this test alone.

    Not the session's ``silent_port``: connections left in its backlog would fill it for the tests after.
    """
    with servers.silent_listener() as port:
        yield port


@pytest.fixture(scope="session")
def dns_port() -> Iterator[int]:
    with servers.dns_server() as port:
        yield port


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Vigil Test CA")


@pytest.fixture(scope="session")
def trust(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts only the test CA, with host name checking on."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _server_context(ca: trustme.CA, *names: str, **dates: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names, common_name=names[0], **dates).configure_cert(context)
    return context


@pytest.fixture(scope="session")
def https_base(ca: trustme.CA) -> Iterator[str]:
    with servers.http_server(tls=_server_context(ca, "localhost")) as base:
        yield base


@pytest.fixture(scope="session")
def tls_ports(ca: trustme.CA) -> Iterator[dict[str, int]]:
    """Ports of TLS servers with a valid, an expiring (3 days), an expired and a wrong-name certificate."""
    now = datetime.now(UTC)
    contexts = {
        "valid": _server_context(ca, "localhost", "127.0.0.1"),
        "expiring": _server_context(ca, "localhost", not_after=now + timedelta(days=3, hours=1)),
        "expired": _server_context(
            ca, "localhost", not_before=now - timedelta(days=30), not_after=now - timedelta(days=2, hours=1)
        ),
        "mismatch": _server_context(ca, "other.test"),
    }
    with (
        servers.tls_server(contexts["valid"]) as valid,
        servers.tls_server(contexts["expiring"]) as expiring,
        servers.tls_server(contexts["expired"]) as expired,
        servers.tls_server(contexts["mismatch"]) as mismatch,
    ):
        yield {"valid": valid, "expiring": expiring, "expired": expired, "mismatch": mismatch}
