from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.dbfixtures import add_monitor, result
from vigil.monitors.models import Outcome, Rollup, RollupPeriod
from vigil.monitors.rollup import (
    Uptime,
    bucket_ceil,
    bucket_floor,
    percentile,
    rollup,
    rollup_due,
    uptime,
)
from vigil.monitors.store import purge_results, record_results

pytest_plugins = ["tests.dbfixtures"]

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
TEN = DAY0 + timedelta(hours=10)
HOUR, DAY = RollupPeriod.HOUR, RollupPeriod.DAY


def _minute(n: int) -> datetime:
    return TEN + timedelta(minutes=n)


def _series(session: Session, outcomes: dict[int, Outcome], minutes: range, monitor: str = "web/http") -> None:
    """One result a minute over ``minutes`` after 10:00, up unless ``outcomes`` says otherwise; latency n ms."""
    rows = [result(monitor, _minute(n), outcomes.get(n, Outcome.UP), latency=(n + 1) / 1000) for n in minutes]
    record_results(session=session, results=rows)


def _rows(session: Session, period: RollupPeriod = HOUR) -> list[Rollup]:
    query = select(Rollup).where(Rollup.period == period).order_by(Rollup.monitor_id, Rollup.bucket_start)
    return list(session.scalars(query))


def test_percentile_interpolates_linearly_like_the_inclusive_method() -> None:
    values = sorted(float(v) for v in [7, 1, 9, 3, 3, 12, 40, 2, 8, 5, 6])
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    assert percentile(values, 0.95) == pytest.approx(cuts[94])
    assert percentile(values, 0.5) == statistics.median(values)
    assert (percentile(values, 0.0), percentile(values, 1.0)) == (1.0, 40.0)
    assert percentile([4.0], 0.99) == 4.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_buckets_are_utc_hours_and_days() -> None:
    moment = datetime(2026, 3, 1, 10, 30, 5, tzinfo=UTC)
    assert bucket_floor(moment, HOUR) == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert bucket_ceil(moment, HOUR) == datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert bucket_ceil(TEN, HOUR) == TEN
    assert bucket_floor(moment, DAY) == DAY0
    assert bucket_ceil(moment, DAY) == DAY0 + timedelta(days=1)
    with pytest.raises(ValueError, match="naive"):
        bucket_floor(datetime(2026, 3, 1), HOUR)


def test_hourly_rollup_counts_results_and_time(session: Session) -> None:
    add_monitor(session)
    outcomes = {n: Outcome.DOWN for n in range(5, 10)} | {30: Outcome.DEGRADED}
    _series(session, outcomes, range(120))
    assert rollup(session=session, period=HOUR, start=TEN, end=TEN + timedelta(hours=2)) == 2
    first, second = _rows(session)
    assert (first.bucket_start, first.checks, first.failures, first.degraded) == (TEN, 60, 5, 1)
    # Down from 10:05 until the first good result at 10:10; the 10:59 result lasts until 11:00.
    assert (first.downtime_seconds, first.observed_seconds) == (300.0, 3600.0)
    answered = sorted(float(n + 1) for n in range(60) if n not in range(5, 10))
    assert first.latency_p50 == pytest.approx(statistics.median(answered))
    assert first.latency_p95 == pytest.approx(percentile(answered, 0.95))
    assert first.latency_p99 == pytest.approx(percentile(answered, 0.99))
    # Nothing after 11:59 yet: its last result covers no time until a next one shows how long it lasted.
    assert (second.checks, second.failures, second.downtime_seconds, second.observed_seconds) == (60, 0, 0.0, 3540.0)


def test_downtime_across_a_boundary_is_split_between_buckets(session: Session) -> None:
    add_monitor(session)
    _series(session, {n: Outcome.DOWN for n in (58, 59, 60, 61)}, range(120))
    rollup(session=session, period=HOUR, start=TEN, end=TEN + timedelta(hours=2))
    assert [row.downtime_seconds for row in _rows(session)] == [120.0, 120.0]


def test_the_result_before_the_range_counts_for_its_start(session: Session) -> None:
    add_monitor(session)
    _series(session, {n: Outcome.DOWN for n in (58, 59)}, range(56, 64))
    rollup(session=session, period=HOUR, start=TEN + timedelta(hours=1), end=TEN + timedelta(hours=2))
    (row,) = _rows(session)
    assert (row.checks, row.failures, row.downtime_seconds) == (4, 0, 0.0)
    rollup(session=session, period=HOUR, start=TEN, end=TEN + timedelta(hours=2))
    assert [(row.checks, row.downtime_seconds) for row in _rows(session)] == [(4, 120.0), (4, 0.0)]


def test_a_long_silence_is_neither_up_nor_down(session: Session) -> None:
    add_monitor(session)
    _series(session, {10: Outcome.DOWN}, range(11))
    _series(session, {}, range(110, 112))  # Vigil was stopped from 10:10 to 11:50
    rollup(session=session, period=HOUR, start=TEN, end=TEN + timedelta(hours=2))
    first, second = _rows(session)
    # The usual gap is a minute: the down result counts for three minutes at most, then nobody was watching.
    assert (first.downtime_seconds, first.observed_seconds) == (180.0, 780.0)
    assert (second.checks, second.observed_seconds) == (2, 60.0)


def test_rollup_is_idempotent_and_takes_in_late_results(session: Session) -> None:
    add_monitor(session)
    add_monitor(session, "db/tcp")
    _series(session, {3: Outcome.DOWN}, range(60))
    _series(session, {}, range(0, 60, 5), monitor="db/tcp")
    span = {"start": TEN, "end": TEN + timedelta(hours=1)}
    assert rollup(session=session, period=HOUR, **span) == 2
    before = [(r.monitor_id, r.checks, r.failures, r.downtime_seconds, r.latency_p95) for r in _rows(session)]
    assert rollup(session=session, period=HOUR, **span) == 2
    session.expire_all()
    assert [(r.monitor_id, r.checks, r.failures, r.downtime_seconds, r.latency_p95) for r in _rows(session)] == before
    record_results(session=session, results=[result("db/tcp", _minute(31), Outcome.DOWN)])  # written late
    rollup(session=session, period=HOUR, **span)
    session.expire_all()
    late = next(row for row in _rows(session) if row.monitor_id == "db/tcp")
    assert (late.checks, late.failures) == (13, 1)
    assert len(_rows(session)) == 2


def test_rolling_up_again_after_the_purge_keeps_the_rollups(session: Session) -> None:
    add_monitor(session)
    _series(session, {}, range(60))
    rollup(session=session, period=HOUR, start=TEN, end=TEN + timedelta(hours=1))
    purge_results(session=session, older_than=TEN + timedelta(days=1))
    assert rollup(session=session, period=HOUR, start=TEN, end=TEN + timedelta(hours=1)) == 0
    assert [row.checks for row in _rows(session)] == [60]


def test_daily_rollup(session: Session) -> None:
    add_monitor(session)
    _series(session, {n: Outcome.DOWN for n in range(10, 20)}, range(0, 24 * 60, 2))  # 10:00 to the next 10:00
    assert rollup(session=session, period=DAY, start=DAY0, end=DAY0 + timedelta(days=2)) == 2
    first, second = _rows(session, DAY)
    assert (first.bucket_start, first.checks, first.failures) == (DAY0, 7 * 60, 5)
    assert first.downtime_seconds == 600.0  # 10:10 until the good result at 10:20
    assert second.checks == 10 * 30  # 00:00 to 09:58


def _day_series(session: Session) -> None:
    # Three days, a result every 10 minutes, down for 30 minutes at 03:00 each day and degraded at noon.
    rows = []
    for step in range(3 * 144):
        at = DAY0 + timedelta(minutes=10 * step)
        minute_of_day = (step % 144) * 10
        outcome = Outcome.DOWN if 180 <= minute_of_day < 210 else Outcome.UP
        outcome = Outcome.DEGRADED if minute_of_day == 720 else outcome
        rows.append(result(at=at, outcome=outcome))
    record_results(session=session, results=rows)


def _numbers(value: Uptime) -> tuple[int, int, int, float, float]:
    return (value.checks, value.failures, value.degraded, value.downtime_seconds, value.observed_seconds)


def test_uptime_is_the_same_from_rollups_and_from_raw_results(session: Session) -> None:
    add_monitor(session)
    _day_series(session)
    ragged = {"start": DAY0 + timedelta(hours=2, minutes=25), "end": DAY0 + timedelta(days=2, hours=13, minutes=7)}
    raw = uptime(session=session, monitor_id="web/http", **ragged)
    assert (raw.checks, raw.failures, raw.degraded, raw.downtime_seconds) == (352, 9, 3, 3 * 1800.0)
    rollup(session=session, period=HOUR, start=DAY0, end=DAY0 + timedelta(days=2, hours=5))
    rollup(session=session, period=DAY, start=DAY0, end=DAY0 + timedelta(days=2))
    mixed = uptime(session=session, monitor_id="web/http", **ragged)
    assert _numbers(mixed) == pytest.approx(_numbers(raw))
    assert mixed.ratio == pytest.approx(1 - raw.downtime_seconds / raw.observed_seconds)


def test_uptime_of_purged_days_comes_from_rollups(session: Session) -> None:
    add_monitor(session)
    _day_series(session)
    whole = {"start": DAY0, "end": DAY0 + timedelta(days=3)}
    raw = uptime(session=session, monitor_id="web/http", **whole)
    rollup(session=session, period=HOUR, start=DAY0, end=DAY0 + timedelta(days=2))
    rollup(session=session, period=DAY, start=DAY0, end=DAY0 + timedelta(days=1))
    # Only the third day keeps raw results; the first is in daily rollups, the second in hourly ones.
    purge_results(session=session, older_than=DAY0 + timedelta(days=2))
    assert _numbers(uptime(session=session, monitor_id="web/http", **whole)) == pytest.approx(_numbers(raw))


def test_uptime_over_a_year_reads_daily_rollups(session: Session) -> None:
    add_monitor(session)
    year_start = DAY0 - timedelta(days=364)
    for day in range(364):
        row = Rollup(
            monitor_id="web/http",
            period=DAY,
            bucket_start=year_start + timedelta(days=day),
            checks=1440,
            failures=1,
            degraded=0,
            downtime_seconds=60.0,
            observed_seconds=86400.0,
        )
        session.add(row)
    _series(session, {}, range(0, 60))  # today, not rolled up yet: from 10:00 to 11:00
    year = uptime(session=session, monitor_id="web/http", start=year_start, end=TEN + timedelta(hours=1))
    assert (year.checks, year.failures, year.downtime_seconds) == (364 * 1440 + 60, 364, 364 * 60.0)
    assert year.observed_seconds == 364 * 86400.0 + 59 * 60
    assert year.ratio == pytest.approx(1 - 364 * 60 / (364 * 86400 + 59 * 60))


def test_uptime_with_nothing_watched_has_no_ratio(session: Session) -> None:
    add_monitor(session)
    empty = uptime(session=session, monitor_id="web/http", start=DAY0, end=DAY0 + timedelta(days=1))
    assert (empty.checks, empty.observed_seconds, empty.ratio) == (0, 0.0, None)


def test_rollup_due_rolls_up_finished_buckets_only(session: Session) -> None:
    add_monitor(session)
    _series(session, {}, range(150))  # 10:00 to 12:29
    now = TEN + timedelta(hours=2, minutes=30)
    assert rollup_due(session=session, now=now) == {HOUR: 2, DAY: 0}
    assert [row.bucket_start for row in _rows(session)] == [TEN, TEN + timedelta(hours=1)]
    # Again later: the hours within the lookback are rolled up again (late results), the new one added.
    assert rollup_due(session=session, now=now + timedelta(hours=1)) == {HOUR: 3, DAY: 0}
    assert rollup_due(session=session, now=DAY0 + timedelta(days=1, minutes=5))[DAY] == 1
