"""The JSON documents of the read-only API (``/api/v1``): stable keys, times in ISO 8601 UTC.

Secrets stay out: heartbeat tokens are never part of a document (neither the column nor a ``token`` key of a
monitor's config), secret config values come masked from the config sync, and a ping's body (a job's output,
which may say anything) waits for authenticated endpoints.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from vigil.model.types import Tier
from vigil.monitors.models import Component, ComponentState, Monitor, Outcome

__all__ = [
    "CheckResultRead",
    "ComponentList",
    "ComponentRead",
    "HeartbeatRead",
    "MonitorList",
    "MonitorRead",
    "ResultList",
    "StateChangeList",
    "StateChangeRead",
    "UptimeRead",
    "public_config",
]

_SECRET_KEYS = frozenset({"token"})


class _Read(BaseModel):
    # Datetimes come from the store in UTC, which Pydantic writes as "2026-03-01T12:00:00Z".
    model_config = ConfigDict(from_attributes=True)


class HeartbeatRead(_Read):
    """When a heartbeat monitor's job last reported each kind of ping."""

    last_ping_at: datetime | None
    last_start_at: datetime | None
    last_fail_at: datetime | None


class MonitorRead(_Read):
    id: str
    component_id: str
    type: str
    enabled: bool
    outcome: Outcome | None  # None until its first result
    consecutive_failures: int
    consecutive_successes: int
    last_checked_at: datetime | None
    created_at: datetime | None
    config: dict[str, Any]
    heartbeat: HeartbeatRead | None  # heartbeat monitors only

    @classmethod
    def of(cls, monitor: Monitor) -> MonitorRead:
        heartbeat = HeartbeatRead.model_validate(monitor) if monitor.type == "heartbeat" else None
        return cls(
            id=monitor.id,
            component_id=monitor.component_id,
            type=monitor.type,
            enabled=monitor.enabled,
            outcome=monitor.outcome,
            consecutive_failures=monitor.consecutive_failures,
            consecutive_successes=monitor.consecutive_successes,
            last_checked_at=monitor.last_checked_at,
            created_at=monitor.created_at,
            config=public_config(monitor.config or {}),
            heartbeat=heartbeat,
        )


class ComponentRead(_Read):
    id: str
    name: str
    kind: str
    tier: Tier
    state: ComponentState
    state_since: datetime | None
    state_cause: str | None  # the upstream component that put it down, None when its own monitors did
    retired_at: datetime | None  # set when it left the config
    monitors: list[MonitorRead]  # its enabled monitors

    @classmethod
    def of(cls, component: Component) -> ComponentRead:
        return cls(
            id=component.id,
            name=component.name,
            kind=component.kind,
            tier=component.tier,
            state=component.state,
            state_since=component.state_since,
            state_cause=component.state_cause,
            retired_at=component.retired_at,
            monitors=[MonitorRead.of(m) for m in sorted(component.monitors, key=lambda m: m.id) if m.enabled],
        )


class ComponentList(_Read):
    components: list[ComponentRead]


class MonitorList(_Read):
    monitors: list[MonitorRead]


class CheckResultRead(_Read):
    id: int
    started_at: datetime
    latency_ms: float
    outcome: Outcome
    reason: str


class ResultList(_Read):
    monitor_id: str
    results: list[CheckResultRead]  # newest first


class UptimeRead(_Read):
    monitor_id: str
    start: datetime
    end: datetime
    checks: int
    failures: int
    degraded: int
    downtime_seconds: float
    observed_seconds: float
    uptime: float | None  # 0 to 1, of the time watched; None when nothing was watched


class StateChangeRead(_Read):
    id: int
    component_id: str | None
    monitor_id: str | None
    from_state: ComponentState
    to_state: ComponentState
    at: datetime
    cause: str | None
    reason: str


class StateChangeList(_Read):
    state_changes: list[StateChangeRead]  # oldest first
    next_after: int  # pass as ?after= to continue; equals the request's `after` when nothing is new


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return ``config`` without its ``token`` keys, at any depth (secrets are already masked by the sync)."""
    return {key: _public(value) for key, value in config.items() if key not in _SECRET_KEYS}


def _public(value: Any) -> Any:
    if isinstance(value, dict):
        return public_config(value)
    if isinstance(value, list):
        return [_public(item) for item in value]
    return value
