"""Maintenance in the JSON API and the command line: the request body and the window's document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vigil.maintenance.models import TITLE_LIMIT, Maintenance

__all__ = ["MaintenanceCreate", "maintenance_document"]


class MaintenanceCreate(BaseModel):
    """``POST /api/v1/maintenance``: a window to schedule (times with a zone; without one, UTC)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_LIMIT)
    starts_at: datetime
    ends_at: datetime
    components: list[str]
    message: str = ""
    auto_start: bool = True
    auto_complete: bool = True
    force: bool = False


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def maintenance_document(window: Maintenance) -> dict[str, Any]:
    """Return the window as the API and ``--json`` show it."""
    return {
        "id": window.id,
        "title": window.title,
        "message": window.message,
        "status": window.status.value,
        "starts_at": _iso(window.starts_at),
        "ends_at": _iso(window.ends_at),
        "started_at": _iso(window.started_at),
        "completed_at": _iso(window.completed_at),
        "auto_start": window.auto_start,
        "auto_complete": window.auto_complete,
        "created_at": _iso(window.created_at),
        "components": window.component_ids,
        "forced": window.forced,
        "findings": window.findings or [],
    }
