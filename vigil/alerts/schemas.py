"""The payloads Vigil accepts: Prometheus Alertmanager's webhook (version 4) and the generic JSON webhook.

Alertmanager's top level may grow new keys (``truncatedAlerts`` came late), so unknown top-level and alert keys
are ignored; a missing or ill-typed known key is refused (422 naming it), and so is any ``version`` but "4".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from vigil.alerts.models import FINGERPRINT_LIMIT, AlertStatus

__all__ = ["AlertmanagerAlert", "AlertmanagerWebhook", "GenericStatus", "GenericWebhook"]


class AlertmanagerAlert(BaseModel):
    """One alert of a notification; ``endsAt`` is ``0001-01-01T00:00:00Z`` while it fires (Alertmanager's zero)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime | None = Field(default=None, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=FINGERPRINT_LIMIT)


class AlertmanagerWebhook(BaseModel):
    """A webhook notification of Alertmanager, payload version 4."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert]


class GenericStatus(StrEnum):
    DOWN = "down"
    DEGRADED = "degraded"
    UP = "up"


class GenericWebhook(BaseModel):
    """``{"id", "component", "status", "summary"}``: the same ``id`` again updates the same alert."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=FINGERPRINT_LIMIT)
    component: str = Field(min_length=1, max_length=200)
    status: GenericStatus
    summary: str = Field(default="", max_length=1000)
    labels: dict[str, str] = Field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
