"""Subscribers over HTTP (issue 4): subscribe, confirm (double opt-in), unsubscribe, and the admin's list.

``POST /api/v1/subscribers`` is public: anyone may ask to be told about some components; an e-mail address
is only used once its owner confirms by the link sent to it. The links' pages follow the ack link's rule: ``GET``
shows a form and changes nothing (mail scanners fetch links), ``POST`` does it. Listing, deleting and approving
webhook subscribers need the bearer token of the incident API. Service: :mod:`vigil.notify.subscribers`.
"""

from __future__ import annotations

import html
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from vigil.config import get_settings
from vigil.db import session_scope
from vigil.monitors.models import Component
from vigil.notify.models import Subscriber, SubscriberKind
from vigil.notify.subscribers import (
    CONFIRM,
    UNSUBSCRIBE,
    InvalidSubscriberError,
    approve,
    check_token,
    components_of,
    confirm,
    delete_subscriber,
    list_subscribers,
    subscribe,
    unsubscribe,
)
from vigil.web.deps import get_backend
from vigil.web.incidents import require_key

__all__ = ["RateLimit", "router"]

router = APIRouter(tags=["subscribers"])


class SubscribeIn(BaseModel):
    """A subscription request: an e-mail ``address`` or a webhook ``url``; ``components`` (default: all)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["email", "webhook"] = "email"
    address: str | None = Field(default=None, max_length=320, description="E-mail address (kind email).")
    url: str | None = Field(default=None, max_length=2000, description="Webhook URL (kind webhook).")
    secret: str | None = Field(default=None, max_length=200, description="HMAC key of a webhook (default: made).")
    components: list[str] | None = Field(default=None, max_length=1000, description="Component ids; none: all.")


def _key(request: Request) -> str:
    settings = getattr(get_backend(request), "settings", None) or get_settings()
    return str(settings.secret_key.get_secret_value())


def _invalid(field: str, message: str) -> JSONResponse:
    # The shape of FastAPI's own 422s, so that clients read one kind of error.
    return JSONResponse({"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]}, 422)


def _public(subscriber: Subscriber, components: list[str] | None) -> dict[str, Any]:
    # Never the tokens or the webhook secret: they are what the links and signatures rest on.
    return {
        "id": subscriber.id,
        "kind": subscriber.kind.value,
        "address": subscriber.address,
        "status": subscriber.status.value,
        "components": None if subscriber.all_components else (components or []),
        "created_at": subscriber.created_at.isoformat() if subscriber.created_at else None,
        "confirmed_at": subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else None,
    }


class RateLimit:
    """At most ``per_hour`` requests per client address, as a token bucket (a burst of ``per_hour``, then one
    every ``3600 / per_hour`` s), in this process's memory: a few lines where a library would bring a store.

    Behind a reverse proxy, run uvicorn with ``--forwarded-allow-ips`` so that the client address is the
    visitor's, not the proxy's. Several server processes each keep their own buckets. At most ``clients``
    addresses are remembered; beyond, the longest idle is forgotten (a fresh bucket for it is the worst case).
    """

    def __init__(self, per_hour: int, *, clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self._clients = clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)
        self._lock = threading.Lock()  # sync endpoints run in a thread pool

    def take(self, address: str) -> float:
        """Take one token for ``address``; return 0 when allowed, else the seconds until one is free."""
        if self.per_hour <= 0:
            return 0.0
        rate = self.per_hour / 3600.0
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(address, (float(self.per_hour), now))
            tokens = min(float(self.per_hour), tokens + (now - at) * rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
            self._buckets[address] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self._clients:
                self._buckets.popitem(last=False)
            return wait


def _limit(request: Request) -> RateLimit:
    limiter: RateLimit | None = getattr(request.app.state, "subscribe_limit", None)
    if limiter is None:
        settings = getattr(get_backend(request), "settings", None) or get_settings()
        limiter = request.app.state.subscribe_limit = RateLimit(int(settings.subscribe_rate_limit))
    return limiter


@router.post("/api/v1/subscribers", status_code=202)
def create_subscriber(body: SubscribeIn, request: Request) -> JSONResponse:
    """Ask to be told about incidents and maintenance of some components; e-mail needs confirming first."""
    wait = _limit(request).take(request.client.host if request.client else "unknown")
    if wait > 0:
        headers = {"Retry-After": str(math.ceil(wait))}
        return JSONResponse({"detail": "too many subscription requests from this address; try later"}, 429, headers)
    kind = SubscriberKind(body.kind)
    field = "address" if kind is SubscriberKind.EMAIL else "url"
    target = body.address if kind is SubscriberKind.EMAIL else body.url
    if not target:
        return _invalid(field, f"{field} is required for a {kind.value} subscriber")
    with session_scope(get_backend(request).database) as session:
        known = session.scalars(select(Component.id).where(Component.retired_at.is_(None))).all()
        try:
            subscriber = subscribe(
                session=session,
                key=_key(request),
                kind=kind,
                address=target,
                components=body.components,
                known_components=known,
                now=datetime.now(UTC),
                secret=body.secret,
            )
        except InvalidSubscriberError as exc:
            session.rollback()
            return _invalid(exc.field, str(exc))
        document = _public(subscriber, body.components)
    return JSONResponse(document, 202)


@router.get("/api/v1/subscribers", dependencies=[Depends(require_key)])
def get_subscribers(
    request: Request, limit: int = Query(100, ge=1, le=1000), after: int = Query(0, ge=0)
) -> dict[str, Any]:
    """List subscribers by id (admin)."""
    with session_scope(get_backend(request).database) as session:
        rows = list_subscribers(session=session, limit=limit, after=after)
        components = components_of(session=session, subscriber_ids=[row.id for row in rows])
        return {"subscribers": [_public(row, components.get(row.id)) for row in rows]}


@router.delete("/api/v1/subscribers/{subscriber_id}", dependencies=[Depends(require_key)], status_code=204)
def remove_subscriber(subscriber_id: int, request: Request) -> None:
    """Delete a subscriber and what is queued for it (admin)."""
    with session_scope(get_backend(request).database) as session:
        if not delete_subscriber(session=session, subscriber_id=subscriber_id):
            raise HTTPException(404, f"no subscriber {subscriber_id}")


@router.post("/api/v1/subscribers/{subscriber_id}/approve", dependencies=[Depends(require_key)])
def approve_subscriber(subscriber_id: int, request: Request) -> dict[str, Any]:
    """Confirm a subscriber by the admin's decision (webhooks have no inbox to confirm from)."""
    with session_scope(get_backend(request).database) as session:
        subscriber = approve(session=session, subscriber_id=subscriber_id, now=datetime.now(UTC))
        if subscriber is None:
            raise HTTPException(404, f"no subscriber {subscriber_id} that can be approved")
        return _public(subscriber, components_of(session=session, subscriber_ids=[subscriber_id]).get(subscriber_id))


# -- the links of the messages ---------------------------------------------------------------------------------
def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


_ACTIONS = {
    CONFIRM: ("Confirm your subscription", "Confirm", "Subscription confirmed"),
    UNSUBSCRIBE: ("Unsubscribe", "Unsubscribe", "Unsubscribed: you will not be told any more"),
}


def _form(purpose: str, token: str, request: Request) -> HTMLResponse:
    if not check_token(_key(request), purpose, token):
        return _page("Link refused", "<p>This link is not valid (mistyped, or not from this server).</p>", 400)
    title, button, _ = _ACTIONS[purpose]
    action = html.escape(f"/subscribe/{purpose}/{token}")
    return _page(title, f'<form method="post" action="{action}"><button type="submit">{button}</button></form>')


async def _act(purpose: str, token: str, request: Request) -> HTMLResponse:
    key = _key(request)
    if not check_token(key, purpose, token):
        return _page("Link refused", "<p>This link is not valid (mistyped, or not from this server).</p>", 400)

    def run() -> bool:
        with session_scope(get_backend(request).database) as session:
            if purpose == CONFIRM:
                return confirm(session=session, key=key, token=token, now=datetime.now(UTC)) is not None
            return unsubscribe(session=session, key=key, token=token) is not None

    if not await run_in_threadpool(run):  # the database is not for the event loop
        return _page("Link no longer valid", "<p>This subscription does not exist or was cancelled.</p>", 410)
    return _page(_ACTIONS[purpose][2], "<p>Done.</p>")


@router.get("/subscribe/confirm/{token}", response_class=HTMLResponse)
def confirm_form(token: str, request: Request) -> HTMLResponse:
    """Show the confirmation button; changes nothing."""
    return _form(CONFIRM, token, request)


@router.post("/subscribe/confirm/{token}", response_class=HTMLResponse)
async def confirm_subscription(token: str, request: Request) -> HTMLResponse:
    """Confirm the subscription of the token (double opt-in)."""
    return await _act(CONFIRM, token, request)


@router.get("/subscribe/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_form(token: str, request: Request) -> HTMLResponse:
    """Show the unsubscribe button; changes nothing."""
    return _form(UNSUBSCRIBE, token, request)


@router.post("/subscribe/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_subscription(token: str, request: Request) -> HTMLResponse:
    """Unsubscribe the subscriber of the token; its queued messages are dropped."""
    return await _act(UNSUBSCRIBE, token, request)
