from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import vigil.engine.sync as sync
from tests.conftest import model_from
from vigil.engine.sync import load_snapshot, sync_config
from vigil.monitors.config import monitors_of
from vigil.monitors.models import Component, ComponentState, Monitor

pytest_plugins = ["tests.dbfixtures"]

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def config(extra: str = "", token: str = "fixed-token-1") -> str:
    return f"""
components:
  - id: web
    kind: service
    monitors:
      - {{id: a, type: tcp, host: 127.0.0.1, port: 1}}
      - {{id: b, type: tcp, host: 127.0.0.1, port: 2}}
      - {{id: c, type: tcp, host: 127.0.0.1, port: 3}}
      - {{id: job, type: heartbeat, token: {token}}}
      - {{id: nightly, type: heartbeat}}
{extra}"""


def run(engine: Engine, text: str) -> sync.SyncReport:
    model = model_from(text)
    with Session(engine) as session, session.begin():
        return sync_config(session=session, model=model, monitors=monitors_of(model).monitors, now=NOW)


def test_sync_inserts_updates_disables_and_retires_in_chunks(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "SYNC_CHUNK", 2)  # several bulk statements for five monitors
    report = run(engine, config("  - {id: db, kind: database}\n"))
    assert (report.added_components, report.added_monitors) == (2, 5)
    assert report.tokens["web/job"] == "fixed-token-1"
    generated = report.tokens["web/nightly"]
    assert len(generated) >= 16

    report = run(engine, config().replace("port: 3", "port: 4"))  # db leaves, c changes
    assert (report.added_components, report.retired_components, report.added_monitors) == (0, 1, 0)
    assert report.tokens["web/nightly"] == generated  # a generated token is kept: ping URLs survive
    with Session(engine) as session:
        assert session.get(Component, "db").retired_at is not None  # type: ignore[union-attr]
        assert session.get(Monitor, "web/c").config["port"] == 4  # type: ignore[union-attr]
        monitors = session.scalars(select(Monitor).order_by(Monitor.id)).all()
        assert [m.id for m in monitors] == ["web/a", "web/b", "web/c", "web/job", "web/nightly"]
        assert all("token" not in m.config for m in monitors)  # the secret stays out of the stored config

    # The fixed token moves to another monitor: it is taken from the first one, which gets a new one.
    moved = config(token="other-token-2").replace(
        "      - {id: nightly, type: heartbeat}", "      - {id: nightly, type: heartbeat, token: fixed-token-1}"
    )
    report = run(engine, moved.replace("      - {id: b, type: tcp, host: 127.0.0.1, port: 2}\n", ""))
    assert report.tokens == {"web/job": "other-token-2", "web/nightly": "fixed-token-1"}
    assert report.disabled_monitors == 1
    with Session(engine) as session:
        assert not session.get(Monitor, "web/b").enabled  # type: ignore[union-attr]
        snapshot = load_snapshot(session=session)
    assert "web/b" not in snapshot.monitor_states
    assert snapshot.heartbeats["web/job"].last_ping == NOW  # never pinged: the first period counts from creation
    assert set(snapshot.component_states) == {"web"}  # retired components are not restored
    assert snapshot.component_states["web"] is ComponentState.UNKNOWN
