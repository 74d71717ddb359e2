"""Hourly and daily aggregates of check results, and uptime over any range from them.

Raw results are purged after ``result_retention_days``; rollups are what a year of uptime is computed from.
Buckets are UTC hours and days. Everything is computed in Python from rows both databases return alike, so
SQLite and PostgreSQL give the same numbers.

Time accounting: a result stands for the monitor's state from its start until the next result, but for at most
:data:`GAP_FACTOR` times the monitor's usual interval (the median gap between its results). A longer silence
means Vigil was not looking (stopped, monitor paused), and time not watched is neither up nor down: it counts
in neither ``downtime_seconds`` nor ``observed_seconds``, and uptime is one minus their ratio.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vigil.monitors.models import CheckResult, Monitor, Outcome, Rollup, RollupPeriod

__all__ = [
    "GAP_FACTOR",
    "PERIOD_LENGTH",
    "Uptime",
    "bucket_ceil",
    "bucket_floor",
    "percentile",
    "rollup",
    "rollup_due",
    "uptime",
]

GAP_FACTOR = 3
PERIOD_LENGTH = {RollupPeriod.HOUR: timedelta(hours=1), RollupPeriod.DAY: timedelta(days=1)}
_UPSERT_CHUNK = 500
_KEY = ("monitor_id", "period", "bucket_start")


@dataclass(frozen=True, slots=True)
class _Sample:
    at: datetime
    latency_ms: float
    outcome: Outcome


@dataclass(slots=True)
class _Stats:
    checks: int = 0
    failures: int = 0
    degraded: int = 0
    downtime: float = 0.0
    observed: float = 0.0

    latencies: list[float] = field(default_factory=list)  # of the answers (not down), sorted once complete

    def add(self, other: _Stats) -> _Stats:
        self.checks += other.checks
        self.failures += other.failures
        self.degraded += other.degraded
        self.downtime += other.downtime
        self.observed += other.observed
        return self


@dataclass(frozen=True, slots=True)
class Uptime:
    """What a monitor did over ``[start, end)``: counts and seconds, from rollups and raw results."""

    monitor_id: str
    start: datetime
    end: datetime
    checks: int
    failures: int
    degraded: int
    downtime_seconds: float
    observed_seconds: float

    @property
    def ratio(self) -> float | None:
        """Return the share of watched time that was not down (0 to 1), or None when nothing was watched."""
        if self.observed_seconds <= 0:
            return None
        return max(0.0, 1.0 - self.downtime_seconds / self.observed_seconds)


def bucket_floor(moment: datetime, period: RollupPeriod) -> datetime:
    """Return the start of the UTC hour or day holding ``moment`` (which must be timezone-aware)."""
    moment = _utc(moment)
    moment = moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if period is RollupPeriod.DAY else moment


def bucket_ceil(moment: datetime, period: RollupPeriod) -> datetime:
    """Return ``moment`` if it starts a bucket, else the start of the next one."""
    floor = bucket_floor(moment, period)
    return floor if floor == _utc(moment) else floor + PERIOD_LENGTH[period]


def percentile(ordered: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile (0 to 1) of sorted values, interpolating linearly between ranks.

    The same definition as PostgreSQL's ``percentile_cont`` and NumPy's default. Raises ValueError when empty.
    """
    if not ordered:
        raise ValueError("percentile of no values")
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rollup(
    *, session: Session, period: RollupPeriod, start: datetime, end: datetime, monitor_ids: Sequence[str] | None = None
) -> int:
    """Aggregate results into the ``period`` buckets covering ``[start, end)``; return how many rows were written.

    Idempotent: a bucket rolled up again is replaced, so late results (written after an outage of the database)
    are taken in by running it again. Buckets without results are left as they are, so rolling up a range
    whose raw results were already purged does not erase its rollups. Roll up only finished buckets; a bucket
    rolled up early is complete once rolled up again. All monitors unless ``monitor_ids`` is given.
    """
    length = PERIOD_LENGTH[period]
    first, last = bucket_floor(start, period), bucket_ceil(end, period)
    count = (last - first) // length
    if count <= 0:
        return 0
    ids = monitor_ids if monitor_ids is not None else session.scalars(select(Monitor.id).order_by(Monitor.id)).all()
    rows: list[dict[str, Any]] = []
    for monitor_id in ids:
        samples = _samples(session, monitor_id, first, last)
        buckets = _aggregate(samples, first, length, count)
        for index, stats in enumerate(buckets):
            if stats.checks or stats.observed:
                rows.append(_row(monitor_id, period, first + index * length, stats))
    _upsert(session, rows)
    return len(rows)


def rollup_due(*, session: Session, now: datetime, lookback: timedelta = timedelta(hours=6)) -> dict[RollupPeriod, int]:
    """Roll up every finished bucket not rolled up yet, and again those that ended within ``lookback``.

    Meant to run periodically (hourly); the lookback takes in results written late. Returns rows written per
    period.
    """
    written: dict[RollupPeriod, int] = {}
    for period, length in PERIOD_LENGTH.items():
        end = bucket_floor(now, period)
        latest = session.scalar(select(func.max(Rollup.bucket_start)).where(Rollup.period == period))
        if latest is not None:
            start = min(latest + length, end - lookback)
        else:
            start = session.scalar(select(func.min(CheckResult.started_at))) or end
        written[period] = rollup(session=session, period=period, start=min(start, end), end=end)
    return written


def uptime(*, session: Session, monitor_id: str, start: datetime, end: datetime) -> Uptime:
    """Return what the monitor did over ``[start, end)``.

    Whole days come from daily rollups and whole hours from hourly ones, as far as those exist; the rest (the
    recent part not rolled up yet, and partial hours at the edges) from raw results. So a year costs a few
    hundred rows, and the last minutes are exact.
    """
    start, end = _utc(start), _utc(end)
    rolled_until: dict[RollupPeriod, datetime | None] = {}
    for period, length in PERIOD_LENGTH.items():
        latest = session.scalar(
            select(func.max(Rollup.bucket_start)).where(Rollup.monitor_id == monitor_id, Rollup.period == period)
        )
        rolled_until[period] = None if latest is None else latest + length
    levels = [RollupPeriod.DAY, RollupPeriod.HOUR]
    stats = _cover(session, monitor_id, start, end, levels, rolled_until)
    return Uptime(
        monitor_id=monitor_id,
        start=start,
        end=end,
        checks=stats.checks,
        failures=stats.failures,
        degraded=stats.degraded,
        downtime_seconds=stats.downtime,
        observed_seconds=stats.observed,
    )


def _cover(
    session: Session,
    monitor_id: str,
    start: datetime,
    end: datetime,
    levels: list[RollupPeriod],
    rolled_until: dict[RollupPeriod, datetime | None],
) -> _Stats:
    # The coarsest level takes the whole buckets it has rolled up; the edges left go to the next finer level,
    # and what no level covers to the raw results.
    if start >= end:
        return _Stats()
    if not levels:
        samples = _samples(session, monitor_id, start, end)
        return _aggregate(samples, start, end - start, 1)[0]
    period, finer = levels[0], levels[1:]
    low = bucket_ceil(start, period)
    until = rolled_until[period]
    high = bucket_floor(end, period) if until is None else min(bucket_floor(end, period), until)
    if until is None or high <= low:
        return _cover(session, monitor_id, start, end, finer, rolled_until)
    middle = _sum_rollups(session, monitor_id, period, low, high)
    middle.add(_cover(session, monitor_id, start, low, finer, rolled_until))
    return middle.add(_cover(session, monitor_id, high, end, finer, rolled_until))


def _sum_rollups(session: Session, monitor_id: str, period: RollupPeriod, start: datetime, end: datetime) -> _Stats:
    query = select(
        func.count(),
        func.coalesce(func.sum(Rollup.checks), 0),
        func.coalesce(func.sum(Rollup.failures), 0),
        func.coalesce(func.sum(Rollup.degraded), 0),
        func.coalesce(func.sum(Rollup.downtime_seconds), 0.0),
        func.coalesce(func.sum(Rollup.observed_seconds), 0.0),
    ).where(
        Rollup.monitor_id == monitor_id,
        Rollup.period == period,
        Rollup.bucket_start >= start,
        Rollup.bucket_start < end,
    )
    _, checks, failures, degraded, downtime, observed = session.execute(query).one()
    return _Stats(int(checks), int(failures), int(degraded), float(downtime), float(observed))


def _samples(session: Session, monitor_id: str, start: datetime, end: datetime) -> list[_Sample]:
    """Return the results in ``[start, end)`` with the last one before and the first one after, in time order.

    The neighbours say how long the edge results lasted; three queries that each walk the
    (monitor_id, started_at) index.
    """
    columns = select(CheckResult.started_at, CheckResult.latency_ms, CheckResult.outcome).where(
        CheckResult.monitor_id == monitor_id
    )
    order = (CheckResult.started_at, CheckResult.id)
    before = columns.where(CheckResult.started_at < start).order_by(*(c.desc() for c in order)).limit(1)
    inside = columns.where(CheckResult.started_at >= start, CheckResult.started_at < end).order_by(*order)
    after = columns.where(CheckResult.started_at >= end).order_by(*order).limit(1)
    rows = [*session.execute(before), *session.execute(inside), *session.execute(after)]
    return [_Sample(at, latency, Outcome(outcome)) for at, latency, outcome in rows]


def _aggregate(samples: list[_Sample], first: datetime, length: timedelta, count: int) -> list[_Stats]:
    """Return the stats of each of ``count`` buckets of ``length`` starting at ``first``."""
    buckets = [_Stats() for _ in range(count)]
    cap = _gap_cap(samples)
    for position, sample in enumerate(samples):
        index = (sample.at - first) // length
        if 0 <= index < count:
            stats = buckets[index]
            stats.checks += 1
            if sample.outcome is Outcome.DOWN:
                stats.failures += 1
            else:
                # Only answers: a down result's latency is how long it took to give up, not the service's speed.
                stats.latencies.append(sample.latency_ms)
                stats.degraded += int(sample.outcome is Outcome.DEGRADED)
        if position + 1 < len(samples):
            lasted_until = min(samples[position + 1].at, sample.at + cap)
            _spread(buckets, first, length, (sample.at, lasted_until), down=sample.outcome is Outcome.DOWN)
    for stats in buckets:
        stats.latencies.sort()
    return buckets


def _spread(
    buckets: list[_Stats], first: datetime, length: timedelta, span: tuple[datetime, datetime], *, down: bool
) -> None:
    # Split the span over the buckets it overlaps (usually one, two across a boundary).
    moment, end = span
    while moment < end:
        index = (moment - first) // length
        if index >= len(buckets):
            return
        until = min(end, first + (index + 1) * length)
        if index >= 0:
            seconds = (until - moment).total_seconds()
            buckets[index].observed += seconds
            buckets[index].downtime += seconds if down else 0.0
        moment = until


def _gap_cap(samples: list[_Sample]) -> timedelta:
    gaps = [(later.at - earlier.at).total_seconds() for earlier, later in itertools.pairwise(samples)]
    positive = [gap for gap in gaps if gap > 0]
    return timedelta(seconds=statistics.median(positive) * GAP_FACTOR) if positive else timedelta(0)


def _row(monitor_id: str, period: RollupPeriod, bucket_start: datetime, stats: _Stats) -> dict[str, Any]:
    def quantile(q: float) -> float | None:
        return percentile(stats.latencies, q) if stats.latencies else None

    return {
        "monitor_id": monitor_id,
        "period": period,
        "bucket_start": bucket_start,
        "checks": stats.checks,
        "failures": stats.failures,
        "degraded": stats.degraded,
        "latency_p50": quantile(0.50),
        "latency_p95": quantile(0.95),
        "latency_p99": quantile(0.99),
        "downtime_seconds": stats.downtime,
        "observed_seconds": stats.observed,
    }


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    # Both dialects spell INSERT ... ON CONFLICT DO UPDATE alike, but each through its own construct.
    if dialect == "postgresql":
        pg_insert = postgresql.insert(Rollup)
        upsert: Insert = pg_insert.on_conflict_do_update(index_elements=_KEY, set_=_replaced(pg_insert.excluded))
    elif dialect == "sqlite":
        lite_insert = sqlite.insert(Rollup)
        upsert = lite_insert.on_conflict_do_update(index_elements=_KEY, set_=_replaced(lite_insert.excluded))
    else:
        raise NotImplementedError(f"rollups need SQLite or PostgreSQL, not {dialect}")
    for offset in range(0, len(rows), _UPSERT_CHUNK):
        session.execute(upsert, rows[offset : offset + _UPSERT_CHUNK])
    session.flush()


def _replaced(excluded: Any) -> dict[str, Any]:
    return {column.key: excluded[column.key] for column in Rollup.__table__.columns if column.key not in _KEY}


def _utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: rollups work on timezone-aware UTC times")
    return moment.astimezone(UTC)
