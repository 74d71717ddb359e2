"""Receiving alerts: deduplicate by fingerprint, map to components, move those through the outbox.

Incidents are not opened here: a firing alert mapped to a component moves the component to ``down`` (or
``degraded`` for a low severity) with :func:`vigil.monitors.store.record_state_change`, in the caller's
transaction, and the incident worker does the rest from the ``state_changes`` outbox (grouping, maintenance,
notifications). When the last firing alert of a component resolves, it goes back to ``up``.

Alertmanager's ``groupKey`` joins one incident: a component failing because of an alert of a group whose
oldest firing alert maps to another component gets that component as its ``cause``, so grouping (whose root is
the cause) puts both in the incident of the first. Functions flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.alerts.mapping import AlertMapping
from vigil.alerts.models import Alert, AlertSource, AlertStatus
from vigil.alerts.schemas import AlertmanagerWebhook, GenericStatus, GenericWebhook
from vigil.monitors.models import REASON_LIMIT, Component, ComponentState, Monitor, StateChange
from vigil.monitors.store import record_state_change

__all__ = [
    "DEGRADING_SEVERITIES",
    "Incoming",
    "Receipt",
    "alert_document",
    "failing_state",
    "from_alertmanager",
    "from_webhook",
    "list_alerts",
    "receive_alerts",
]

# Alertmanager ``severity`` label values that make a component degraded rather than down.
DEGRADING_SEVERITIES = frozenset({"warning", "warn", "minor", "low", "info"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """One alert as received, whatever its source; ``component`` given (generic webhook) or mapped by labels."""

    source: AlertSource
    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str]
    payload: dict[str, Any]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    group_key: str | None = None
    component: str | None = None


@dataclass(slots=True)
class Receipt:
    """What one delivery did: the alert rows it wrote (in payload order) and the state changes it recorded."""

    alerts: list[Alert] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)


def from_alertmanager(webhook: AlertmanagerWebhook) -> list[Incoming]:
    """Return the alerts of an Alertmanager notification, each carrying its group key."""
    items = []
    for alert in webhook.alerts:
        payload = alert.model_dump(mode="json", by_alias=True)
        payload |= {"groupKey": webhook.group_key, "receiver": webhook.receiver, "externalURL": webhook.external_url}
        ends = alert.ends_at if alert.ends_at is not None and alert.ends_at.year > 1 else None  # year 1: unset
        items.append(
            Incoming(
                source=AlertSource.ALERTMANAGER,
                fingerprint=alert.fingerprint,
                status=alert.status,
                labels=alert.labels,
                annotations=alert.annotations,
                payload=payload,
                starts_at=alert.starts_at,
                ends_at=ends,
                group_key=webhook.group_key,
            )
        )
    return items


def from_webhook(body: GenericWebhook) -> Incoming:
    """Return the generic webhook's alert: ``up`` resolves it, ``down``/``degraded`` fire it."""
    status = AlertStatus.RESOLVED if body.status is GenericStatus.UP else AlertStatus.FIRING
    return Incoming(
        source=AlertSource.WEBHOOK,
        fingerprint=body.id,
        status=status,
        labels=body.labels,
        annotations={"summary": body.summary} if body.summary else {},
        payload=body.document(),
        component=body.component,
    )


def receive_alerts(*, session: Session, alerts: Sequence[Incoming], mapping: AlertMapping, now: datetime) -> Receipt:
    """Record ``alerts`` (one row per source and fingerprint) and move their components; return what was done.

    An alert whose labels map to no known component is recorded with ``component_id`` NULL and a ``note``, and
    moves nothing. State changes are recorded last (the outbox lock is held until the commit).
    """
    receipt = Receipt()
    candidates = {a.component or mapping.component_for(a.labels)[0] for a in alerts} - {None}
    query = select(Component.id).where(Component.id.in_(sorted(c for c in candidates if c)))
    known = set(session.scalars(query.where(Component.retired_at.is_(None))))
    touched: dict[str, bool] = {}  # component → whether one of its alerts stopped firing here
    for item in alerts:
        row, stopped = _upsert(session, item, mapping, known, now)
        receipt.alerts.append(row)
        for cid, ended in stopped.items():
            touched[cid] = touched.get(cid, False) or ended
    session.flush()
    receipt.changes = _move_components(session, touched, now)
    return receipt


def _upsert(
    session: Session, item: Incoming, mapping: AlertMapping, known: set[str], now: datetime
) -> tuple[Alert, dict[str, bool]]:
    query = select(Alert).where(Alert.source == item.source, Alert.fingerprint == item.fingerprint)
    row = session.scalars(query).first()
    if row is None:
        row = Alert(source=item.source, fingerprint=item.fingerprint, first_seen_at=now, starts_at=item.starts_at)
        session.add(row)
        before: tuple[AlertStatus | None, str | None] = (None, None)
    else:
        before = (row.status, row.component_id)
    wanted: str | None
    if item.component is not None:
        wanted, how = item.component, "the webhook's component"
    else:
        wanted, how = mapping.component_for(item.labels)
    row.component_id = wanted if wanted in known else None
    row.note = "" if row.component_id else (f"{how} names unknown component {wanted!r}" if wanted else how)
    was_firing = before[0] is AlertStatus.FIRING
    if item.starts_at is not None:
        row.starts_at = item.starts_at
    elif item.status is AlertStatus.FIRING and not was_firing:
        row.starts_at = now  # the generic webhook has no start time: a new firing starts now
    row.status, row.ends_at = item.status, item.ends_at
    if item.status is AlertStatus.RESOLVED and row.ends_at is None:
        row.ends_at = now
    row.labels, row.annotations, row.payload = item.labels, item.annotations, item.payload
    row.group_key, row.last_seen_at = item.group_key, now
    # The components to look at again: the one it maps to, and the one it mapped to before if that differs.
    # "ended" (True): an alert of that component stopped firing for it, which may bring it back up.
    stopped: dict[str, bool] = {}
    if row.component_id:
        stopped[row.component_id] = was_firing and item.status is AlertStatus.RESOLVED
    if before[1] and before[1] != row.component_id:
        stopped[before[1]] = was_firing
    return row, stopped


def _firing(session: Session, **where: Any) -> list[Alert]:
    query = select(Alert).filter_by(status=AlertStatus.FIRING, **where).where(Alert.component_id.is_not(None))
    return list(session.scalars(query.order_by(Alert.starts_at, Alert.id)))


def failing_state(alert: Alert) -> ComponentState:
    """Return the state a firing alert puts its component in: degraded for a low severity, else down."""
    if alert.source is AlertSource.WEBHOOK:
        return ComponentState.DEGRADED if alert.payload.get("status") == "degraded" else ComponentState.DOWN
    severity = str(alert.labels.get("severity", "")).lower()
    return ComponentState.DEGRADED if severity in DEGRADING_SEVERITIES else ComponentState.DOWN


_WORST_FIRST = [ComponentState.DOWN, ComponentState.DEGRADED, ComponentState.UP]


def _monitors_say(session: Session, cid: str) -> ComponentState | None:
    """Return the worst state the component's own monitors are in (None: it has none that know something).

    Alerts and monitors both observe a component, and its state is the worse of the two (as the engine derives
    it, vigil.engine.runtime): an alert that resolves must not put up a component whose monitor is failing.
    """
    query = select(Monitor.outcome).where(
        Monitor.component_id == cid, Monitor.enabled.is_(True), Monitor.outcome.is_not(None)
    )
    seen = {ComponentState(o.value) for o in session.scalars(query) if o is not None}
    return next((state for state in _WORST_FIRST if state in seen), None)


def alert_verdicts(*, session: Session) -> dict[str, tuple[ComponentState, str]]:
    """Return, per component with firing alerts, the state they put it in and why (the engine's input)."""
    found: dict[str, tuple[ComponentState, str]] = {}
    for alert in _firing(session):
        assert alert.component_id is not None  # _firing keeps mapped alerts only
        state = failing_state(alert)
        held = found.get(alert.component_id)
        if held is None or _WORST_FIRST.index(state) < _WORST_FIRST.index(held[0]):
            found[alert.component_id] = (state, _reason(alert, "firing"))
    return found


def _move_components(session: Session, touched: dict[str, bool], now: datetime) -> list[StateChange]:
    plans: list[tuple[str, ComponentState, datetime, str | None, str]] = []
    for cid, ended in sorted(touched.items()):
        firing = _firing(session, component_id=cid)
        monitors = _monitors_say(session, cid)
        if firing:
            worst = min((failing_state(a) for a in firing), key=_WORST_FIRST.index)
            if monitors is ComponentState.DOWN and worst is ComponentState.DEGRADED:
                continue  # its monitor says down already: a degrading alert changes nothing
            first = firing[0]
            at = min(first.starts_at or now, now)
            plans.append((cid, worst, at, _group_cause(session, first, cid), _reason(first, "firing")))
        elif ended:
            if monitors in (ComponentState.DOWN, ComponentState.DEGRADED):
                reason = f"alerts resolved; its monitors still say {monitors.value}"
                plans.append((cid, monitors, now, None, reason))
            else:
                plans.append((cid, ComponentState.UP, now, None, "alerts resolved"))
        # Neither: a resolved alert never seen firing says nothing about the component (the monitors may).
    # Group anchors first: their change must precede the changes that name them as cause, in the outbox.
    plans.sort(key=lambda plan: plan[3] is not None)
    changes = []
    for cid, state, at, cause, reason in plans:
        change = record_state_change(
            session=session, to_state=state, at=at, component_id=cid, cause=cause, reason=reason[:REASON_LIMIT]
        )
        if change is not None:
            changes.append(change)
    return changes


def _group_cause(session: Session, alert: Alert, cid: str) -> str | None:
    # groupKey joins one incident: the component of the group's oldest firing alert is the others' cause, which
    # grouping takes as their root (vigil.incidents.grouping, rule 1), so they join that component's incident.
    if alert.group_key is None:
        return None
    group = _firing(session, group_key=alert.group_key)
    anchor = group[0].component_id if group else None
    return anchor if anchor != cid else None


def _reason(alert: Alert, what: str) -> str:
    name = alert.labels.get("alertname") or alert.fingerprint
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    return f"{alert.source.value} alert {name} {what}" + (f": {summary}" if summary else "")


def list_alerts(
    *, session: Session, status: AlertStatus | None = None, unmapped: bool | None = None, limit: int = 100
) -> list[Alert]:
    """Return alerts, last seen first; ``unmapped`` True for those without a component, False for the others."""
    query = select(Alert)
    if status is not None:
        query = query.where(Alert.status == status)
    if unmapped is not None:
        query = query.where(Alert.component_id.is_(None) if unmapped else Alert.component_id.is_not(None))
    return list(session.scalars(query.order_by(Alert.last_seen_at.desc(), Alert.id.desc()).limit(limit)))


def alert_document(alert: Alert) -> dict[str, Any]:
    """Return the JSON API's view of an alert."""
    return {
        "id": alert.id,
        "source": alert.source.value,
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "component_id": alert.component_id,
        "note": alert.note,
        "group_key": alert.group_key,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": _iso(alert.starts_at),
        "ends_at": _iso(alert.ends_at),
        "first_seen_at": _iso(alert.first_seen_at),
        "last_seen_at": _iso(alert.last_seen_at),
        "payload": alert.payload,
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")
