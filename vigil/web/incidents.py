"""Incidents in the JSON API: ``GET /api/v1/incidents[?state=open|resolved]``, ``GET /api/v1/incidents/{id}``
(with its timeline), and the write endpoints.

Until the auth issue lands there are no users: the write endpoints take ``Authorization: Bearer <key>`` where
the key is the server's secret key (``VIGIL_SECRET_KEY``), compared in constant time; anything else is 401.
Reads stay open like the rest of ``/api/v1``. Errors name the field: 404 for an unknown incident, 422 with
``detail[].loc`` for bad input (Pydantic's shape, also for the service's own checks).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sqlalchemy import event
from sqlalchemy.orm import Session

from vigil.config import get_settings
from vigil.db import session_scope
from vigil.incidents import reshape, service
from vigil.incidents.schemas import (
    IncidentCreate,
    MergeRequest,
    PersonAction,
    ResolveRequest,
    UpdateCreate,
    incident_document,
)
from vigil.incidents.service import IncidentError, IncidentNotFoundError
from vigil.notify import deliveries as notify_deliveries
from vigil.web.deps import SessionDep, after_commit, get_backend

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


class Which(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


def _secret(request: Request) -> str:
    # The runtime carries its settings; a backend without them (tests, tools) falls back to the environment's.
    settings = getattr(get_backend(request), "settings", None) or get_settings()
    return str(settings.secret_key.get_secret_value())


def require_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse (401) a request without ``Authorization: Bearer <VIGIL_SECRET_KEY>``."""
    scheme, _, token = (authorization or "").partition(" ")
    secret = _secret(request)
    # compare_digest takes as long for a near miss as for a far one; an empty secret never matches.
    if not secret or scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), secret.encode()):
        message = "a bearer token equal to the server's secret key is needed"
        raise HTTPException(401, message, {"WWW-Authenticate": "Bearer"})


def write_session(request: Request) -> Iterator[Session]:
    """Yield a session committed when the request succeeds (the JSON API's reads roll back instead). Its first
    commit wakes the server's dispatcher, so that the change is told now (notifications.md): from the commit,
    before the answer, since a dependency's code after ``yield`` may run after the answer is sent."""
    told = False

    def tell(_: Session) -> None:
        nonlocal told
        if not told:
            told = True
            after_commit(request, "incidents_changed")

    with session_scope(get_backend(request).database) as session:
        event.listen(session, "after_commit", tell)
        yield session


WriteSession = Annotated[Session, Depends(write_session)]
Authorized = [Depends(require_key)]


def _refuse(exc: IncidentError) -> NoReturn:
    if isinstance(exc, IncidentNotFoundError):
        raise HTTPException(404, str(exc)) from None
    field = exc.field or "body"
    raise HTTPException(422, [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}]) from None


def _written(session: Session, incident_id: int) -> dict[str, Any]:
    # Commit before answering: a dependency's exit code may run after the response is sent, and a client that
    # reads right after a write must find it there (the dependency's own commit then has nothing left to do).
    session.commit()
    return _document(session, incident_id)


def _document(session: Session, incident_id: int) -> dict[str, Any]:
    try:
        return incident_document(service.get_incident(session=session, incident_id=incident_id), timeline=True)
    except IncidentError as exc:
        _refuse(exc)


@router.get("")
def list_incidents(
    session: SessionDep,
    state: Annotated[Which | None, Query(description="open or resolved; all when absent.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Incidents, newest first, without their timelines."""
    which = None if state is None else state is Which.OPEN
    incidents = service.list_incidents(session=session, open_only=which, limit=limit)
    return {"incidents": [incident_document(i) for i in incidents]}


@router.get("/{incident_id}")
def get_incident(incident_id: int, session: SessionDep) -> dict[str, Any]:
    """One incident with its components and timeline; 404 when there is none."""
    return _document(session, incident_id)


@router.get("/{incident_id}/deliveries", dependencies=Authorized)
def get_deliveries(incident_id: int, session: SessionDep) -> dict[str, Any]:
    """The notifications of this incident: each delivery to a channel (status, attempts, last error), and counts
    of the deliveries to subscribers by status. Behind the token: it names channels and their errors."""
    try:
        service.get_incident(session=session, incident_id=incident_id)
    except IncidentError as exc:
        _refuse(exc)
    return notify_deliveries.deliveries_document(session=session, incident_id=incident_id)


@router.post("", status_code=201, dependencies=Authorized)
def open_incident(body: IncidentCreate, session: WriteSession) -> dict[str, Any]:
    """Open an incident; 422 for an unknown component."""
    try:
        incident = service.open_incident(
            session=session,
            title=body.title,
            components=body.components,
            status=body.status,
            body=body.message,
            author=body.author,
        )
    except IncidentError as exc:
        _refuse(exc)
    return _written(session, incident.id)


@router.post("/{incident_id}/updates", status_code=201, dependencies=Authorized)
def post_update(incident_id: int, body: UpdateCreate, session: WriteSession) -> dict[str, Any]:
    """Write an update (Markdown message, optional status, optional public time)."""
    try:
        service.post_update(
            session=session,
            incident_id=incident_id,
            body=body.message,
            status=body.status,
            author=body.author,
            display_at=body.display_at,
        )
    except IncidentError as exc:
        _refuse(exc)
    return _written(session, incident_id)


@router.post("/{incident_id}/ack", dependencies=Authorized)
def acknowledge(incident_id: int, session: WriteSession, body: PersonAction | None = None) -> dict[str, Any]:
    """Acknowledge the incident (the first acknowledgement's time is kept)."""
    try:
        service.acknowledge_incident(session=session, incident_id=incident_id, author=body.author if body else None)
    except IncidentError as exc:
        _refuse(exc)
    return _written(session, incident_id)


@router.post("/{incident_id}/resolve", dependencies=Authorized)
def resolve(incident_id: int, session: WriteSession, body: ResolveRequest | None = None) -> dict[str, Any]:
    """Resolve the incident."""
    body = body or ResolveRequest()
    try:
        service.resolve_incident(session=session, incident_id=incident_id, body=body.message, author=body.author)
    except IncidentError as exc:
        _refuse(exc)
    return _written(session, incident_id)


@router.post("/{incident_id}/merge", dependencies=Authorized)
def merge(incident_id: int, body: MergeRequest, session: WriteSession) -> dict[str, Any]:
    """Merge this incident into ``into``; returns the incident that stays."""
    try:
        reshape.merge_incidents(session=session, source_id=incident_id, target_id=body.into, author=body.author)
    except IncidentError as exc:
        _refuse(exc)
    return _written(session, body.into)
