"""Incoming alerts in the JSON API (docs/alerts.md).

- ``POST /api/v1/integrations/alertmanager``: Prometheus Alertmanager's webhook, payload version 4.
- ``POST /api/v1/integrations/webhook``: the generic webhook ``{"id", "component", "status", "summary"}``.
- ``GET /api/v1/alerts``: the alerts recorded (mapped or not), open like the rest of ``/api/v1``.

The webhooks take ``Authorization: Bearer <VIGIL_INTEGRATION_TOKEN>``, compared in constant time: 401 for a
missing or wrong token, 503 while no token is configured (nobody can post). A malformed payload is 422 with
``detail[].loc`` naming the field, and nothing is written; an unreadable mapping file is 503 (the payload is
fine: Alertmanager retries later).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sqlalchemy.exc import IntegrityError

from vigil.alerts.mapping import AlertMapping, AlertMappingError, load_mapping
from vigil.alerts.models import AlertStatus
from vigil.alerts.schemas import AlertmanagerWebhook, GenericWebhook
from vigil.alerts.service import Incoming, alert_document, from_alertmanager, from_webhook, list_alerts, receive_alerts
from vigil.config import Settings, get_settings
from vigil.db import session_scope
from vigil.web.deps import SessionDep, after_commit, get_backend

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _settings(request: Request) -> Settings:
    # The runtime carries its settings; a backend without them (tests, tools) falls back to the environment's.
    settings: Settings = getattr(get_backend(request), "settings", None) or get_settings()
    return settings


def require_integration_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """Refuse a request without ``Authorization: Bearer <VIGIL_INTEGRATION_TOKEN>`` (401), or any while no token
    is configured (503)."""
    token = _settings(request).integration_token.get_secret_value()
    if not token:
        raise HTTPException(503, "no token configured: set VIGIL_INTEGRATION_TOKEN to accept alerts")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(
            401, "a bearer token equal to VIGIL_INTEGRATION_TOKEN is needed", {"WWW-Authenticate": "Bearer"}
        )


Authorized = [Depends(require_integration_token)]


def _mapping(request: Request) -> AlertMapping:
    try:
        return load_mapping(_settings(request).alert_mapping)
    except AlertMappingError as exc:
        raise HTTPException(503, str(exc)) from None


def _receive(request: Request, items: list[Incoming]) -> dict[str, Any]:
    mapping = _mapping(request)
    for attempt in range(2):
        try:
            # Committed when the block ends, before the answer: a client reading right after finds it.
            backend = get_backend(request)
            with session_scope(backend.database) as session:
                receipt = receive_alerts(session=session, alerts=items, mapping=mapping, now=datetime.now(UTC))
                answer = {
                    "alerts": [
                        {"fingerprint": a.fingerprint, "status": a.status.value, "component_id": a.component_id}
                        | ({"note": a.note} if a.note else {})
                        for a in receipt.alerts
                    ],
                    "state_changes": len(receipt.changes),
                }
            # Committed: the engine folds the firing alerts into its components' states (worse of alerts and
            # monitors, and the model's blast radius from there). A backend without an engine has no hook.
            after_commit(request, "alerts_changed")
            return answer
        except IntegrityError:
            # Two deliveries of a new fingerprint at once: the loser's insert hits the unique key; once more
            # finds the winner's row and updates it.
            if attempt:
                raise
    raise AssertionError("unreachable")


@router.post("/integrations/alertmanager", dependencies=Authorized)
def alertmanager(body: AlertmanagerWebhook, request: Request) -> dict[str, Any]:
    """Record an Alertmanager notification; firing alerts take their components down, resolved bring them up."""
    return _receive(request, from_alertmanager(body))


@router.post("/integrations/webhook", dependencies=Authorized)
def webhook(body: GenericWebhook, request: Request) -> dict[str, Any]:
    """Record a generic alert: ``down``/``degraded`` fire it, ``up`` resolves it (the same ``id`` is one alert)."""
    return _receive(request, [from_webhook(body)])


@router.get("/alerts")
def alerts(
    session: SessionDep,
    status: Annotated[AlertStatus | None, Query(description="firing or resolved; all when absent.")] = None,
    unmapped: Annotated[bool | None, Query(description="true: only alerts mapped to no component.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The alerts recorded, last seen first."""
    found = list_alerts(session=session, status=status, unmapped=unmapped, limit=limit)
    return {"alerts": [alert_document(a) for a in found]}
