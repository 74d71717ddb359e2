"""Acknowledging by the signed link of a message, through a real server on SQLite and PostgreSQL: GET shows a
form and changes nothing, POST acknowledges (who and when in the timeline), tampered and expired links are
refused and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine

from vigil.config import get_settings
from vigil.db import session_scope
from vigil.incidents.models import EventType
from vigil.incidents.service import get_incident, open_incident
from vigil.notify.escalation import make_ack_token

pytest_plugins = ["tests.dbfixtures"]

KEY = "ack-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("VIGIL_SECRET_KEY", KEY)
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "production")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def new_incident(engine: Engine) -> int:
    with session_scope(engine) as session:
        return open_incident(session=session, title="web down", components=["web"], auto=True).id


def acks(engine: Engine, incident_id: int) -> tuple[datetime | None, list[str]]:
    with session_scope(engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
        events = [u.body for u in incident.updates if u.event_type is EventType.ACKNOWLEDGED]
        return incident.acknowledged_at, events


def link(base_url: str, incident_id: int, *, expires_in: timedelta = timedelta(hours=1)) -> str:
    return f"{base_url}/ack/{make_ack_token(KEY, incident_id, datetime.now(UTC) + expires_in)}"


def test_get_shows_a_form_and_post_acknowledges(base_url: str, engine: Engine) -> None:
    incident_id = new_incident(engine)
    url = link(base_url, incident_id)
    page = httpx.get(url)
    assert page.status_code == 200
    assert '<form method="post"' in page.text and "web down" in page.text and "<script" not in page.text
    assert acks(engine, incident_id) == (None, [])  # a link previewer fetching it acknowledges nothing
    before = datetime.now(UTC)
    done = httpx.post(url, data={"name": "Alice"})
    assert done.status_code == 200 and "acknowledged" in done.text
    acknowledged_at, events = acks(engine, incident_id)
    assert acknowledged_at is not None and acknowledged_at >= before - timedelta(seconds=1)
    assert events == ["Acknowledged by Alice (ack link)."]


def test_tampered_and_expired_links_are_refused_and_change_nothing(base_url: str, engine: Engine) -> None:
    incident_id = new_incident(engine)
    other = new_incident(engine)
    good = link(base_url, incident_id)
    ident, expiry, signature = good.rsplit("/", 1)[1].split(".")
    tampered = [
        f"{base_url}/ack/{other}.{expiry}.{signature}",  # another incident
        f"{base_url}/ack/{ident}.{int(expiry) + 86400}.{signature}",  # a later expiry
        f"{base_url}/ack/{ident}.{expiry}.{signature[:-2]}xx",
        f"{base_url}/ack/garbage",
    ]
    for url in tampered:
        for method in ("GET", "POST"):
            response = httpx.request(method, url)
            assert response.status_code == 400, (method, url)
            assert "refused" in response.text
    expired = link(base_url, incident_id, expires_in=timedelta(seconds=-1))
    for method in ("GET", "POST"):
        response = httpx.request(method, expired)
        assert response.status_code == 410 and "expired" in response.text
    assert acks(engine, incident_id) == (None, [])
    assert acks(engine, other) == (None, [])
