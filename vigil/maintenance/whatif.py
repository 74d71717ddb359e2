"""The what-if check of a maintenance window: which critical services it puts at risk. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vigil.analysis.report import what_if
from vigil.model.types import Model, State, Tier

__all__ = ["Finding", "check_window"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A critical service the window takes down (``status`` down) or leaves exposed to one more failure."""

    service: str
    tier: str
    status: str  # up, degraded or down during the window
    new_spofs: tuple[str, ...]  # single failures that would take it down during the window only

    @property
    def summary(self) -> str:
        if self.status == "down":
            return f"{self.service}: down during the window"
        return f"{self.service}: no redundancy left, one failure of {', '.join(self.new_spofs)} takes it down"

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "tier": self.tier, "status": self.status, "new_spofs": list(self.new_spofs)}


def check_window(model: Model, components: Iterable[str]) -> list[Finding]:
    """Return the critical services at risk while ``components`` are in maintenance, in the model's order.

    Raises KeyError for an id the model lacks (the caller validates first).
    """
    states = dict.fromkeys(components, State.MAINTENANCE)
    # Order 1 is enough: a new single point of failure is what "lost its last redundancy" means.
    report = what_if(model, states=states, max_order=1)
    findings = []
    for service in report.services:
        if service.tier != Tier.CRITICAL.value:
            continue
        if service.status == "down" or service.new_spofs:
            findings.append(Finding(service.id, service.tier, service.status, tuple(service.new_spofs)))
    return findings
