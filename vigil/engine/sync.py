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

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.model.types import Model
from vigil.monitors.config import MonitorConfig
from vigil.monitors.heartbeat import HeartbeatState
from vigil.monitors.models import Component, ComponentState, Monitor
from vigil.monitors.schemas import HeartbeatMonitorSpec

__all__ = ["Snapshot", "SyncReport", "load_snapshot", "sync_config"]


@dataclass(slots=True)
class SyncReport:
    added_components: int = 0
    retired_components: int = 0
    added_monitors: int = 0
    disabled_monitors: int = 0
    tokens: dict[str, str] = field(default_factory=dict)  # heartbeat monitor key → its token, for ping URLs


def sync_config(*, session: Session, model: Model, monitors: Sequence[MonitorConfig], now: datetime) -> SyncReport:
    """Make the components and monitors tables match the config; the caller commits."""
    report = SyncReport()
    components = {row.id: row for row in session.scalars(select(Component))}
    for comp in model.components.values():
        current = components.get(comp.id)
        if current is None:
            session.add(Component(id=comp.id, name=comp.name, kind=comp.kind, tier=comp.tier))
            report.added_components += 1
            continue
        current.name, current.kind, current.tier, current.retired_at = comp.name, comp.kind, comp.tier, None
    for cid, current in components.items():
        if cid not in model.components and current.retired_at is None:
            current.retired_at = now
            report.retired_components += 1
    session.flush()

    existing = {row.id: row for row in session.scalars(select(Monitor))}
    wanted = {config.key: config for config in monitors}
    fixed_tokens = {
        config.spec.token: config.key
        for config in monitors
        if isinstance(config.spec, HeartbeatMonitorSpec) and config.spec.token
    }
    # A token the config now gives to one monitor is taken from any other row first (unique column).
    for row in existing.values():
        if row.heartbeat_token in fixed_tokens and fixed_tokens[row.heartbeat_token] != row.id:
            row.heartbeat_token = None
    session.flush()
    for key, row in existing.items():
        if key not in wanted and row.enabled:
            row.enabled = False
            report.disabled_monitors += 1
    for key, config in wanted.items():
        found = existing.get(key)
        if found is None:
            found = Monitor(id=key, component_id=config.component_id, type=config.spec.type, created_at=now)
            session.add(found)
            report.added_monitors += 1
        row = found
        row.component_id, row.type, row.enabled = config.component_id, config.spec.type, True
        row.config = _public_config(config)
        row.heartbeat_token = _token(config, row.heartbeat_token)
        if row.heartbeat_token is not None:
            report.tokens[key] = row.heartbeat_token
    session.flush()
    return report


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
