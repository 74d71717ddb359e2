"""Heartbeat (push) checks: a job pings Vigil; the check only asks whether the last ping is late.

Receiving pings and generating their tokens happen elsewhere; this module judges the times they left. Each
evaluation is a pure function of those times, so the scheduler can re-evaluate it as often as it likes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import HeartbeatMonitorSpec
from vigil.monitors.texts import seconds_text

__all__ = ["HeartbeatState", "HeartbeatStatus", "check", "heartbeat_status"]


@dataclass(frozen=True, slots=True)
class HeartbeatState:
    """When the job last reported: success (``/ping``), start (``/start``), failure (``/fail``). UTC-aware."""

    last_ping: datetime | None = None
    last_start: datetime | None = None
    last_fail: datetime | None = None


class HeartbeatStatus(NamedTuple):
    outcome: Outcome
    reason: str


def heartbeat_status(
    last_ping: datetime | None,
    last_start: datetime | None,
    last_fail: datetime | None,
    now: datetime,
    period: float,
    grace: float,
) -> HeartbeatStatus:
    """Return the outcome and reason for a job expected every ``period`` seconds, tolerating ``grace`` more.

    - the latest signal is a failure: down until the next success;
    - the latest signal is a start: up while the run is younger than ``grace``, down after (a run that never
      ends is as bad as one that never starts), and still down while running again after a failure;
    - otherwise up until ``period`` after the last ping, degraded (late) within ``grace`` more (grace exists so
      that jitter does not page anyone), then down.
    Nothing received at all is down: pass the monitor's creation time as ``last_ping`` to give a new monitor
    its first period. Raises ValueError for naive datetimes, which cannot be compared with UTC safely.
    """
    for moment in (last_ping, last_start, last_fail, now):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError("heartbeat times must be timezone-aware (UTC)")
    failed_at = last_fail if last_fail is not None and (last_ping is None or last_fail >= last_ping) else None
    if last_start is not None and all(last_start > t for t in (last_ping, last_fail) if t is not None):
        return _running(now - last_start, failed_at, now, grace)
    if failed_at is not None:
        return HeartbeatStatus(Outcome.DOWN, f"job reported failure {_ago(now, failed_at)}")
    if last_ping is None:
        return HeartbeatStatus(Outcome.DOWN, "no ping received yet")
    late = (now - last_ping).total_seconds() - period
    every = f"expected every {seconds_text(period)}"
    if late <= 0:
        return HeartbeatStatus(Outcome.UP, f"last ping {_ago(now, last_ping)} ({every})")
    if late <= grace:
        # Degraded, not up: people see the job is late before it is called down (healthchecks' "late").
        text = f"late by {seconds_text(late)}, within the {seconds_text(grace)} grace; last ping {_ago(now, last_ping)}"
        return HeartbeatStatus(Outcome.DEGRADED, text)
    return HeartbeatStatus(Outcome.DOWN, f"no ping since {_ago(now, last_ping)} ({every}, grace {seconds_text(grace)})")


def _running(elapsed: timedelta, failed_at: datetime | None, now: datetime, grace: float) -> HeartbeatStatus:
    seconds = max(0.0, elapsed.total_seconds())
    if seconds > grace:
        text = f"started {seconds_text(seconds)} ago and not finished (grace {seconds_text(grace)})"
        return HeartbeatStatus(Outcome.DOWN, text)
    if failed_at is not None:
        return HeartbeatStatus(Outcome.DOWN, f"last run failed {_ago(now, failed_at)}; running again")
    return HeartbeatStatus(Outcome.UP, f"running for {seconds_text(seconds)}")


def _ago(now: datetime, moment: datetime) -> str:
    seconds = (now - moment).total_seconds()
    return f"{seconds_text(seconds)} ago" if seconds >= 0 else f"{seconds_text(-seconds)} in the future (clock skew)"


async def check(spec: HeartbeatMonitorSpec, *, state: HeartbeatState, now: datetime | None = None) -> CheckResult:
    """Return the verdict of :func:`heartbeat_status` for ``state`` as a check result; never raises."""

    async def probe(progress: Progress) -> Verdict:
        status = heartbeat_status(
            state.last_ping, state.last_start, state.last_fail, now or datetime.now(UTC), spec.period, spec.grace
        )
        details = {name: moment.isoformat() for name, moment in _named(state) if moment is not None}
        return Verdict(status.outcome, status.reason, details)

    return await guarded(spec, probe)


def _named(state: HeartbeatState) -> list[tuple[str, datetime | None]]:
    return [("last_ping", state.last_ping), ("last_start", state.last_start), ("last_fail", state.last_fail)]
