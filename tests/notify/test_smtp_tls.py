"""SMTP over TLS against a real local server (aiosmtpd) with a certificate from a test CA (trustme): implicit TLS
(SMTPS) delivers when the CA is trusted and refuses an unknown one; a channel asking for both kinds is an issue."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from tests.conftest import model_from
from tests.notify.receivers import Mailbox, free_port
from vigil.notify.config import SmtpChannel, notifications_of
from vigil.notify.transports import TransportError, send

pytestmark = pytest.mark.anyio

PAYLOAD = {
    "version": 1,
    "change": "opened",
    "previous_status": None,
    "at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat(),
    "incident": {"id": 1, "title": "db down", "status": "investigating", "impact": "major", "components": []},
}


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtps(ca: trustme.CA) -> Iterator[tuple[Mailbox, int]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def channel(port: int) -> SmtpChannel:
    return SmtpChannel.model_validate(
        {"id": "m", "type": "smtp", "host": "127.0.0.1", "port": port, "from": "v@example.org", "to": ["o@example.org"]}
        | {"tls": True, "timeout": 5}
    )


async def test_implicit_tls_delivers_to_a_server_whose_ca_is_trusted(
    smtps: tuple[Mailbox, int], ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox, port = smtps
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # what ssl.create_default_context() trusts
    await send(channel(port), PAYLOAD, 1)
    (message,) = mailbox.messages
    assert message["Subject"] == "[Vigil] Incident #1 opened: db down"


async def test_an_unknown_certificate_is_refused_and_nothing_is_sent(
    smtps: tuple[Mailbox, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox, port = smtps
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    with pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await send(channel(port), PAYLOAD, 1)
    assert mailbox.messages == []


def test_tls_means_port_465_and_excludes_starttls() -> None:
    text = (
        "components: [{id: db, kind: database}]\nnotifications:\n  channels:\n"
        "    - {id: a, type: smtp, host: mx.example.org, from: v@example.org, to: [o@example.org], tls: true}\n"
        "    - {id: b, type: smtp, host: mx.example.org, from: v@example.org, to: [o@example.org], tls: true,"
        " starttls: true}\n"
        "  routes: []\n"
    )
    config = notifications_of(model_from(text))
    a = config.channels["a"]
    assert isinstance(a, SmtpChannel) and a.port == 465
    assert "b" not in config.channels
    assert [i.path for i in config.issues] == ["notifications.channels[1]"]
    assert "exclude each other" in config.issues[0].message
