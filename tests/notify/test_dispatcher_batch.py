"""The dispatcher under a fan-out, on SQLite and PostgreSQL with real local receivers on 127.0.0.1: batch
claims, hundreds of webhooks in flight on pooled connections, every attempt recorded once, a dead SMTP server
not holding back the webhooks, retries with backoff, and nothing lost or sent twice across a stop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from sqlalchemy import Engine, event, func, insert, select

from tests.conftest import model_from
from tests.notify.receivers import serving_posts
from vigil.db import session_scope
from vigil.incidents.models import ComponentStatus, EventType
from vigil.incidents.service import get_incident, open_incident
from vigil.monitors.models import Component
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.models import Delivery, DeliveryStatus, Subscriber, SubscriberKind, SubscriberStatus
from vigil.notify.service import Attempt, claim_due, record_attempts

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-s3cret-s3cret"
WAIT = 60.0  # seconds a test waits at most for the dispatcher (a bound, not a performance target)


@dataclass
class Receiver:
    """A counting webhook receiver: every request's delivery id, the client ports, the most requests at once."""

    port: int = 0
    deliveries: list[str] = field(default_factory=list)
    client_ports: set[int] = field(default_factory=set)
    in_flight: int = 0
    most_in_flight: int = 0
    delay: float = 0.0  # seconds each answer takes
    failing: set[str] = field(default_factory=set)  # paths answered 500

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def handle(request: web.Request) -> web.Response:
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await request.read()
            if state.delay:
                await asyncio.sleep(state.delay)
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer:
                state.client_ports.add(int(peer[1]))
            state.deliveries.append(request.headers["X-Vigil-Delivery"])
            return web.Response(status=500 if request.path in state.failing else 200, text="ok")
        finally:
            state.in_flight -= 1

    async with serving_posts(handle) as state.port:
        yield state


@contextmanager
def silent_smtp_server() -> Iterator[socket.socket]:
    """A listening socket that never accepts: an SMTP server that hangs (the kernel completes the connections,
    nobody ever says hello). Closing it resets the connections waiting on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield sock


def make_dispatcher(engine: Engine, channels: str, now: list[datetime], **kwargs: int) -> Dispatcher:
    listed = channels or "    []\n"
    text = f"components:\n  - {{id: db, kind: database, tier: critical}}\nnotifications:\n  channels:\n{listed}"
    ids = [line.split("id: ")[1].split(",")[0] for line in channels.splitlines() if "id: " in line]
    routed = [i for i in ids if i != "subscribers"]
    text += f"  routes:\n    - {{channels: [{', '.join(routed)}]}}\n" if routed else "  routes: []\n"
    d = Dispatcher(engine, clock=lambda: now[0], public_url="https://status.example", poll_interval=0.05, **kwargs)
    assert d.configure(model_from(text)).issues == []
    return d


def webhook(channel_id: str, url: str, timeout: float = 5) -> str:
    return f"    - {{id: {channel_id}, type: webhook, url: '{url}', secret: {SECRET}, timeout: {timeout:g}}}\n"


def add_subscribers(engine: Engine, addresses: list[str]) -> None:
    with session_scope(engine) as session:
        rows = [
            {
                "kind": SubscriberKind.EMAIL if "@" in address else SubscriberKind.WEBHOOK,
                "address": address,
                "secret": None if "@" in address else "w" * 20,
                "status": SubscriberStatus.CONFIRMED,
                "all_components": True,
                "confirm_token": f"c-{address}",
                "unsubscribe_token": f"u-{address}",
                "created_at": T0,
                "confirmed_at": T0,
            }
            for address in addresses
        ]
        session.execute(insert(Subscriber), rows)


def open_db_incident(engine: Engine, d: Dispatcher) -> int:
    """Open an incident on db through the worker's hook: channel deliveries and the subscribers' fan-out."""
    with session_scope(engine) as session:
        if session.get(Component, "db") is None:
            session.add(Component(id="db", name="db", kind="database"))
            session.flush()
        incident = open_incident(
            session=session,
            title="db down",
            components={"db": ComponentStatus.MAJOR_OUTAGE},
            auto=True,
            probable_cause="db",
            now=T0,
        )
        d.enqueue(session, incident, None, T0)
        return incident.id


def by_status(engine: Engine) -> dict[DeliveryStatus, int]:
    with session_scope(engine) as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return {status: count for status, count in rows}


async def wait_for(condition: object, seconds: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "the dispatcher did not get there in time"
        await asyncio.sleep(0.05)


# -- claims ----------------------------------------------------------------------------------------------------
def test_a_claim_takes_a_batch_in_three_statements_oldest_first_and_leases_it(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.execute(
            insert(Delivery),
            [
                {
                    "incident_id": None,
                    "channel_id": f"c{n}",
                    "change": "opened",
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": T0 - timedelta(seconds=n % 7),
                    "payload": {"n": n},
                    "created_at": T0,
                }
                for n in range(120)
            ],
        )
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope(engine) as session:
            first = claim_due(session=session, now=T0, lease=timedelta(minutes=2), limit=50)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(first) == 50
    # One read of the due ids, one conditional UPDATE for the whole batch and (SQLite) one read of what it took
    # (no subscribers here): not one UPDATE per row.
    assert len([s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE"))]) <= 3
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    with session_scope(engine) as session:
        due = {d.id: d.next_attempt_at for d in session.scalars(select(Delivery))}
    ordered = sorted(due, key=lambda i: (T0 - timedelta(seconds=(i - 1) % 7), i))
    assert [c.id for c in first] == ordered[:50]  # oldest due first
    assert all(c.attempt == 1 for c in first)
    with session_scope(engine) as session:
        second = claim_due(session=session, now=T0, lease=timedelta(minutes=2), limit=100)
        # Leased: not due again before the lease ends; due again after it (a sender that died: resent).
        assert {c.id for c in second}.isdisjoint(c.id for c in first) and len(second) == 70
        assert claim_due(session=session, now=T0 + timedelta(seconds=119), lease=timedelta(minutes=2)) == []
        again = claim_due(session=session, now=T0 + timedelta(minutes=2), lease=timedelta(minutes=2), limit=200)
        assert len(again) == 120 and all(c.attempt == 1 for c in again)


def test_recording_a_batch_updates_every_row_and_skips_deleted_ones(engine: Engine) -> None:
    now = [T0]
    d = make_dispatcher(engine, "", now)
    add_subscribers(engine, [f"http://127.0.0.1:9/{n}" for n in range(30)])
    open_db_incident(engine, d)
    with session_scope(engine) as session:
        claimed = claim_due(session=session, now=T0, lease=timedelta(minutes=2), limit=100)
    assert len(claimed) == 30
    gone = claimed[0].id
    with session_scope(engine) as session:
        session.delete(session.get_one(Delivery, gone))  # its subscriber was deleted meanwhile
    attempts = [Attempt(c.id, None if n % 2 else "HTTP 500", T0, permanent=n % 3 == 0) for n, c in enumerate(claimed)]
    with session_scope(engine) as session:
        assert record_attempts(session=session, attempts=attempts, max_attempts=8, backoff=(30, 60)) == 29
    with session_scope(engine) as session:
        rows = {r.id: r for r in session.scalars(select(Delivery))}
    for n, c in enumerate(claimed[1:], start=1):
        row = rows[c.id]
        assert row.attempts == 1
        if n % 2:
            assert row.status is DeliveryStatus.SENT and row.sent_at == T0
        elif n % 3 == 0:
            assert row.status is DeliveryStatus.FAILED and row.last_error == "HTTP 500"
        else:
            assert row.status is DeliveryStatus.PENDING and row.next_attempt_at == T0 + timedelta(seconds=30)


# -- the loop --------------------------------------------------------------------------------------------------
async def test_500_webhooks_go_out_concurrently_on_pooled_connections_each_once_every_attempt_recorded(
    engine: Engine,
) -> None:
    now = [T0]
    async with receiver() as hooks:
        hooks.delay = 0.02
        channels = "".join(webhook(f"hook{n}", hooks.url(f"/channel/{n}")) for n in range(20))
        d = make_dispatcher(engine, channels, now, concurrency=64)
        add_subscribers(engine, [hooks.url(f"/subscriber/{n}") for n in range(500)])
        incident_id = open_db_incident(engine, d)
        assert by_status(engine) == {DeliveryStatus.PENDING: 520}
        await d.start()
        try:
            await wait_for(lambda: len(hooks.deliveries) >= 520)
        finally:
            await d.stop()
    assert by_status(engine) == {DeliveryStatus.SENT: 520}
    assert len(hooks.deliveries) == len(set(hooks.deliveries)) == 520  # each delivery exactly once
    assert hooks.most_in_flight > 8  # many at once (it was at most 8)
    assert len(hooks.client_ports) <= 64  # connections reused: not one per message
    # Batched: far fewer transactions than one claim and one record per delivery.
    assert d.stats.recorded == 520 and d.stats.transactions < 520 // 4
    with session_scope(engine) as session:
        assert set(session.scalars(select(Delivery.attempts))) == {1}
        incident = get_incident(session=session, incident_id=incident_id)
        events = [u.data for u in incident.updates if u.event_type is EventType.NOTIFICATION]
    # Every attempt of a channel delivery is in the timeline (subscribers' are not: they would bury it).
    assert sorted(e["channel_id"] for e in events if e) == sorted(f"hook{n}" for n in range(20))
    assert all(e and e["status"] == "sent" and e["attempt"] == 1 for e in events)


async def test_a_hanging_smtp_server_does_not_hold_back_the_webhooks(engine: Engine) -> None:
    now = [T0]
    with silent_smtp_server() as smtp:
        async with receiver() as hooks:
            mail = (
                f"    - {{id: subscribers, type: smtp, host: 127.0.0.1, port: {smtp.getsockname()[1]},"
                " from: s@example.org, to: [unused@example.org], timeout: 30}\n"
            )
            d = make_dispatcher(engine, mail, now, concurrency=16, smtp_concurrency=2)
            # The e-mails come first in the outbox. A dispatcher that let them take every slot would send the
            # webhooks only when the first e-mails time out (30 s); here they go while two e-mails hang.
            add_subscribers(engine, [f"user{n}@example.org" for n in range(40)])
            add_subscribers(engine, [hooks.url(f"/subscriber/{n}") for n in range(100)])
            open_db_incident(engine, d)
            await d.start()
            try:
                await wait_for(lambda: len(hooks.deliveries) >= 100, seconds=20)
                # Meanwhile the e-mails held at most twice the server's concurrency of the slots: that many are
                # leased (sending or waiting for the server), none has ended, the others are in the outbox (never
                # taken, or handed back untried).
                await wait_for(lambda: mails(engine)[0] <= 4, seconds=5)
                leased, tried = mails(engine)
                assert 1 <= leased <= 4 and tried == 0
            finally:
                smtp.close()  # the hanging e-mails fail now (connection reset), so that stop need not wait 30 s
                await d.stop()
    assert len(set(hooks.deliveries)) == 100
    with session_scope(engine) as session:
        failed = list(session.scalars(select(Delivery).where(Delivery.last_error.is_not(None))))
    assert failed and all(r.status is DeliveryStatus.PENDING and r.attempts == 1 for r in failed)  # retried later


def mails(engine: Engine) -> tuple[int, int]:
    """The e-mail deliveries leased now (claimed, not recorded) and those with an attempt recorded."""
    with session_scope(engine) as session:
        email = Delivery.subscriber_id.in_(select(Subscriber.id).where(Subscriber.kind == SubscriberKind.EMAIL))
        leased = session.scalar(
            select(func.count()).where(email, Delivery.attempts == 0, Delivery.next_attempt_at > T0)
        )
        tried = session.scalar(select(func.count()).where(email, Delivery.attempts > 0))
        return leased or 0, tried or 0


async def test_failed_fan_out_attempts_are_retried_with_backoff(engine: Engine) -> None:
    now = [T0]
    async with receiver() as hooks:
        hooks.failing = {f"/subscriber/{n}" for n in range(0, 40, 4)}
        d = make_dispatcher(engine, "", now, max_attempts=3, backoff_base=30, backoff_cap=60)
        add_subscribers(engine, [hooks.url(f"/subscriber/{n}") for n in range(40)])
        open_db_incident(engine, d)
        assert await d.run_once() == 40
        assert by_status(engine) == {DeliveryStatus.SENT: 30, DeliveryStatus.PENDING: 10}
        with session_scope(engine) as session:
            waiting = list(session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.PENDING)))
        assert {(r.attempts, r.next_attempt_at, r.last_error) for r in waiting} == {
            (1, T0 + timedelta(seconds=30), "HTTP 500")
        }
        now[0] = T0 + timedelta(seconds=29)
        assert await d.run_once() == 0
        now[0] = T0 + timedelta(seconds=30)
        hooks.failing = set(list(hooks.failing)[:5])
        assert await d.run_once() == 10
        assert by_status(engine) == {DeliveryStatus.SENT: 35, DeliveryStatus.PENDING: 5}
        now[0] += timedelta(seconds=60)  # doubled
        assert await d.run_once() == 5
    assert by_status(engine) == {DeliveryStatus.SENT: 35, DeliveryStatus.FAILED: 5}
    assert len(hooks.deliveries) == 40 + 10 + 5


async def test_attempts_under_way_at_stop_are_recorded_and_nothing_is_sent_twice(engine: Engine) -> None:
    now = [T0]
    async with receiver() as hooks:
        hooks.delay = 0.3
        d = make_dispatcher(engine, "", now, concurrency=10)
        add_subscribers(engine, [hooks.url(f"/subscriber/{n}") for n in range(60)])
        open_db_incident(engine, d)
        await d.start()
        await wait_for(lambda: hooks.in_flight > 0)
        await d.stop()  # mid-fan-out: what is under way ends and is recorded; the rest stays queued
        counts = by_status(engine)
        assert counts[DeliveryStatus.SENT] == len(hooks.deliveries) >= 1
        assert counts.get(DeliveryStatus.PENDING, 0) == 60 - len(hooks.deliveries)
        with session_scope(engine) as session:  # none left leased: the queued ones are due at once
            leased = session.scalar(
                select(func.count()).where(Delivery.status == DeliveryStatus.PENDING, Delivery.next_attempt_at > T0)
            )
        assert leased == 0
        hooks.delay = 0
        second = make_dispatcher(engine, "", now)
        while await second.run_once():
            pass
    assert by_status(engine) == {DeliveryStatus.SENT: 60}
    assert sorted(hooks.deliveries) == sorted(set(hooks.deliveries)) and len(hooks.deliveries) == 60


async def test_e_mails_to_subscribers_go_over_a_few_kept_smtp_sessions_each_once(engine: Engine) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP, Envelope
    from aiosmtpd.smtp import Session as SmtpSession

    @dataclass
    class Mailbox:
        recipients: list[str] = field(default_factory=list)
        peers: set[object] = field(default_factory=set)

        async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
            self.recipients.extend(envelope.rcpt_tos)
            self.peers.add(session.peer)
            return "250 OK"

    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        now = [T0]
        mail = (
            f"    - {{id: subscribers, type: smtp, host: 127.0.0.1, port: {port}, from: s@example.org,"
            " to: [unused@example.org], timeout: 5}\n"
        )
        d = make_dispatcher(engine, mail, now, concurrency=16, smtp_concurrency=2)
        addresses = [f"user{n}@example.org" for n in range(30)]
        add_subscribers(engine, addresses)
        open_db_incident(engine, d)
        await d.start()
        try:
            await wait_for(lambda: len(mailbox.recipients) >= 30)
        finally:
            await d.stop()
    finally:
        controller.stop()
    assert sorted(mailbox.recipients) == sorted(addresses)  # each once
    assert by_status(engine) == {DeliveryStatus.SENT: 30}
    # Two at a time to that server, on sessions kept open: not one SMTP session (connection) per message.
    assert 1 <= len(mailbox.peers) <= 2
