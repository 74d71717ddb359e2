"""Operations endpoints: ``/healthz`` for load balancers and supervisors, ``/metrics`` for Prometheus."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import choose_encoder

from vigil.web.backend import Backend

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


# Both are `async def` on purpose: the backend's state belongs to the event loop, and reading it from the
# thread pool would race with the engine changing it.
@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """The backend's health: 200 when its status is "ok", 503 otherwise (body: the details)."""
    backend: Backend = request.app.state.backend
    try:
        health: dict[str, Any] = jsonable_encoder(backend.health())
    except Exception as exc:
        logger.exception("the health check itself failed")
        health = {"status": "failing", "problems": [f"the health check failed: {type(exc).__name__}"]}
    ok = health.get("status") == "ok"
    return JSONResponse(health, status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The backend's metrics in the Prometheus text format (OpenMetrics when the scraper asks for it)."""
    backend: Backend = request.app.state.backend
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(backend.registry), media_type=content_type)
