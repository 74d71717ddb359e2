"""Acknowledging an incident by the link in a message (escalation, issue 4): ``/ack/<token>``.

``GET`` only shows what would be acknowledged and a form (no JavaScript): link previewers and mail scanners
fetch links, and must not acknowledge anything. ``POST`` acknowledges, recording who (the optional name typed
in the form) and when in the timeline. A bad token is 400, an expired one 410, each with the reason, and
nothing changes. Tokens: :mod:`vigil.notify.escalation`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from vigil.config import get_settings
from vigil.db import session_scope
from vigil.incidents.service import IncidentError, IncidentNotFoundError, acknowledge_incident, get_incident
from vigil.notify.escalation import AckTokenError, read_ack_token
from vigil.web.deps import after_commit, get_backend

__all__ = ["router"]

router = APIRouter(tags=["ack"])
NAME_LIMIT = 200


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(
        text, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def _incident_id(request: Request, token: str) -> int | HTMLResponse:
    settings = getattr(get_backend(request), "settings", None) or get_settings()
    try:
        return read_ack_token(settings.secret_key.get_secret_value(), token, datetime.now(UTC))
    except AckTokenError as exc:
        return _page("Link refused", f"<p>{html.escape(str(exc))}.</p>", 410 if exc.expired else 400)


@router.get("/ack/{token}", response_class=HTMLResponse)
def ack_form(token: str, request: Request) -> HTMLResponse:
    """Show the incident and a form that acknowledges it; changes nothing."""
    found = _incident_id(request, token)
    if isinstance(found, HTMLResponse):
        return found
    with session_scope(get_backend(request).database) as session:
        try:
            incident = get_incident(session=session, incident_id=found)
        except IncidentNotFoundError as exc:
            return _page("Unknown incident", f"<p>{html.escape(str(exc))}.</p>", 404)
        title = f"Incident #{incident.id}: {incident.title}"
        done = incident.acknowledged_at
        state = f"Status: {incident.status.value}, impact: {incident.impact.value}."
        if done is not None:
            state += f" Already acknowledged at {done.isoformat()}."
        session.rollback()
    form = (
        f"<p>{html.escape(state)}</p>"
        f'<form method="post" action="/ack/{html.escape(token)}">'
        f'<label>Your name <input name="name" maxlength="{NAME_LIMIT}"></label> '
        '<button type="submit">Acknowledge</button></form>'
    )
    return _page(title, form)


@router.post("/ack/{token}", response_class=HTMLResponse)
async def ack(token: str, request: Request) -> HTMLResponse:
    """Acknowledge the incident of the token, with the name of the form (if any) as the author."""
    found = _incident_id(request, token)
    if isinstance(found, HTMLResponse):
        return found
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    name = (form.get("name") or [""])[0].strip()[:NAME_LIMIT] or None
    author = f"{name} (ack link)" if name else "someone with the ack link"
    incident_id = found

    def acknowledge() -> str:
        with session_scope(get_backend(request).database) as session:
            incident = acknowledge_incident(session=session, incident_id=incident_id, author=author)
            return f"Incident #{incident.id} acknowledged"

    try:
        title = await run_in_threadpool(acknowledge)  # the database is not for the event loop
        after_commit(request, "incidents_changed")  # the acknowledgement is told now
    except IncidentNotFoundError as exc:
        return _page("Unknown incident", f"<p>{html.escape(str(exc))}.</p>", 404)
    except IncidentError as exc:
        return _page("Not acknowledged", f"<p>{html.escape(str(exc))}.</p>", 409)
    return _page(title, "<p>Thank you: reminders and escalation stop.</p>")
