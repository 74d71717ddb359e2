from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.monitors import heartbeat
from vigil.monitors.heartbeat import HeartbeatState, heartbeat_status
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import HeartbeatMonitorSpec

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("ping", "start", "fail", "outcome", "reason"),
    [
        (ago(30), None, None, Outcome.UP, "last ping 30 min ago (expected every 60 min)"),
        (ago(70), None, None, Outcome.DEGRADED, "late by 10 min, within the 15 min grace; last ping 70 min ago"),
        (ago(80), None, None, Outcome.DOWN, "no ping since 80 min ago (expected every 60 min, grace 15 min)"),
        (None, None, None, Outcome.DOWN, "no ping received yet"),
        (ago(90), ago(5), None, Outcome.UP, "running for 5 min"),
        (ago(90), ago(20), None, Outcome.DOWN, "started 20 min ago and not finished (grace 15 min)"),
        (ago(90), None, ago(3), Outcome.DOWN, "job reported failure 3 min ago"),
        (ago(3), None, ago(90), Outcome.UP, "last ping 3 min ago (expected every 60 min)"),
        (ago(90), ago(2), ago(30), Outcome.DOWN, "last run failed 30 min ago; running again"),
        (ago(-5), None, None, Outcome.UP, "last ping 5 min in the future (clock skew) (expected every 60 min)"),
    ],
)
def test_status(
    ping: datetime | None, start: datetime | None, fail: datetime | None, outcome: Outcome, reason: str
) -> None:
    assert heartbeat_status(ping, start, fail, NOW, HOUR, 15 * 60) == (outcome, reason)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        heartbeat_status(datetime(2024, 5, 1), None, None, NOW, HOUR, 60)


@pytest.mark.anyio
async def test_check_reports_the_state() -> None:
    spec = HeartbeatMonitorSpec.model_validate({"type": "heartbeat", "period": "1h", "grace": "15m", "id": "backup"})
    result = await heartbeat.check(spec, state=HeartbeatState(last_ping=ago(70)), now=NOW)
    assert (result.monitor_id, result.outcome) == ("backup", Outcome.DEGRADED)
    assert result.details == {"last_ping": ago(70).isoformat()}
    naive = await heartbeat.check(spec, state=HeartbeatState(last_ping=datetime(2024, 5, 1)), now=NOW)
    assert (naive.outcome, naive.reason) == (
        Outcome.DOWN,
        "internal error: ValueError: heartbeat times must be timezone-aware (UTC)",
    )
