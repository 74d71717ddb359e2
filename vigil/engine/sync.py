"""Config → database: the components and monitors of the YAML become rows, without losing history.

The YAML is the source of truth for what exists; the database keeps what happened. So a component that leaves
the config is marked retired (its results and state changes stay), a monitor that leaves is disabled, and one
that comes back picks up its history. Heartbeat tokens are generated once and kept, so a ping URL written into
a crontab keeps working across restarts and reloads; a token written in the config wins.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from vigil.model.types import Model
from vigil.monitors.config import MonitorConfig
from vigil.monitors.heartbeat import HeartbeatState
from vigil.monitors.models import Component, ComponentState, Monitor
from vigil.monitors.schemas import HeartbeatMonitorSpec

__all__ = ["Snapshot", "SyncReport", "load_snapshot", "sync_config"]

SYNC_CHUNK = 1000  # rows per bulk statement


@dataclass(slots=True)
class SyncReport:
    added_components: int = 0
    retired_components: int = 0
    added_monitors: int = 0
    disabled_monitors: int = 0
    tokens: dict[str, str] = field(default_factory=dict)  # heartbeat monitor key → its token, for ping URLs


def sync_config(*, session: Session, model: Model, monitors: Sequence[MonitorConfig], now: datetime) -> SyncReport:
    """Make the components and monitors tables match the config; the caller commits.

    Bulk statements on plain rows, not ORM objects: a 10,000-monitor config would otherwise build (and leave in
    the process's memory high-water mark) tens of thousands of objects, for rows that mostly did not change.
    """
    report = SyncReport()
    _sync_components(session, model, now, report)
    _sync_monitors(session, monitors, now, report)
    return report


def _sync_components(session: Session, model: Model, now: datetime, report: SyncReport) -> None:
    columns = (Component.id, Component.name, Component.kind, Component.tier, Component.retired_at)
    current = {row[0]: tuple(row[1:]) for row in session.execute(select(*columns))}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for comp in model.components.values():
        row = current.get(comp.id)
        wanted: dict[str, object] = {"name": comp.name, "kind": comp.kind, "tier": comp.tier}
        if row is None:
            inserts.append({"id": comp.id, "state": ComponentState.UNKNOWN, **wanted})
        elif row != (comp.name, comp.kind, comp.tier, None):
            updates.append({"id": comp.id, "retired_at": None, **wanted})
    gone = [cid for cid, row in current.items() if cid not in model.components and row[3] is None]
    retired = [{"id": cid, "retired_at": now} for cid in gone]
    for rows, statement in ((inserts, insert(Component)), (updates + retired, update(Component))):
        if rows:
            session.execute(statement, rows)
    report.added_components, report.retired_components = len(inserts), len(retired)


def _sync_monitors(session: Session, monitors: Sequence[MonitorConfig], now: datetime, report: SyncReport) -> None:
    columns = (Monitor.id, Monitor.component_id, Monitor.type, Monitor.enabled, Monitor.config, Monitor.heartbeat_token)
    current = {row[0]: tuple(row[1:]) for row in session.execute(select(*columns))}
    wanted = {config.key: config for config in monitors}
    fixed = {c.spec.token: c.key for c in monitors if isinstance(c.spec, HeartbeatMonitorSpec) and c.spec.token}
    # A token the config now gives to one monitor is taken from any other row first (the column is unique).
    taken = [{"id": key, "heartbeat_token": None} for key, row in current.items() if fixed.get(row[4], key) != key]
    disabled = [{"id": key, "enabled": False} for key, row in current.items() if key not in wanted and row[2]]
    # Tokens are freed first: a monitor updated or inserted next may take one of them.
    for rows in (taken, disabled):
        if rows:
            session.execute(update(Monitor), rows)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    added = 0
    stolen = {row["id"] for row in taken}
    for key, config in wanted.items():
        row = current.get(key)
        old_token = None if row is None or key in stolen else row[4]
        token = _token(config, old_token)
        values = {
            "component_id": config.component_id,
            "type": config.spec.type,
            "enabled": True,
            "config": _public_config(config),
            "heartbeat_token": token,
        }
        if token is not None:
            report.tokens[key] = token
        if row is None:
            inserts.append({"id": key, "created_at": now, **values})
            added += 1
        elif row != tuple(values.values()):
            updates.append({"id": key, **values})
        if len(inserts) + len(updates) >= SYNC_CHUNK:  # bounded lists: their peak stays in the process's RSS
            _write_monitors(session, inserts, updates)
    _write_monitors(session, inserts, updates)
    report.added_monitors, report.disabled_monitors = added, len(disabled)


def _write_monitors(session: Session, inserts: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
    if updates:
        session.execute(update(Monitor), updates)
    if inserts:
        session.execute(insert(Monitor), inserts)
    inserts.clear()
    updates.clear()


def _public_config(config: MonitorConfig) -> dict[str, Any]:
    # Secrets come out masked ("**********") in JSON mode; the token is a secret too.
    data: dict[str, Any] = config.spec.model_dump(mode="json", exclude_none=True)
    data.pop("token", None)
    return data


def _token(config: MonitorConfig, current: str | None) -> str | None:
    spec = config.spec
    if not isinstance(spec, HeartbeatMonitorSpec):
        return None
    return spec.token or current or secrets.token_urlsafe(16)


@dataclass(slots=True)
class Snapshot:
    """The states and heartbeat times a server restores on start, so a restart is not a storm of changes."""

    monitor_states: dict[str, ComponentState] = field(default_factory=dict)
    component_states: dict[str, ComponentState] = field(default_factory=dict)
    heartbeats: dict[str, HeartbeatState] = field(default_factory=dict)


def load_snapshot(*, session: Session) -> Snapshot:
    """Return the last known state of every enabled monitor and every current component."""
    snapshot = Snapshot()
    for monitor in session.scalars(select(Monitor).where(Monitor.enabled.is_(True))):
        if monitor.outcome is not None:
            snapshot.monitor_states[monitor.id] = ComponentState(monitor.outcome.value)
        if monitor.type == "heartbeat":
            # Never pinged: the first period counts from the monitor's creation (see heartbeat_status).
            last_ping = monitor.last_ping_at or monitor.created_at
            snapshot.heartbeats[monitor.id] = HeartbeatState(last_ping, monitor.last_start_at, monitor.last_fail_at)
    for component in session.scalars(select(Component).where(Component.retired_at.is_(None))):
        snapshot.component_states[component.id] = component.state
    return snapshot
