"""What one check run reports: the outcome, how long it took, and a reason a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["CheckResult", "Outcome"]


class Outcome(StrEnum):
    """The verdict of one check run, from best to worst."""

    UP = "up"
    DEGRADED = "degraded"  # answering, but slow, or close to failing (a certificate about to expire)
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of one monitor.

    ``latency`` is the wall time of the whole check in seconds, from the first packet to the verdict (for HTTP,
    reading the body included). ``reason`` is one line for people ("status 503 (expected 200-399)"); ``details``
    holds machine-readable facts (status code, certificate expiry, resolved addresses) with JSON-friendly values.
    """

    monitor_id: str
    started_at: datetime
    latency: float
    outcome: Outcome
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
