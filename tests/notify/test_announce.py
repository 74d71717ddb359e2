"""Changes people make are told (vigil/notify/announce.py), on SQLite and PostgreSQL: an incident opened by hand,
an update (with its message) and an acknowledgement reach the routed channels through real local receivers;
updates reach the affected components' subscribers; each change is told once; stale ones are not sent; a change
made by ``vigil incident`` in another process is told by the server's dispatcher."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.conftest import model_from
from tests.notify.receivers import http_receiver, smtp_server
from vigil.db import make_engine, session_scope, upgrade
from vigil.incidents.models import IncidentStatus, IncidentUpdate
from vigil.incidents.service import acknowledge_incident, open_incident, post_update, resolve_incident
from vigil.monitors.models import Component
from vigil.notify import subscribers as subs
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.models import ChangeKind, Delivery, DeliveryStatus, SubscriberKind
from vigil.notify.transports import render

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-s3cret-s3cret"
KEY = "test-key-test-key-test-key"


def dispatcher(engine: Engine, channels: str, now: list[datetime]) -> Dispatcher:
    d = Dispatcher(engine, clock=lambda: now[0], public_url="https://status.example")
    text = (
        "components:\n  - {id: db, kind: database, owner: dba, tier: critical}\n  - {id: web, kind: service}\n"
        f"notifications:\n  channels:\n{channels}  routes:\n    - {{channels: [hook]}}\n"
    )
    assert d.configure(model_from(text)).issues == []
    return d


def hook(url: str) -> str:
    return f"    - {{id: hook, type: webhook, url: '{url}', secret: {SECRET}, timeout: 5}}\n"


def components(engine: Engine) -> None:
    with session_scope(engine) as session:
        for cid in ("db", "web"):
            if session.get(Component, cid) is None:
                session.add(Component(id=cid, name=cid, kind="service"))


def subscriber(engine: Engine, address: str, on: list[str]) -> int:
    with session_scope(engine) as session:
        s = subs.subscribe(
            session=session,
            key=KEY,
            kind=SubscriberKind.WEBHOOK,
            address=address,
            components=on,
            known_components=("db", "web"),
            now=T0,
            secret="w" * 20,
        )
        subs.approve(session=session, subscriber_id=s.id, now=T0)
        return s.id


def queued(engine: Engine) -> list[tuple[str, str, int | None]]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(Delivery.channel_id, Delivery.change, Delivery.subscriber_id).order_by(Delivery.id)
        )
        return [(r[0], r[1].value, r[2]) for r in rows]


def marks(engine: Engine) -> int:
    with session_scope(engine) as session:
        return len(list(session.scalars(select(IncidentUpdate.id).where(IncidentUpdate.notice.is_not(None)))))


async def test_a_person_s_incident_update_and_ack_reach_the_channel_once_each(engine: Engine) -> None:
    now = [T0]
    components(engine)
    async with http_receiver() as receiver:
        d = dispatcher(engine, hook(receiver.url()), now)
        with session_scope(engine) as session:
            incident = open_incident(session=session, title="Disk full on db", components=["db"], now=T0)
            incident_id = incident.id
        assert marks(engine) == 1
        assert d.announce() == 1
        assert d.announce() == 0  # told once: the mark went with the deliveries
        assert marks(engine) == 0
        with session_scope(engine) as session:
            acknowledge_incident(session=session, incident_id=incident_id, author="alice", now=T0)
            post_update(
                session=session,
                incident_id=incident_id,
                body="We found it: **the disk** filled up.",
                status=IncidentStatus.IDENTIFIED,
                author="alice",
                now=T0,
            )
        assert d.announce() == 2
        assert await d.run_once() == 3
        documents = [r.json() for r in receiver.requests]
    assert [doc["change"] for doc in documents] == ["opened", "acknowledged", "update"]
    opened, acked, update = documents
    assert opened["incident"]["title"] == "Disk full on db" and "ack_url" not in opened  # no secret key: no links
    assert acked["acknowledged_by"] == "alice"
    assert update["update"]["body"] == "We found it: **the disk** filled up."
    assert update["update"]["status"] == "identified" and update["update"]["author"] == "alice"
    assert update["previous_status"] == "investigating" and update["incident"]["status"] == "identified"
    statuses = {row.id: row.status for row in _deliveries(engine)}
    assert set(statuses.values()) == {DeliveryStatus.SENT}


def _deliveries(engine: Engine) -> list[Delivery]:
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Delivery)))
        session.expunge_all()
        return rows


async def test_the_message_of_an_update_quotes_it_first_by_e_mail(engine: Engine) -> None:
    now = [T0]
    components(engine)
    with smtp_server() as (mailbox, port):
        channels = (
            f"    - {{id: hook, type: smtp, host: 127.0.0.1, port: {port}, from: vigil@example.org,"
            " to: [ops@example.org], timeout: 5}\n"
        )
        d = dispatcher(engine, channels, now)
        with session_scope(engine) as session:
            incident_id = open_incident(session=session, title="db slow", components=["db"], now=T0).id
            resolve_incident(session=session, incident_id=incident_id, body="Fixed by a restart.", author="bob", now=T0)
        assert d.announce() == 2
        assert await d.run_once() == 2
    subjects = sorted(m["Subject"] for m in mailbox.messages)
    assert subjects == [
        f"[Vigil] Incident #{incident_id} opened: db slow",
        f"[Vigil] Incident #{incident_id} update (resolved): db slow",
    ]
    (resolved,) = [m for m in mailbox.messages if "update" in m["Subject"]]
    text = resolved.get_payload(decode=True).decode().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert text.startswith("Fixed by a restart. (bob)\n")
    assert "Status: resolved (was investigating)" in text


async def test_subscribers_hear_updates_of_their_components_but_not_acknowledgements(engine: Engine) -> None:
    now = [T0]
    components(engine)
    d = dispatcher(engine, hook("http://127.0.0.1:9/unused"), now)
    on_db = subscriber(engine, "https://hooks.example/db", ["db"])
    subscriber(engine, "https://hooks.example/web", ["web"])
    with session_scope(engine) as session:
        incident_id = open_incident(session=session, title="db down", components=["db"], now=T0).id
        acknowledge_incident(session=session, incident_id=incident_id, author="alice", now=T0)
        post_update(session=session, incident_id=incident_id, body="Restoring from backup.", now=T0)
    with session_scope(engine) as session:  # the approvals' own messages are not what this test is about
        session.query(Delivery).filter(Delivery.change == ChangeKind.CONFIRM).delete()
    assert d.announce() == 3
    rows = queued(engine)
    assert ("subscriber", "opened", on_db) in rows and ("subscriber", "update", on_db) in rows
    assert [r for r in rows if r[0] == "subscriber"] == [
        ("subscriber", "opened", on_db),
        ("subscriber", "update", on_db),
    ]
    assert [r[1] for r in rows if r[0] == "hook"] == ["opened", "acknowledged", "update"]


async def test_changes_older_than_a_day_when_first_seen_are_not_sent(engine: Engine) -> None:
    now = [T0 + timedelta(days=2)]
    components(engine)
    d = dispatcher(engine, hook("http://127.0.0.1:9/unused"), now)
    with session_scope(engine) as session:
        incident_id = open_incident(session=session, title="old", components=["db"], now=T0).id
        post_update(session=session, incident_id=incident_id, body="fresh", now=now[0])
    assert d.announce() == 2
    assert queued(engine) == [("hook", "update", None)]
    assert marks(engine) == 0


def test_an_engine_status_change_still_reads_as_before() -> None:
    # The rendering of the engine's own changes is unchanged by people's updates (no "update" key, no quote).
    payload = {
        "change": "status",
        "previous_status": "investigating",
        "at": T0.isoformat(),
        "incident": {"id": 7, "title": "t", "status": "monitoring", "impact": "minor", "components": []},
    }
    subject, text = render(payload)
    assert subject == "[Vigil] Incident #7 monitoring: t"
    assert text.startswith("Incident #7: t\nStatus: monitoring (was investigating)\n")


async def test_an_update_from_the_command_line_is_told_by_the_server(tmp_path: Path) -> None:
    # `vigil incident` in another process has no channels: it marks the change; the server's dispatcher tells it.
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    engine = make_engine(url)
    upgrade(engine)
    components(engine)
    env = {**os.environ, "VIGIL_DATABASE_URL": url, "VIGIL_ENVIRONMENT": "development"}
    for args in (["open", "--title", "web 500s", "--component", "web"], ["update", "1", "--message", "Rolling back"]):
        done = subprocess.run(
            [sys.executable, "-m", "vigil.cli", "incident", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    now = [datetime.now(UTC)]
    async with http_receiver() as receiver:
        d = dispatcher(engine, hook(receiver.url()), now)
        assert d.announce() == 2
        assert await d.run_once() == 2
        bodies = [(r.json()["change"], r.json().get("update", {}).get("body")) for r in receiver.requests]
    engine.dispose()
    assert sorted(bodies) == [("opened", "Incident opened: web 500s"), ("update", "Rolling back")]
