"""Subscribers on SQLite and PostgreSQL: double opt-in through a real local SMTP server, unsubscribe links,
fan-out to the affected components only, maintenance announcements, signed webhooks, tampered tokens, and the
bulk fan-out of 10,000 subscribers in one statement."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select

from tests.conftest import model_from
from tests.notify.receivers import http_receiver, smtp_server
from vigil.db import session_scope
from vigil.incidents.models import ComponentStatus, Impact
from vigil.incidents.service import get_incident, open_incident
from vigil.maintenance.service import cancel_maintenance, schedule_maintenance, start_maintenance
from vigil.monitors.models import Component
from vigil.notify import subscribers as subs
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.models import ChangeKind, Delivery, DeliveryStatus, Subscriber, SubscriberKind, SubscriberStatus
from vigil.notify.transports import render_subscriber

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "test-key-test-key-test-key"
COMPONENTS = ("db", "web", "cdn")


def dispatcher(engine: Engine, smtp_port: int = 1) -> Dispatcher:
    d = Dispatcher(engine, clock=lambda: T0, public_url="https://status.example")
    text = (
        "components:\n  - {id: db, kind: database}\n  - {id: web, kind: service}\n  - {id: cdn, kind: service}\n"
        "notifications:\n  channels:\n"
        f"    - {{id: subscribers, type: smtp, host: 127.0.0.1, port: {smtp_port}, from: status@example.org,"
        " to: [unused@example.org], timeout: 5}\n"
        "  routes: []\n"
    )
    assert d.configure(model_from(text)).issues == []
    return d


def add(engine: Engine, address: str, components: list[str] | None, *, confirm: bool = True) -> int:
    with session_scope(engine) as session:
        kind = SubscriberKind.EMAIL if "@" in address else SubscriberKind.WEBHOOK
        secret = "w" * 20 if kind is SubscriberKind.WEBHOOK else None
        s = subs.subscribe(
            session=session,
            key=KEY,
            kind=kind,
            address=address,
            components=components,
            known_components=COMPONENTS,
            now=T0,
            secret=secret,
        )
        if confirm:
            subs.approve(session=session, subscriber_id=s.id, now=T0)
            session.query(Delivery).filter(Delivery.subscriber_id == s.id).delete()  # the confirmation request
        return s.id


def open_on(engine: Engine, d: Dispatcher, component: str) -> int:
    with session_scope(engine) as session:
        for cid in COMPONENTS:
            if session.get(Component, cid) is None:
                session.add(Component(id=cid, name=cid, kind="service"))
        session.flush()
        incident = open_incident(
            session=session,
            title=f"{component} down",
            impact=Impact.MAJOR,
            components={component: ComponentStatus.MAJOR_OUTAGE},
            now=T0,
        )
        d.enqueue(session, get_incident(session=session, incident_id=incident.id), None, T0)
        return incident.id


def subscriber_rows(engine: Engine) -> list[tuple[int | None, str]]:
    with session_scope(engine) as session:
        rows = session.execute(select(Delivery.subscriber_id, Delivery.change).order_by(Delivery.id))
        return [(r[0], r[1].value) for r in rows]


async def test_double_opt_in_mail_arrives_and_only_confirming_confirms(engine: Engine) -> None:
    with smtp_server() as (mailbox, port):
        d = dispatcher(engine, port)
        sid = add(engine, "ann@example.org", ["db"], confirm=False)
        assert await d.run_once() == 1
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert mailbox.recipients == [["ann@example.org"]]
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    with session_scope(engine) as session:
        row = session.get_one(Subscriber, sid)
        assert row.status is SubscriberStatus.PENDING
        confirm_token, unsubscribe_token = row.confirm_token, row.unsubscribe_token
    assert f"https://status.example/subscribe/confirm/{confirm_token}" in body
    assert f"https://status.example/subscribe/unsubscribe/{unsubscribe_token}" in body
    assert message["List-Unsubscribe"] is not None
    # A pending subscriber is told nothing about incidents.
    open_on(engine, d, "db")
    assert subscriber_rows(engine) == [(sid, "confirm")]
    with session_scope(engine) as session:
        assert subs.confirm(session=session, key=KEY, token=confirm_token, now=T0) is not None
        assert session.get_one(Subscriber, sid).status is SubscriberStatus.CONFIRMED


async def test_tampered_tokens_are_refused_and_change_nothing(engine: Engine) -> None:
    sid = add(engine, "bob@example.org", ["db"], confirm=False)
    with session_scope(engine) as session:
        row = session.get_one(Subscriber, sid)
        good_confirm, good_unsub = row.confirm_token, row.unsubscribe_token
    nonce, _, signature = good_confirm.partition(".")
    forged = [
        f"{nonce}.{'0' * len(signature)}",
        f"{nonce[:-1]}A.{signature}",
        nonce,
        "",
        good_unsub,  # an unsubscribe token is not a confirmation token
        subs.make_token("another-key-another-key", subs.CONFIRM),  # signed by someone else
        subs.make_token(KEY, subs.CONFIRM),  # valid signature, but not any subscriber's
    ]
    with session_scope(engine) as session:
        for token in forged:
            assert subs.confirm(session=session, key=KEY, token=token, now=T0) is None
            assert subs.unsubscribe(session=session, key=KEY, token=token.replace(good_unsub, "x")) is None
        assert subs.unsubscribe(session=session, key=KEY, token=good_confirm) is None
    with session_scope(engine) as session:
        assert session.get_one(Subscriber, sid).status is SubscriberStatus.PENDING


async def test_unsubscribe_link_stops_messages(engine: Engine) -> None:
    d = dispatcher(engine)
    sid = add(engine, "cat@example.org", ["db"])
    with session_scope(engine) as session:
        token = session.get_one(Subscriber, sid).unsubscribe_token
        assert subs.unsubscribe(session=session, key=KEY, token=token) is not None
    open_on(engine, d, "db")
    assert subscriber_rows(engine) == []
    with session_scope(engine) as session:  # an old confirmation link does not bring them back
        row = session.get_one(Subscriber, sid)
        assert row.status is SubscriberStatus.UNSUBSCRIBED
        assert subs.confirm(session=session, key=KEY, token=row.confirm_token, now=T0) is None


async def test_only_subscribers_of_affected_components_are_told(engine: Engine) -> None:
    d = dispatcher(engine)
    on_db = add(engine, "db@example.org", ["db"])
    on_web = add(engine, "web@example.org", ["web", "cdn"])
    on_all = add(engine, "all@example.org", None)
    open_on(engine, d, "db")
    assert sorted(subscriber_rows(engine)) == sorted([(on_db, "opened"), (on_all, "opened")])
    assert on_web not in [s for s, _ in subscriber_rows(engine)]


async def test_maintenance_is_announced_to_its_components_subscribers(engine: Engine) -> None:
    on_web = add(engine, "web@example.org", ["web"])
    add(engine, "db@example.org", ["db"])
    model = model_from("components:\n  - {id: db, kind: database}\n  - {id: web, kind: service}\n")
    with session_scope(engine) as session:
        window = schedule_maintenance(
            session=session,
            model=model,
            title="Upgrade",
            starts_at=T0 + timedelta(hours=1),
            ends_at=T0 + timedelta(hours=2),
            components=["web"],
            now=T0,
        )
        start_maintenance(session=session, maintenance_id=window.id, now=T0 + timedelta(hours=1))
        cancel_maintenance(session=session, maintenance_id=window.id, now=T0 + timedelta(hours=1, minutes=5))
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        assert [(r.subscriber_id, r.payload["maintenance"]["status"]) for r in rows] == [
            (on_web, "scheduled"),
            (on_web, "in_progress"),
            (on_web, "cancelled"),  # told it is off, as they were told it started
        ]
        assert all(r.incident_id is None for r in rows)
    subject, _ = render_subscriber(rows[-1].payload, confirm_url="-", unsubscribe_url="https://u")
    assert subject == "[Vigil] Maintenance cancelled: Upgrade"


async def test_webhook_subscriber_gets_a_signed_post(engine: Engine) -> None:
    async with http_receiver() as receiver:
        d = dispatcher(engine)
        sid = add(engine, receiver.url("/status"), ["db"])
        open_on(engine, d, "db")
        assert await d.run_once() == 1
    [request] = receiver.requests
    timestamp = request.headers["X-Vigil-Timestamp"]
    expected = hmac.new(b"w" * 20, f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Vigil-Signature"] == f"sha256={expected}"
    document: dict[str, Any] = request.json()
    assert document["incident"]["components"][0]["id"] == "db"
    assert "/subscribe/unsubscribe/" in document["unsubscribe_url"]
    with session_scope(engine) as session:
        [row] = session.scalars(select(Delivery).where(Delivery.subscriber_id == sid))
        assert row.status is DeliveryStatus.SENT


@pytest.mark.parametrize(
    ("kind", "address", "components", "field"),
    [
        (SubscriberKind.EMAIL, "not-an-address", ["db"], "address"),
        (SubscriberKind.EMAIL, "a@b.c\r\nBcc: x@y.z", ["db"], "address"),
        (SubscriberKind.EMAIL, "ann@example.org", ["nope"], "components"),
        (SubscriberKind.EMAIL, "ann@example.org", [], "components"),
        (SubscriberKind.WEBHOOK, "ftp://example.org", ["db"], "url"),
    ],
)
async def test_bad_input_names_the_field(
    engine: Engine, kind: SubscriberKind, address: str, components: list[str], field: str
) -> None:
    with session_scope(engine) as session, pytest.raises(subs.InvalidSubscriberError) as caught:
        subs.subscribe(
            session=session,
            key=KEY,
            kind=kind,
            address=address,
            components=components,
            known_components=COMPONENTS,
            now=T0,
        )
    assert caught.value.field == field
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


async def test_fan_out_to_10000_subscribers_is_one_statement(engine: Engine) -> None:
    with session_scope(engine) as session:
        rows = [
            {
                "kind": SubscriberKind.EMAIL,
                "address": f"s{i}@example.org",
                "status": SubscriberStatus.CONFIRMED,
                "all_components": i % 2 == 0,
                "confirm_token": f"c{i}",
                "unsubscribe_token": f"u{i}",
                "created_at": T0,
            }
            for i in range(20_000)
        ]
        session.execute(insert(Subscriber), rows)
        ids = list(session.scalars(select(Subscriber.id).where(Subscriber.all_components.is_(False))))
        from vigil.notify.models import SubscriberComponent

        # Half subscribe to everything; of the rest, half to "db" (5,000) and half to "web" (told nothing).
        session.execute(
            insert(SubscriberComponent),
            [{"subscriber_id": sid, "component_id": "db" if n % 2 == 0 else "web"} for n, sid in enumerate(ids)],
        )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    with session_scope(engine) as session:
        event.listen(engine, "before_cursor_execute", count)
        try:
            queued = subs.fan_out(
                session=session, components=["db"], change=ChangeKind.OPENED, payload={"x": 1}, now=T0
            )
        finally:
            event.remove(engine, "before_cursor_execute", count)
    assert queued in (15_000, -1)  # -1: the driver does not count the rows of INSERT ... SELECT
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) == 1
    assert len(statements) <= 2
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 15_000
