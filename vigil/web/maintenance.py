"""Maintenance in the JSON API: ``GET /api/v1/maintenance``, ``GET /api/v1/maintenance/{id}``, and the writes
``POST /api/v1/maintenance`` (schedule) and ``POST /api/v1/maintenance/{id}/cancel``, behind the same bearer
token as the incident writes.

Scheduling checks the window with the what-if analysis on the running server's model: critical services at
risk are a 409 listing them (``detail.findings``), unless the body says ``"force": true``. 404 for an unknown
window, 422 with ``detail[].loc`` naming the field for bad input, 503 while the server has no model loaded.
"""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Query, Request

from vigil.maintenance import service
from vigil.maintenance.models import MaintenanceStatus
from vigil.maintenance.schemas import MaintenanceCreate, maintenance_document
from vigil.maintenance.service import MaintenanceAtRiskError, MaintenanceError, MaintenanceNotFoundError
from vigil.model.types import Model
from vigil.web.deps import SessionDep, get_backend
from vigil.web.incidents import Authorized, WriteSession

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/maintenance", tags=["maintenance"])


def _refuse(exc: MaintenanceError) -> NoReturn:
    if isinstance(exc, MaintenanceNotFoundError):
        raise HTTPException(404, str(exc)) from None
    if isinstance(exc, MaintenanceAtRiskError):
        detail = {"message": str(exc), "findings": [f.as_dict() for f in exc.findings]}
        raise HTTPException(409, detail) from None
    field = exc.field or "body"
    raise HTTPException(422, [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}]) from None


def _model(request: Request) -> Model:
    # The runtime's model in force (it changes on reload); the what-if check needs it.
    model: Model | None = getattr(get_backend(request), "model", None)
    if model is None:
        raise HTTPException(503, "the server has no model loaded yet")
    return model


@router.get("")
def list_maintenance(
    session: SessionDep,
    status: Annotated[list[MaintenanceStatus] | None, Query(description="Only windows with these statuses.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Maintenance windows, latest start first."""
    windows = service.list_maintenances(session=session, statuses=status, limit=limit)
    return {"maintenance": [maintenance_document(m) for m in windows]}


@router.get("/{maintenance_id}")
def get_maintenance(maintenance_id: int, session: SessionDep) -> dict[str, Any]:
    """One maintenance window; 404 when there is none."""
    try:
        return maintenance_document(service.get_maintenance(session=session, maintenance_id=maintenance_id))
    except MaintenanceError as exc:
        _refuse(exc)


@router.post("", status_code=201, dependencies=Authorized)
def schedule(body: MaintenanceCreate, request: Request, session: WriteSession) -> dict[str, Any]:
    """Schedule a window; 409 with the findings when it puts critical services at risk and ``force`` is false."""
    model = _model(request)
    try:
        window = service.schedule_maintenance(
            session=session,
            model=model,
            title=body.title,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            components=body.components,
            message=body.message,
            auto_start=body.auto_start,
            auto_complete=body.auto_complete,
            force=body.force,
        )
    except MaintenanceError as exc:
        _refuse(exc)
    session.commit()  # before answering, as the incident writes do
    return maintenance_document(window)


@router.post("/{maintenance_id}/cancel", dependencies=Authorized)
def cancel(maintenance_id: int, session: WriteSession) -> dict[str, Any]:
    """Cancel a scheduled window, or end one in progress; 422 (``status``) when it is already over."""
    try:
        window = service.cancel_maintenance(session=session, maintenance_id=maintenance_id)
    except MaintenanceError as exc:
        _refuse(exc)
    session.commit()
    return maintenance_document(window)
