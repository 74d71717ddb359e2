"""The read-only JSON API, ``/api/v1``: components, monitors, their results and uptime, and state changes.

Component and monitor ids may hold slashes ("web/http:http://x"), so they are matched with the path converter
and always come last in a URL: a monitor's results are ``/api/v1/results/<id>`` rather than
``/api/v1/monitors/<id>/results``, which would be ambiguous for a monitor whose id ends in "/results".
Endpoints are plain ``def``: FastAPI runs them in its thread pool, so a slow query never blocks the pings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from vigil.monitors.models import CheckResult, Component, Monitor
from vigil.monitors.rollup import uptime
from vigil.monitors.store import recent_results, state_changes_since
from vigil.web.deps import SessionDep
from vigil.web.schemas import (
    CheckResultRead,
    ComponentList,
    ComponentRead,
    MonitorList,
    MonitorRead,
    ResultList,
    StateChangeList,
    StateChangeRead,
    UptimeRead,
)

__all__ = ["MAX_LIMIT", "MAX_UPTIME_DAYS", "router"]

MAX_LIMIT = 1000  # rows one request may ask for
MAX_UPTIME_DAYS = 3660  # ten years of daily rollups is still a few thousand rows

router = APIRouter(prefix="/api/v1", tags=["api"])

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"How many, 1 to {MAX_LIMIT}.")]


@router.get("/components", response_model=ComponentList)
def list_components(session: SessionDep) -> ComponentList:
    """The components of the current config (retired ones are left out), by id, with their monitors."""
    query = (
        select(Component)
        .where(Component.retired_at.is_(None))
        .options(selectinload(Component.monitors))
        .order_by(Component.id)
    )
    return ComponentList(components=[ComponentRead.of(c) for c in session.scalars(query)])


@router.get("/components/{component_id:path}", response_model=ComponentRead)
def get_component(component_id: str, session: SessionDep) -> ComponentRead:
    """One component, retired or not; 404 when there is no such component."""
    query = select(Component).where(Component.id == component_id).options(selectinload(Component.monitors))
    component = session.scalars(query).one_or_none()
    if component is None:
        raise HTTPException(404, f"no component with id {component_id!r}")
    return ComponentRead.of(component)


@router.get("/monitors", response_model=MonitorList)
def list_monitors(
    session: SessionDep,
    component: Annotated[str | None, Query(max_length=200, description="Only this component's monitors.")] = None,
) -> MonitorList:
    """The enabled monitors, by id; 404 when ``component`` names no component."""
    query = select(Monitor).where(Monitor.enabled.is_(True)).order_by(Monitor.id)
    if component is not None:
        if session.get(Component, component) is None:
            raise HTTPException(404, f"no component with id {component!r}")
        query = query.where(Monitor.component_id == component)
    return MonitorList(monitors=[MonitorRead.of(m) for m in session.scalars(query)])


@router.get("/monitors/{monitor_id:path}", response_model=MonitorRead)
def get_monitor(monitor_id: str, session: SessionDep) -> MonitorRead:
    """One monitor, enabled or not; 404 when there is no such monitor."""
    return MonitorRead.of(_monitor(session, monitor_id))


@router.get("/results/{monitor_id:path}", response_model=ResultList)
def list_results(monitor_id: str, session: SessionDep, limit: Limit = 50) -> ResultList:
    """The monitor's latest raw results, newest first (raw results are kept ``result_retention_days``)."""
    _monitor(session, monitor_id)
    rows: list[CheckResult] = recent_results(session=session, monitor_id=monitor_id, limit=limit)
    return ResultList(monitor_id=monitor_id, results=[CheckResultRead.model_validate(r) for r in rows])


@router.get("/uptime/{monitor_id:path}", response_model=UptimeRead)
def get_uptime(
    monitor_id: str,
    session: SessionDep,
    days: Annotated[float, Query(gt=0, le=MAX_UPTIME_DAYS, description="Length of the window, in days.")] = 30,
    end: Annotated[AwareDatetime | None, Query(description="End of the window (ISO 8601 with offset); now.")] = None,
) -> UptimeRead:
    """The monitor's uptime over the ``days`` before ``end``: time watched that was not down."""
    _monitor(session, monitor_id)
    stop = (end or datetime.now(UTC)).astimezone(UTC)
    result = uptime(session=session, monitor_id=monitor_id, start=stop - timedelta(days=days), end=stop)
    return UptimeRead(
        monitor_id=monitor_id,
        start=result.start,
        end=result.end,
        checks=result.checks,
        failures=result.failures,
        degraded=result.degraded,
        downtime_seconds=result.downtime_seconds,
        observed_seconds=result.observed_seconds,
        uptime=result.ratio,
    )


@router.get("/state-changes", response_model=StateChangeList)
def list_state_changes(
    session: SessionDep,
    after: Annotated[int, Query(ge=0, description="Only changes with a greater id.")] = 0,
    limit: Limit = 100,
) -> StateChangeList:
    """State changes of components and monitors after the id ``after``, oldest first: follow ``next_after``."""
    changes = state_changes_since(session=session, after_id=after, limit=limit)
    return StateChangeList(
        state_changes=[StateChangeRead.model_validate(c) for c in changes],
        next_after=changes[-1].id if changes else after,
    )


def _monitor(session: Session, monitor_id: str) -> Monitor:
    monitor = session.get(Monitor, monitor_id)
    if monitor is None:
        raise HTTPException(404, f"no monitor with id {monitor_id!r}")
    return monitor
