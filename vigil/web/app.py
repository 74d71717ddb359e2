"""The FastAPI app of ``vigil serve``: routers by area, around a backend that the lifespan starts and stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vigil import __version__
from vigil.web import ack, alerts, api, incidents, maintenance, ops, subscribe
from vigil.web.backend import Backend
from vigil.web.pings import PingMiddleware

__all__ = ["create_app"]


def create_app(backend: Backend) -> FastAPI:
    """Return the app serving ``backend``; its lifespan calls ``backend.start()`` and ``backend.stop()``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await backend.start()
        try:
            yield
        finally:
            await backend.stop()

    app = FastAPI(title="Vigil", version=__version__, lifespan=lifespan)
    app.state.backend = backend
    # The pings are not a router: they are answered before FastAPI's routing, which would triple their cost.
    app.add_middleware(PingMiddleware, backend=backend)
    app.include_router(ops.router)
    app.include_router(api.router)
    app.include_router(incidents.router)
    app.include_router(maintenance.router)  # scheduled maintenance (issue 4)
    app.include_router(alerts.router)  # incoming alerts (issue 4): Alertmanager and generic webhooks
    app.include_router(ack.router)  # escalation (issue 4): acknowledge by the signed link in a message
    app.include_router(subscribe.router)  # subscribers (issue 4): subscribe, confirm, unsubscribe, admin list
    return app
