"""The JSON shapes of incidents: the document the API and ``vigil incident ... --json`` print, and the bodies the
write endpoints take (Pydantic: a bad status is refused with the field named)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vigil.incidents.models import TITLE_LIMIT, ComponentStatus, Incident, IncidentStatus

__all__ = ["IncidentCreate", "MergeRequest", "PersonAction", "ResolveRequest", "UpdateCreate", "incident_document"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not silently ignored

    author: str | None = Field(default=None, max_length=200)


class IncidentCreate(_Body):
    title: str = Field(min_length=1, max_length=TITLE_LIMIT)
    components: dict[str, ComponentStatus] = Field(default_factory=dict, description="component id → status")
    status: IncidentStatus = IncidentStatus.INVESTIGATING
    message: str = ""


class UpdateCreate(_Body):
    message: str = ""
    status: IncidentStatus | None = None
    display_at: AwareDatetime | None = None


class PersonAction(_Body):
    pass


class ResolveRequest(_Body):
    message: str = ""


class MergeRequest(_Body):
    into: int = Field(description="The incident that stays.")


def incident_document(incident: Incident, *, timeline: bool = False) -> dict[str, Any]:
    """Return the incident as the JSON API and ``--json`` show it."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    doc: dict[str, Any] = {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status.value,
        "impact": incident.impact.value,
        "probable_cause": incident.probable_cause,
        "auto": incident.auto,
        "taken_over": incident.taken_over,
        "merged_into": incident.merged_into,
        **{
            name: iso(getattr(incident, name))
            for name in ("started_at", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at", "updated_at")
        },
        "components": [{"id": c.component_id, "status": c.status.value} for c in incident.components],
    }
    if timeline:
        doc["timeline"] = [
            {
                "id": u.id,
                "kind": u.kind.value,
                "at": iso(u.at),
                "display_at": iso(u.display_at),
                "status": u.status.value if u.status else None,
                "body": u.body,
                "author": u.author,
                "event_type": u.event_type.value if u.event_type else None,
                "data": u.data,
            }
            for u in incident.updates
        ]
    return doc
