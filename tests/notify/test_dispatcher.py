"""Deliveries end to end on SQLite and PostgreSQL, with real receivers on 127.0.0.1: a local SMTP server, a
local HTTP server checking the webhook's HMAC, Apprise's json:// pointed at it; retries on a fake clock."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from tests.conftest import model_from
from tests.notify.receivers import free_port, http_receiver, smtp_server
from tests.waiting import until
from vigil.db import session_scope
from vigil.incidents.models import ComponentStatus, EventType, IncidentStatus
from vigil.incidents.service import get_incident, open_incident, post_update
from vigil.incidents.worker import ensure_cursor, process_outbox
from vigil.model.types import Tier
from vigil.monitors.models import Component, ComponentState
from vigil.monitors.store import record_state_change
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.models import Delivery, DeliveryStatus

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-s3cret-s3cret"


def config(channels: str, routes: str = "    - {channels: [CHANNELS]}\n", ids: str = "") -> str:
    return (
        "components:\n"
        "  - {id: db, kind: database, owner: dba, tier: critical}\n"
        "  - {id: web, kind: service, owner: web-team}\n"
        f"notifications:\n  channels:\n{channels}  routes:\n{routes.replace('CHANNELS', ids)}"
    )


def webhook(channel_id: str, url: str) -> str:
    return f"    - {{id: {channel_id}, type: webhook, url: '{url}', secret: {SECRET}, timeout: 5}}\n"


def dispatcher(engine: Engine, text: str, now: list[datetime], **kwargs: float) -> Dispatcher:
    d = Dispatcher(engine, clock=lambda: now[0], **kwargs)  # type: ignore[arg-type]
    config = d.configure(model_from(text))
    assert config.issues == []
    return d


def open_db_incident(engine: Engine, d: Dispatcher, component: str = "db") -> int:
    with session_scope(engine) as session:
        for cid, tier in (("db", Tier.CRITICAL), ("web", Tier.STANDARD)):
            if session.get(Component, cid) is None:
                session.add(Component(id=cid, name=cid, kind="service", tier=tier))
        session.flush()
        incident = open_incident(
            session=session,
            title=f"{component} down",
            components={component: ComponentStatus.MAJOR_OUTAGE},
            auto=True,
            probable_cause=component,
            now=T0,
        )
        d.enqueue(session, incident, None, T0)
        return incident.id


def deliveries(engine: Engine) -> dict[str, Delivery]:
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
        session.expunge_all()
        return {row.channel_id: row for row in rows}


def notification_events(engine: Engine, incident_id: int) -> list[str]:
    with session_scope(engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
        return [u.body for u in incident.updates if u.event_type is EventType.NOTIFICATION]


async def test_smtp_and_signed_webhook_receive_the_real_message(engine: Engine) -> None:
    now = [T0]
    with smtp_server() as (mailbox, port):
        async with http_receiver() as receiver:
            channels = webhook("hook", receiver.url()) + (
                f"    - {{id: mail, type: smtp, host: 127.0.0.1, port: {port}, from: vigil@example.org,"
                " to: [ops@example.org]}\n"
            )
            d = dispatcher(engine, config(channels, ids="hook, mail"), now)
            incident_id = open_db_incident(engine, d)
            before = int(time.time())
            assert await d.run_once() == 2
    (message,) = mailbox.messages
    assert mailbox.recipients == [["ops@example.org"]]
    assert message["Subject"] == f"[Vigil] Incident #{incident_id} opened: db down"
    text = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "Status: investigating" in text and "- db: major_outage" in text and "Impact: critical" in text
    (request,) = receiver.requests
    timestamp = request.headers["X-Vigil-Timestamp"]
    assert abs(int(timestamp) - before) <= 5
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Vigil-Signature"], f"sha256={expected}")
    # A changed timestamp does not verify: it is part of the signed content.
    forged = hmac.new(SECRET.encode(), f"{int(timestamp) + 1}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Vigil-Signature"] != f"sha256={forged}"
    document = request.json()
    assert document["change"] == "opened"
    assert document["incident"]["components"] == [{"id": "db", "status": "major_outage"}]
    rows = deliveries(engine)
    assert {c: (r.status, r.attempts) for c, r in rows.items()} == {
        "hook": (DeliveryStatus.SENT, 1),
        "mail": (DeliveryStatus.SENT, 1),
    }
    assert sorted(notification_events(engine, incident_id)) == [
        "Notification sent to hook (attempt 1).",
        "Notification sent to mail (attempt 1).",
    ]


async def test_failing_channels_are_retried_with_backoff_then_given_up_without_blocking_the_others(
    engine: Engine,
) -> None:
    now = [T0]
    async with http_receiver() as good, http_receiver() as broken:
        broken.status = 500
        channels = webhook("good", good.url()) + webhook("refused", f"http://127.0.0.1:{free_port()}/h")
        channels += webhook("broken", broken.url())
        text = config(channels, ids="good, refused, broken")
        d = dispatcher(engine, text, now, max_attempts=3, backoff_base=30, backoff_cap=60)
        incident_id = open_db_incident(engine, d)
        assert await d.run_once() == 3
        rows = deliveries(engine)
        assert rows["good"].status is DeliveryStatus.SENT and len(good.requests) == 1
        for name in ("refused", "broken"):
            assert (rows[name].status, rows[name].attempts) == (DeliveryStatus.PENDING, 1)
            assert rows[name].next_attempt_at == T0 + timedelta(seconds=30)
        assert rows["broken"].last_error == "HTTP 500"
        now[0] = T0 + timedelta(seconds=29)
        assert await d.run_once() == 0  # not due yet
        now[0] = T0 + timedelta(seconds=30)
        assert await d.run_once() == 2
        assert deliveries(engine)["broken"].next_attempt_at == now[0] + timedelta(seconds=60)  # doubled
        now[0] += timedelta(seconds=60)
        assert await d.run_once() == 2
        now[0] += timedelta(hours=5)
        assert await d.run_once() == 0  # given up: nothing more is tried
    rows = deliveries(engine)
    assert {c: (r.status, r.attempts) for c, r in rows.items()} == {
        "good": (DeliveryStatus.SENT, 1),
        "refused": (DeliveryStatus.FAILED, 3),
        "broken": (DeliveryStatus.FAILED, 3),
    }
    assert len(broken.requests) == 3 and len(good.requests) == 1
    events = notification_events(engine, incident_id)
    assert len(events) == 7  # every attempt
    assert "Notification to broken failed (attempt 3), given up: HTTP 500" in events


async def test_pending_deliveries_survive_a_restart_and_are_sent(engine: Engine) -> None:
    now = [T0]
    async with http_receiver() as receiver:
        text = config(webhook("hook", receiver.url()), ids="hook")
        first = dispatcher(engine, text, now)
        open_db_incident(engine, first)
        await first.start()
        await first.stop()  # stopped before its first round: the delivery waits in the database
        assert deliveries(engine)["hook"].status is DeliveryStatus.PENDING
        second = dispatcher(engine, text, now)
        assert await second.run_once() == 1
    assert len(receiver.requests) == 1
    assert deliveries(engine)["hook"].status is DeliveryStatus.SENT


async def test_apprise_json_url_reaches_the_local_receiver(engine: Engine) -> None:
    now = [T0]
    async with http_receiver() as receiver:
        channels = f"    - {{id: chat, type: apprise, url: 'json://127.0.0.1:{receiver.port}/apprise'}}\n"
        d = dispatcher(engine, config(channels, ids="chat"), now)
        incident_id = open_db_incident(engine, d)
        assert await d.run_once() == 1
    (request,) = receiver.requests
    document = request.json()
    assert document["title"] == f"[Vigil] Incident #{incident_id} opened: db down"
    assert "- db: major_outage" in document["message"]
    assert deliveries(engine)["chat"].status is DeliveryStatus.SENT


async def test_routing_by_owner_component_and_minimum_impact(engine: Engine) -> None:
    now = [T0]
    channels = "".join(webhook(name, "http://127.0.0.1:9/x") for name in ("dba", "web", "major", "all"))
    routes = (
        "    - {channels: [dba], owners: [dba]}\n"
        "    - {channels: [web], components: [web]}\n"
        "    - {channels: [major], min_impact: critical}\n"
        "    - {channels: [all]}\n"
    )
    d = dispatcher(engine, config(channels, routes), now)
    db_incident = open_db_incident(engine, d, "db")  # critical tier in major outage: impact critical
    web_incident = open_db_incident(engine, d, "web")  # standard tier: impact major
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Delivery)))
        by_incident = {i: sorted(r.channel_id for r in rows if r.incident_id == i) for i in (db_incident, web_incident)}
    assert by_incident == {db_incident: ["all", "dba", "major"], web_incident: ["all", "web"]}
    # A follow-up goes to whoever was told, even when the impact no longer meets the route's minimum.
    with session_scope(engine) as session:
        post_update(session=session, incident_id=db_incident, body="fixed", status=IncidentStatus.RESOLVED, now=T0)
        incident = get_incident(session=session, incident_id=db_incident)
        incident.components[0].status = ComponentStatus.OPERATIONAL
        incident.impact = incident.impact.NONE
        d.enqueue(session, incident, IncidentStatus.INVESTIGATING, T0)
        later = sorted(
            r.channel_id
            for r in session.scalars(select(Delivery).where(Delivery.incident_id == db_incident))
            if r.change.value == "status"
        )
    assert later == ["all", "dba", "major"]


def test_the_incident_worker_queues_one_delivery_per_change_not_per_component(engine: Engine) -> None:
    now = [T0]
    text = config(webhook("hook", "http://127.0.0.1:9/x"), ids="hook").replace(
        "  - {id: web, kind: service, owner: web-team}",
        "  - {id: web, kind: service, owner: web-team, depends_on: [db]}",
    )
    model = model_from(text)
    d = dispatcher(engine, text, now)
    with session_scope(engine) as session:
        for comp in model.components.values():
            session.add(Component(id=comp.id, name=comp.id, kind=comp.kind, tier=comp.tier))
        session.flush()
        ensure_cursor(session=session)
    with session_scope(engine) as session:
        record_state_change(session=session, to_state=ComponentState.DOWN, at=T0, component_id="db")
        record_state_change(session=session, to_state=ComponentState.DOWN, at=T0, component_id="web", cause="db")
    with session_scope(engine) as session:
        assert process_outbox(session=session, model=model, now=T0, on_change=d.enqueue) == 2
    rows = deliveries(engine)
    assert list(rows) == ["hook"] and rows["hook"].payload["change"] == "opened"
    assert {c["id"] for c in rows["hook"].payload["incident"]["components"]} == {"db", "web"}


def test_a_message_lists_the_cause_and_the_worst_components_first_and_counts_the_rest() -> None:
    # A hypervisor under 2,000 VMs: a message listing every one was 445 KB, times 10,000 subscribers.
    from vigil.incidents.models import Impact, Incident, IncidentComponent
    from vigil.notify.models import ChangeKind
    from vigil.notify.service import LISTED_COMPONENTS, payload_of
    from vigil.notify.transports import render

    statuses = [ComponentStatus.DEGRADED_PERFORMANCE] * 70 + [ComponentStatus.MAJOR_OUTAGE] * 50
    incident = Incident(
        id=3,
        title="hv down",
        status=IncidentStatus.INVESTIGATING,
        impact=Impact.MAJOR,
        probable_cause="zz-hv",
        auto=True,
        started_at=T0,
        components=[IncidentComponent(component_id=f"vm{n:03}", status=s) for n, s in enumerate(statuses)]
        + [IncidentComponent(component_id="zz-hv", status=ComponentStatus.MAJOR_OUTAGE)],
    )
    document = payload_of(incident, ChangeKind.OPENED, None, T0)["incident"]
    listed = document["components"]
    assert len(listed) == LISTED_COMPONENTS and document["components_total"] == 121
    assert listed[0] == {"id": "zz-hv", "status": "major_outage"}  # the probable cause first, whatever its name
    assert {c["status"] for c in listed[1:]} == {"major_outage"}  # then the worst
    _, text = render(payload_of(incident, ChangeKind.OPENED, None, T0))
    assert "- ... and 71 more" in text
    incident.components = incident.components[:3]
    small = payload_of(incident, ChangeKind.OPENED, None, T0)["incident"]
    assert small["components_total"] == 3 and len(small["components"]) == 3  # short lists are whole


async def test_a_wake_claims_at_once_and_an_idle_dispatcher_waits_for_its_poll(engine: Engine) -> None:
    # The incident worker wakes the dispatcher after queueing deliveries; otherwise it looks every poll_interval.
    now = [T0]
    async with http_receiver() as receiver:
        text = config(webhook("hook", receiver.url()), ids="hook")
        d = dispatcher(engine, text, now, poll_interval=60.0)
        await d.start()
        try:
            await until(lambda: d.stats.transactions >= 1)  # its first look, at start, found nothing
            open_db_incident(engine, d)
            await asyncio.sleep(0.5)
            assert receiver.requests == [] and d.stats.transactions == 1  # queued; the next poll is a minute away
            d.wake()
            await until(lambda: receiver.requests)
            assert len(receiver.requests) == 1
        finally:
            await d.stop()
    assert deliveries(engine)["hook"].status is DeliveryStatus.SENT
