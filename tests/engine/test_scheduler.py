from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

import vigil.engine.scheduler as module
from vigil.engine.scheduler import STARTUP_RATE, Job, Scheduler, phase_fraction
from vigil.monitors.result import CheckResult, Outcome

pytestmark = pytest.mark.anyio


def ok(key: str) -> CheckResult:
    return CheckResult(key, datetime.now(UTC), 0.001, Outcome.UP, "ok")


class Recorder:
    """Collects what the scheduler hands back, with the monotonic time of each result."""

    def __init__(self) -> None:
        self.results: list[tuple[str, CheckResult, float, float]] = []

    def __call__(self, job: Job[str], result: CheckResult, lateness: float) -> None:
        self.results.append((job.key, result, lateness, time.monotonic()))

    def of(self, key: str) -> list[CheckResult]:
        return [r for k, r, _, _ in self.results if k == key]


async def run_for(scheduler: Scheduler[str], seconds: float) -> None:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)
    scheduler.stop()
    await asyncio.wait_for(task, timeout=10)


async def test_the_first_round_is_squeezed_into_the_startup_spread() -> None:
    recorder = Recorder()

    async def runner(job: Job[str]) -> CheckResult:
        return ok(job.key)

    # At their own phases, 50 jobs at 10 s would mostly not run within the first second; squeezed into a 0.2 s
    # startup spread, every one does (a job whose own phase falls in that second runs again there: by design,
    # from the second run on each is back on its phase). Slack for a loaded machine: 1 s.
    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.2)
    scheduler.set_jobs({f"m{i}": Job(f"m{i}", 10.0, 1.0, "") for i in range(50)})
    await run_for(scheduler, 1.2)
    assert {key for key, _, _, _ in recorder.results} == {f"m{i}" for i in range(50)}
    early_phase = sum(1 for i in range(50) if phase_fraction(f"m{i}") * 10.0 < 1.2)
    assert len(recorder.results) <= 50 + early_phase


async def test_runs_follow_the_interval_without_catch_up_bursts() -> None:
    recorder = Recorder()

    async def runner(job: Job[str]) -> CheckResult:
        return ok(job.key)

    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0, batch_window=0.0)
    scheduler.set_jobs({"a": Job("a", 0.5, 0.1, "")})
    await run_for(scheduler, 1.6)
    # The first run at once, then one per 0.5 s on the grid: three or four, never a burst of catch-up runs.
    assert 3 <= len(recorder.of("a")) <= 4


async def test_phases_spread_runs_over_the_interval() -> None:
    fractions = sorted(phase_fraction(f"web-{i}/http:http://x/{i}") for i in range(1000))
    # Ten equal slices of the interval each get about a tenth of the monitors: no herd at :00.
    buckets = [sum(1 for f in fractions if k / 10 <= f < (k + 1) / 10) for k in range(10)]
    assert min(buckets) > 60
    assert max(buckets) < 140
    assert phase_fraction("a") == phase_fraction("a")  # stable across runs and restarts


async def test_a_check_that_raises_hangs_or_returns_garbage_becomes_a_down_result() -> None:
    recorder = Recorder()

    async def runner(job: Job[str]) -> CheckResult:
        if job.key == "raises":
            raise RuntimeError("boom")
        if job.key == "hangs":
            await asyncio.sleep(3600)
        if job.key == "garbage":
            return "not a result"  # type: ignore[return-value]
        return ok(job.key)

    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0)

    margin = module.HANG_MARGIN
    module.HANG_MARGIN = 0.2
    try:
        jobs = {k: Job(k, 0.4, 0.05, "") for k in ("raises", "hangs", "garbage", "fine")}
        scheduler.set_jobs(jobs)
        await run_for(scheduler, 1.0)
    finally:
        module.HANG_MARGIN = margin
    assert recorder.of("raises")[0].outcome is Outcome.DOWN
    assert "RuntimeError: boom" in recorder.of("raises")[0].reason
    assert recorder.of("hangs")[0].outcome is Outcome.DOWN
    assert "hung" in recorder.of("hangs")[0].reason
    assert "not a result" in recorder.of("garbage")[0].reason
    assert all(r.outcome is Outcome.UP for r in recorder.of("fine"))
    assert len(recorder.of("fine")) >= 2  # the others did not stop the loop
    assert scheduler.stats.crashed >= 3


async def test_concurrency_is_capped() -> None:
    running = 0
    peak = 0

    async def runner(job: Job[str]) -> CheckResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return ok(job.key)

    recorder = Recorder()
    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, max_concurrency=3, startup_spread=0.0)
    scheduler.set_jobs({f"m{i}": Job(f"m{i}", 5.0, 1.0, "") for i in range(12)})
    await run_for(scheduler, 0.5)
    assert peak == 3
    assert len(recorder.results) == 12
    # The wait for a free slot counts as lateness: the last of 12 checks 50 ms each, 3 at a time, waited.
    assert max(lateness for _, _, lateness, _ in recorder.results) >= 0.1


async def test_a_run_still_going_skips_its_next_slot() -> None:
    async def runner(job: Job[str]) -> CheckResult:
        await asyncio.sleep(0.35)
        return ok(job.key)

    recorder = Recorder()
    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0)
    scheduler.set_jobs({"slow": Job("slow", 0.1, 1.0, "")})
    await run_for(scheduler, 0.8)
    assert scheduler.stats.skipped >= 2
    assert 1 <= len(recorder.results) <= 3  # never two runs of one monitor at once


async def test_run_now_and_set_jobs() -> None:
    recorder = Recorder()

    async def runner(job: Job[str]) -> CheckResult:
        return ok(job.key)

    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0)
    scheduler.set_jobs({"a": Job("a", 60.0, 1.0, "v1")})
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.05)
    due_before = scheduler.next_due("a")
    assert scheduler.run_now("a")
    assert not scheduler.run_now("missing")
    await asyncio.sleep(0.05)
    assert len(recorder.of("a")) >= 1
    assert scheduler.next_due("a") == due_before  # an extra run leaves the regular schedule alone
    scheduler.set_jobs({"a": Job("a", 60.0, 1.0, "v1"), "b": Job("b", 60.0, 1.0, "")})
    assert scheduler.next_due("a") == due_before  # unchanged job keeps its phase
    scheduler.set_jobs({"b": Job("b", 60.0, 1.0, "")})
    assert scheduler.next_due("a") is None
    assert set(scheduler.jobs) == {"b"}
    scheduler.stop()
    await asyncio.wait_for(task, timeout=5)


async def test_a_failing_result_handler_does_not_stop_the_loop() -> None:
    calls = 0

    def on_result(job: Job[str], result: CheckResult, lateness: float) -> None:
        nonlocal calls
        calls += 1
        raise ValueError("handler bug")

    async def runner(job: Job[str]) -> CheckResult:
        return ok(job.key)

    scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=on_result, startup_spread=0.0)
    scheduler.set_jobs({"a": Job("a", 0.1, 0.05, "")})
    await run_for(scheduler, 0.45)
    assert calls >= 3


def test_many_new_monitors_spread_their_first_round_at_a_bounded_rate_within_one_interval() -> None:
    async def runner(job: Job[str]) -> CheckResult:
        return ok(job.key)

    def first_runs(count: int, interval: float) -> float:
        scheduler: Scheduler[str] = Scheduler(
            runner=runner, on_result=Recorder(), startup_spread=1.0, clock=lambda: 0.0
        )
        scheduler.set_jobs({f"m{i}": Job(f"m{i}", interval, 1.0, "") for i in range(count)})
        return max(scheduler.next_due(f"m{i}") or 0.0 for i in range(count))

    assert first_runs(100, 60.0) <= 1.0  # few: the configured spread
    assert 3.5 < first_runs(2000, 60.0) <= 2000 / STARTUP_RATE  # many: at most STARTUP_RATE a second
    assert first_runs(2000, 2.0) <= 2.0  # but every one still within its interval


async def test_the_batch_window_widens_when_checks_are_few_and_lateness_stays_within_it() -> None:
    def scheduler(target: int = 10) -> Scheduler[str]:
        return Scheduler(runner=lambda job: asyncio.sleep(0), on_result=lambda *a: None, batch_target=target)  # type: ignore[arg-type, return-value]

    def jobs(count: int, interval: float) -> dict[str, Job[str]]:
        return {f"m{i}": Job(f"m{i}", interval, 0.5, "") for i in range(count)}

    many, few, fixed = scheduler(), scheduler(), scheduler(target=0)
    many.set_jobs(jobs(1000, 5.0))  # 200 checks a second: 20 in every 100 ms, the window stays 100 ms
    few.set_jobs(jobs(1000, 20.0))  # 50 a second: widened until a batch holds 10, 200 ms
    fixed.set_jobs(jobs(1000, 20.0))
    assert many.batch_window == pytest.approx(0.1)
    assert few.batch_window == pytest.approx(0.2)
    assert fixed.batch_window == pytest.approx(0.1)
    few.set_jobs(jobs(3, 60.0))  # a handful of monitors: never beyond MAX_BATCH_WINDOW
    assert few.batch_window == pytest.approx(module.MAX_BATCH_WINDOW)
    few.set_jobs(jobs(1000, 10.0))  # 100 a second: 10 per 100 ms already
    assert few.batch_window == pytest.approx(0.1)
    few.set_jobs(jobs(2, 0.6))  # few, but often: at most a fifth of the shortest interval (two runs never merge)
    assert few.batch_window == pytest.approx(0.12)

    # Runs really start on that window's grid, so lateness is below it: 10 jobs at 1 s (10 a second) → 0.2 s.
    recorder = Recorder()

    async def runner(job: Job[str]) -> CheckResult:
        return ok(job.key)

    timed: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0)
    timed.set_jobs(jobs(10, 1.0))
    assert timed.batch_window == pytest.approx(0.2)
    await run_for(timed, 2.5)
    latenesses = [lateness for _, _, lateness, _ in recorder.results]
    assert len(latenesses) >= 15
    assert max(latenesses) < 0.2 + 0.1  # the window, plus slack for a loaded machine
    assert sum(latenesses) / len(latenesses) > 0.02  # batched: runs wait for the end of their window


async def test_a_hung_check_is_cancelled_by_the_sweep_and_a_stop_from_outside_is_not_a_hang() -> None:
    recorder = Recorder()
    started = asyncio.Event()

    async def runner(job: Job[str]) -> CheckResult:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    margin = module.HANG_MARGIN
    module.HANG_MARGIN = 0.2
    try:
        scheduler: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0)
        scheduler.set_jobs({"slow": Job("slow", 60.0, 0.05, "")})
        task = asyncio.create_task(scheduler.run())
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(0.6)  # timeout 0.05 + margin 0.2, swept every 0.1 s
        assert [r.reason for r in recorder.of("slow")] == [
            "check hung: no answer within 250 ms despite its 50 ms timeout"
        ]
        assert scheduler.in_flight == 0
        scheduler.stop()
        await asyncio.wait_for(task, 5)
    finally:
        module.HANG_MARGIN = margin
    # A check cancelled by someone else (the runtime stopping) is not reported as hung: the cancellation goes on.
    outside: Scheduler[str] = Scheduler(runner=runner, on_result=recorder, startup_spread=0.0)
    outside.set_jobs({"other": Job("other", 60.0, 30.0, "")})
    started.clear()
    task = asyncio.create_task(outside.run())
    await asyncio.wait_for(started.wait(), 5)
    (check,) = list(outside._tasks)
    check.cancel()
    await asyncio.sleep(0.05)
    assert check.cancelled()
    assert recorder.of("other") == []
    outside.stop()
    await asyncio.wait_for(task, 5)
