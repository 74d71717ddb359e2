"""The maintenance service: schedule (after the what-if check), list, start, complete and cancel windows, and
advance them on the clock.

Plain keyword-only functions on a session: they flush, never commit (the caller owns the transaction).

Errors::

    MaintenanceError
     ├── MaintenanceNotFoundError (also LookupError): no window with that id
     ├── InvalidMaintenanceError (also ValueError): bad input; ``field`` names the field at fault
     └── MaintenanceAtRiskError: the what-if check found critical services at risk; ``findings`` lists them
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from vigil.maintenance.models import TITLE_LIMIT, Maintenance, MaintenanceComponent, MaintenanceStatus
from vigil.maintenance.whatif import Finding, check_window
from vigil.model.types import Model
from vigil.monitors.models import Component, ComponentState
from vigil.notify.subscribers import fan_out_maintenance  # subscribers (0007): maintenance announcements

__all__ = [
    "InvalidMaintenanceError",
    "MaintenanceAtRiskError",
    "MaintenanceError",
    "MaintenanceNotFoundError",
    "active_components",
    "advance_windows",
    "cancel_maintenance",
    "complete_maintenance",
    "get_maintenance",
    "list_maintenances",
    "schedule_maintenance",
    "start_maintenance",
]

M = MaintenanceStatus
_OPEN = (M.SCHEDULED, M.IN_PROGRESS)


class MaintenanceError(Exception):
    """Base of the maintenance service's errors; ``field`` names the input at fault, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MaintenanceNotFoundError(MaintenanceError, LookupError):
    pass


class InvalidMaintenanceError(MaintenanceError, ValueError):
    pass


class MaintenanceAtRiskError(MaintenanceError):
    """Scheduling refused: critical services would go down or lose their last redundancy (``force`` overrides)."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        lines = "\n".join(f"  - {f.summary}" for f in findings)
        super().__init__(f"this maintenance puts critical services at risk:\n{lines}", field="components")
        self.findings = list(findings)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # A time without a zone is taken as UTC, as everywhere in Vigil's store.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _validate(model: Model, title: str, starts_at: datetime, ends_at: datetime, components: Sequence[str]) -> None:
    if not title.strip():
        raise InvalidMaintenanceError("title: must not be empty", field="title")
    if len(title) > TITLE_LIMIT:
        raise InvalidMaintenanceError(f"title: at most {TITLE_LIMIT} characters", field="title")
    if ends_at <= starts_at:
        raise InvalidMaintenanceError(
            f"ends_at: {ends_at.isoformat()} is not after starts_at {starts_at.isoformat()}", field="ends_at"
        )
    if not components:
        raise InvalidMaintenanceError("components: name at least one component", field="components")
    unknown = sorted(set(components) - set(model.components))
    if unknown:
        raise InvalidMaintenanceError(f"components: unknown component(s) {', '.join(unknown)}", field="components")


def _ensure_rows(session: Session, model: Model, ids: Iterable[str]) -> None:
    # The window's components need rows (foreign keys); `vigil serve` syncs them, but a window may be scheduled
    # from the command line before the server first ran. The server's sync completes these rows later.
    wanted = sorted(set(ids))
    present = set(session.scalars(select(Component.id).where(Component.id.in_(wanted))))
    missing = [model.components[cid] for cid in wanted if cid not in present]
    rows = [
        {"id": c.id, "name": c.name or c.id, "kind": c.kind, "tier": c.tier, "state": ComponentState.UNKNOWN}
        for c in missing
    ]
    if rows:
        session.execute(insert(Component), rows)


def schedule_maintenance(
    *,
    session: Session,
    model: Model,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    components: Sequence[str],
    message: str = "",
    auto_start: bool = True,
    auto_complete: bool = True,
    force: bool = False,
    now: datetime | None = None,
) -> Maintenance:
    """Schedule a window after checking it with the what-if analysis on ``model``; return it (flushed).

    Raises InvalidMaintenanceError for bad input, MaintenanceAtRiskError when critical services would go down or
    lose their last redundancy and ``force`` is false (with ``force`` the findings are stored on the window).
    """
    starts_at, ends_at = _aware(starts_at), _aware(ends_at)
    ids = list(dict.fromkeys(components))
    _validate(model, title, starts_at, ends_at, ids)
    findings = check_window(model, ids)
    if findings and not force:
        raise MaintenanceAtRiskError(findings)
    _ensure_rows(session, model, ids)
    window = Maintenance(
        title=title.strip(),
        message=message,
        starts_at=starts_at,
        ends_at=ends_at,
        status=M.SCHEDULED,
        auto_start=auto_start,
        auto_complete=auto_complete,
        created_at=_now(now),
        forced=bool(findings) and force,
        findings=[f.as_dict() for f in findings] or None,
        components=[MaintenanceComponent(component_id=cid) for cid in ids],
    )
    session.add(window)
    session.flush()
    fan_out_maintenance(session=session, window=window, now=_now(now))  # subscribers (0007)
    return window


def get_maintenance(*, session: Session, maintenance_id: int) -> Maintenance:
    """Return the window with its components; raises MaintenanceNotFoundError."""
    query = select(Maintenance).where(Maintenance.id == maintenance_id).options(selectinload(Maintenance.components))
    window = session.scalars(query).one_or_none()
    if window is None:
        raise MaintenanceNotFoundError(f"no maintenance with id {maintenance_id}", field="maintenance_id")
    return window


def list_maintenances(
    *, session: Session, statuses: Iterable[MaintenanceStatus] | None = None, limit: int = 100
) -> list[Maintenance]:
    """Return windows, latest start first, optionally only those with one of ``statuses``."""
    query = (
        select(Maintenance)
        .options(selectinload(Maintenance.components))
        .order_by(Maintenance.starts_at.desc(), Maintenance.id.desc())
        .limit(limit)
    )
    if statuses is not None:
        query = query.where(Maintenance.status.in_(list(statuses)))
    return list(session.scalars(query))


def _move(window: Maintenance, allowed: Sequence[MaintenanceStatus], to: MaintenanceStatus, now: datetime) -> None:
    if window.status not in allowed:
        choices = " or ".join(s.value for s in allowed)
        raise InvalidMaintenanceError(
            f"status: maintenance {window.id} is {window.status.value}; only a {choices} one can be {to.value}",
            field="status",
        )
    window.status = to
    if to is M.IN_PROGRESS:
        window.started_at = now
    else:
        window.completed_at = now


def start_maintenance(*, session: Session, maintenance_id: int, now: datetime | None = None) -> Maintenance:
    """Start a scheduled window now (its components go into maintenance); raises as get_maintenance, and
    InvalidMaintenanceError when it is not scheduled."""
    window = get_maintenance(session=session, maintenance_id=maintenance_id)
    _move(window, (M.SCHEDULED,), M.IN_PROGRESS, _now(now))
    session.flush()
    fan_out_maintenance(session=session, window=window, now=_now(now))  # subscribers (0007)
    return window


def complete_maintenance(*, session: Session, maintenance_id: int, now: datetime | None = None) -> Maintenance:
    """Complete a window in progress; raises InvalidMaintenanceError when it is not in progress."""
    window = get_maintenance(session=session, maintenance_id=maintenance_id)
    _move(window, (M.IN_PROGRESS,), M.COMPLETED, _now(now))
    session.flush()
    fan_out_maintenance(session=session, window=window, now=_now(now))  # subscribers (0007)
    return window


def cancel_maintenance(*, session: Session, maintenance_id: int, now: datetime | None = None) -> Maintenance:
    """Cancel a scheduled window or end one in progress; raises InvalidMaintenanceError when already over."""
    window = get_maintenance(session=session, maintenance_id=maintenance_id)
    _move(window, _OPEN, M.CANCELLED, _now(now))
    session.flush()
    # Whoever was told it was scheduled must hear it is off (or, in progress, that it ended early).
    fan_out_maintenance(session=session, window=window, now=_now(now))
    return window


def advance_windows(*, session: Session, now: datetime) -> list[tuple[int, MaintenanceStatus]]:
    """Start the automatic windows whose start has come and complete those whose end has passed.

    Returns ``(id, new status)`` for each change, in order. A window whose whole span passed while nobody
    watched is started and completed in the same call (its end is what matters to the incidents).
    """
    changed: list[tuple[int, MaintenanceStatus]] = []
    query = select(Maintenance).where(Maintenance.status.in_(list(_OPEN))).order_by(Maintenance.starts_at)
    for window in session.scalars(query):
        if window.status is M.SCHEDULED and window.auto_start and _aware(window.starts_at) <= now:
            _move(window, (M.SCHEDULED,), M.IN_PROGRESS, now)
            changed.append((window.id, M.IN_PROGRESS))
            fan_out_maintenance(session=session, window=window, now=now)  # subscribers (0007)
        if window.status is M.IN_PROGRESS and window.auto_complete and _aware(window.ends_at) <= now:
            _move(window, (M.IN_PROGRESS,), M.COMPLETED, now)
            changed.append((window.id, M.COMPLETED))
            fan_out_maintenance(session=session, window=window, now=now)  # subscribers (0007)
    session.flush()
    return changed


def active_components(*, session: Session) -> frozenset[str]:
    """Return the components of the windows in progress: the engine puts them in maintenance."""
    query = (
        select(MaintenanceComponent.component_id)
        .join(Maintenance, Maintenance.id == MaintenanceComponent.maintenance_id)
        .where(Maintenance.status == M.IN_PROGRESS)
    )
    return frozenset(session.scalars(query))
