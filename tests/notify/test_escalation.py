"""Reminders and escalation on a fake clock, on SQLite and PostgreSQL: nothing before the time, the escalation
channel told exactly once, reminders repeating, an acknowledgement stopping both; ack links in the messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.conftest import model_from
from vigil.db import session_scope
from vigil.incidents.models import ComponentStatus, EventType
from vigil.incidents.service import acknowledge_incident, get_incident, open_incident, resolve_incident
from vigil.model.types import Tier
from vigil.monitors.models import Component
from vigil.notify.config import notifications_of
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.escalation import AckLinks, AckTokenError, make_ack_token, read_ack_token
from vigil.notify.models import ChangeKind, Delivery

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # a Sunday night
KEY = "k" * 32
CONFIG = """\
components:
  - {id: db, kind: database, owner: dba, tier: critical}
notifications:
  channels:
    - {id: oncall, type: webhook, url: 'http://127.0.0.1:9/a', secret: s3cret-s3cret-s3cret}
    - {id: boss, type: webhook, url: 'http://127.0.0.1:9/b', secret: s3cret-s3cret-s3cret}
  routes:
    - {channels: [oncall], remind_every: 10m, escalate_after: 30m, escalate_to: [boss]}
"""


class Fixture:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.now = T0
        self.sent: list[tuple[str, dict[str, Any]]] = []

        async def sender(channel: Any, payload: dict[str, Any], _delivery_id: int) -> None:
            self.sent.append((channel.id, payload))

        self.dispatcher = Dispatcher(engine, clock=lambda: self.now, sender=sender)
        assert self.dispatcher.configure(model_from(CONFIG)).issues == []
        self.dispatcher.ack_url = AckLinks(KEY, "https://vigil.example.org/")

    def open(self) -> int:
        with session_scope(self.engine) as session:
            session.add(Component(id="db", name="db", kind="database", tier=Tier.CRITICAL))
            session.flush()
            incident = open_incident(
                session=session, title="db down", components={"db": ComponentStatus.MAJOR_OUTAGE}, auto=True, now=T0
            )
            self.dispatcher.enqueue(session, incident, None, T0)
            return incident.id

    async def at(self, minutes: float) -> list[tuple[str, str]]:
        """Move the clock to T0 + minutes, run one escalation round and send; return (channel, change) sent."""
        self.now = T0 + timedelta(minutes=minutes)
        self.sent.clear()
        self.dispatcher.escalate()
        await self.dispatcher.run_once()
        return sorted((channel, payload["change"]) for channel, payload in self.sent)


@pytest.fixture
def fx(engine: Engine) -> Fixture:
    return Fixture(engine)


def escalation_events(engine: Engine, incident_id: int) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
        return [dict(u.data or {}) for u in incident.updates if u.event_type is EventType.ESCALATION]


async def test_reminders_repeat_and_escalation_happens_once_after_its_delay(fx: Fixture) -> None:
    incident_id = fx.open()
    assert await fx.at(0) == [("oncall", "opened")]
    assert await fx.at(9.9) == []  # nothing before remind_every
    assert await fx.at(10) == [("oncall", "reminder")]
    assert await fx.at(19) == []
    assert await fx.at(20) == [("oncall", "reminder")]
    assert await fx.at(29.9) == []  # 9.9 min after the last reminder
    assert await fx.at(30) == [("boss", "escalation"), ("oncall", "reminder")]
    assert await fx.at(35) == []  # the escalation channel is told exactly once
    assert await fx.at(45) == [("oncall", "reminder")]
    events = escalation_events(fx.engine, incident_id)
    assert [e["kind"] for e in events].count("escalation") == 1
    assert {tuple(e["channels"]) for e in events} == {("oncall",), ("boss",)}


async def test_acknowledging_stops_reminders_and_escalation(fx: Fixture) -> None:
    incident_id = fx.open()
    await fx.at(0)
    assert await fx.at(10) == [("oncall", "reminder")]
    with session_scope(fx.engine) as session:
        acknowledge_incident(session=session, incident_id=incident_id, author="alice", now=T0 + timedelta(minutes=12))
    assert await fx.at(20) == []
    assert await fx.at(60) == []
    assert [e["kind"] for e in escalation_events(fx.engine, incident_id)] == ["reminder"]


async def test_a_resolved_incident_is_not_escalated(fx: Fixture) -> None:
    incident_id = fx.open()
    await fx.at(0)
    with session_scope(fx.engine) as session:
        resolve_incident(session=session, incident_id=incident_id, now=T0 + timedelta(minutes=5))
    assert await fx.at(60) == []


async def test_messages_carry_a_working_ack_link(fx: Fixture) -> None:
    incident_id = fx.open()
    await fx.at(0)
    await fx.at(30)
    assert fx.sent
    for _channel, payload in fx.sent:
        prefix = "https://vigil.example.org/ack/"
        assert payload["ack_url"].startswith(prefix)
        token = payload["ack_url"].removeprefix(prefix)
        assert read_ack_token(KEY, token, fx.now) == incident_id
    with session_scope(fx.engine) as session:
        kinds = {d.change for d in session.scalars(select(Delivery))}
    assert kinds == {ChangeKind.OPENED, ChangeKind.REMINDER, ChangeKind.ESCALATION}


def test_tokens_refuse_tampering_other_keys_and_expiry() -> None:
    token = make_ack_token(KEY, 7, T0 + timedelta(hours=1))
    assert read_ack_token(KEY, token, T0) == 7
    ident, expiry, signature = token.split(".")
    for bad in (f"8.{expiry}.{signature}", f"{ident}.{int(expiry) + 3600}.{signature}", "7.x.y", "", "a.b"):
        with pytest.raises(AckTokenError) as refused:
            read_ack_token(KEY, bad, T0)
        assert not refused.value.expired
    with pytest.raises(AckTokenError):
        read_ack_token("another-key-another-key", token, T0)
    with pytest.raises(AckTokenError) as late:
        read_ack_token(KEY, token, T0 + timedelta(hours=1))
    assert late.value.expired


def test_escalation_config_is_checked() -> None:
    text = CONFIG.replace("escalate_to: [boss]", "escalate_to: [nobody]")
    config = notifications_of(model_from(text))
    assert [i.message for i in config.issues] == ["unknown or invalid channel 'nobody'"]
    assert config.routes[0].escalate_to == []
    text = CONFIG.replace(", escalate_to: [boss]", "")
    assert "go together" in notifications_of(model_from(text)).issues[0].message
    assert notifications_of(model_from(CONFIG)).routes[0].remind_every == 600


LEVELS = CONFIG.replace(
    "    - {id: boss, type: webhook",
    "    - {id: lead, type: webhook, url: 'http://127.0.0.1:9/l', secret: s3cret-s3cret-s3cret}\n"
    "    - {id: boss, type: webhook",
).replace(
    "{channels: [oncall], remind_every: 10m, escalate_after: 30m, escalate_to: [boss]}",
    "{channels: [oncall], escalate: [{after: 1h, to: [boss]}, {after: 15m, to: [lead]}]}",
)


async def test_several_escalation_levels_each_told_once_in_time_order(engine: Engine) -> None:
    fx = Fixture(engine)
    assert fx.dispatcher.configure(model_from(LEVELS)).issues == []
    incident_id = fx.open()
    assert await fx.at(0) == [("oncall", "opened")]
    assert await fx.at(14.9) == []
    assert await fx.at(15) == [("lead", "escalation")]
    assert await fx.at(59) == []  # the first level is not told again
    assert await fx.at(60) == [("boss", "escalation")]
    assert await fx.at(120) == []
    events = escalation_events(engine, incident_id)
    assert [(e["channels"], e["after"]) for e in events] == [(["lead"], 900.0), (["boss"], 3600.0)]


async def test_levels_all_due_after_a_server_downtime_are_told_at_once(engine: Engine) -> None:
    fx = Fixture(engine)
    fx.dispatcher.configure(model_from(LEVELS))
    fx.open()
    await fx.at(0)
    assert await fx.at(90) == [("boss", "escalation"), ("lead", "escalation")]
    assert await fx.at(91) == []


def test_escalation_levels_are_checked() -> None:
    config = notifications_of(model_from(LEVELS.replace("to: [boss]", "to: [boss, nobody]")))
    assert [str(i) for i in config.issues] == [
        "test.yaml:9: notifications.routes[0].escalate[0].to[1]: unknown or invalid channel 'nobody'"
    ]
    assert [(level.after, level.to) for level in config.routes[0].levels] == [(900.0, ["lead"]), (3600.0, ["boss"])]
    same = notifications_of(model_from(LEVELS.replace("after: 1h", "after: 15m")))
    assert "same time" in same.issues[0].message and same.routes == []
