"""What the web app needs from the rest of the server, as a protocol the engine's runtime satisfies."""

from __future__ import annotations

from typing import Any, Protocol

import prometheus_client
import sqlalchemy

from vigil.monitors.pings import PingCommitter

__all__ = ["Backend"]


class Backend(Protocol):
    """The running server behind the app: its database, metrics, ping committer, health and life cycle."""

    @property
    def database(self) -> sqlalchemy.Engine:
        """The engine the read-only JSON API opens sessions on (from FastAPI's thread pool)."""
        ...

    @property
    def registry(self) -> prometheus_client.CollectorRegistry:
        """The metrics the engine maintains; /metrics serialises it (in the event loop)."""
        ...

    @property
    def pings(self) -> PingCommitter:
        """Where heartbeat pings are recorded; started and stopped by :meth:`start` and :meth:`stop`."""
        ...

    def health(self) -> dict[str, Any]:
        """Return ``{"status": "ok" | "failing", ...details}``; called in the event loop, so it must be quick."""
        ...

    async def start(self) -> None:
        """Start everything (scheduler, writers, the ping committer); called once when the app starts."""
        ...

    async def stop(self) -> None:
        """Stop everything; called once when the app shuts down."""
        ...
