from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from tests.dbfixtures import FlakyDatabase
from tests.web.support import T0, TOKEN, counting_commits, ping_times, seed, write_locked
from vigil.db import make_engine
from vigil.monitors.models import PING_BODY_LIMIT, PingKind
from vigil.monitors.pings import DatabaseUnavailableError, Ping, PingCommitter, PingNotRecordedError

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    seed(engine, heartbeats=200)
    return engine


async def test_record_returns_once_the_ping_is_committed(seeded: Engine, db_url: str) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    ping = await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=T0, body="done")
    await committer.stop()
    assert ping == Ping("cron/backup", PingKind.SUCCESS, T0, "done")
    other = make_engine(db_url)  # another engine, so nothing can come from the committer's connection
    try:
        assert ping_times(other, "cron/backup") == (T0, None, None, "done")
    finally:
        other.dispose()
    assert (committer.committed, committer.transactions) == (1, 1)


async def test_unknown_tokens_and_disabled_monitors_give_none(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    assert await committer.record(token="no-such-token", kind=PingKind.SUCCESS, at=T0, body=None) is None
    assert await committer.record(token="gone", kind=PingKind.SUCCESS, at=T0, body=None) is None  # disabled
    await committer.stop()
    assert ping_times(seeded, "cron/gone") == (None, None, None, None)


async def test_concurrent_pings_share_one_transaction(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    with counting_commits(seeded) as commits:
        pings = await asyncio.gather(
            *(committer.record(token=f"job-token-{i}", kind=PingKind.SUCCESS, at=T0, body=None) for i in range(200))
        )
    await committer.stop()
    assert [p.monitor_key if p else None for p in pings] == [f"jobs/job-{i}" for i in range(200)]
    assert len(commits) == 1
    assert all(ping_times(seeded, f"jobs/job-{i}")[0] == T0 for i in range(0, 200, 20))


async def test_max_batch_bounds_a_transaction(seeded: Engine) -> None:
    committer = PingCommitter(seeded, max_batch=50)
    await committer.start()
    with counting_commits(seeded) as commits:
        await asyncio.gather(
            *(committer.record(token=f"job-token-{i}", kind=PingKind.SUCCESS, at=T0, body=None) for i in range(200))
        )
    await committer.stop()
    assert len(commits) == 4
    assert committer.committed == 200


async def test_pings_arriving_during_a_transaction_are_committed_by_the_next_one(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    loop = asyncio.get_running_loop()
    with counting_commits(seeded) as commits:
        with write_locked(seeded):
            first = asyncio.create_task(committer.record(token=TOKEN, kind=PingKind.START, at=T0, body=None))
            await asyncio.sleep(0.2)  # the first transaction now waits for the lock, in the committer's thread
            started = loop.time()
            await asyncio.sleep(0.05)
            assert loop.time() - started < 0.5, "the event loop was blocked by the database"
            later = [
                asyncio.create_task(committer.record(token=f"job-token-{i}", kind=PingKind.FAIL, at=T0, body="x"))
                for i in range(100)
            ]
            await asyncio.sleep(0.1)
            assert not first.done() and committer.pending == 101
        results = await asyncio.gather(first, *later)
    await committer.stop()
    assert all(result is not None for result in results)
    assert len(commits) == 2  # the blocked one, then all 100 that queued behind it


async def test_a_batch_keeps_the_latest_time_of_each_kind_and_the_last_body(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    times = [T0 + timedelta(minutes=m) for m in (3, 1, 2)]
    await asyncio.gather(
        *(committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=t, body=f"run {t.minute}") for t in times),
        committer.record(token=TOKEN, kind=PingKind.START, at=T0, body=None),
    )
    # A retried ping arriving late does not move time backwards.
    await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=T0, body=None)
    await committer.stop()
    assert ping_times(seeded, "cron/backup") == (T0 + timedelta(minutes=3), T0, None, "run 2")


async def test_bodies_are_shortened_and_nul_replaced(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    await committer.record(token=TOKEN, kind=PingKind.FAIL, at=T0, body="a\x00b" + "x" * 5000)
    await committer.stop()
    body = ping_times(seeded, "cron/backup")[3]
    assert body is not None and len(body) == PING_BODY_LIMIT and body.startswith("a\ufffdbx")


async def test_a_ping_the_database_refuses_fails_alone(seeded: Engine, caplog: pytest.LogCaptureFixture) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    bad = committer.record(token=TOKEN, kind=PingKind.FAIL, at=T0, body="\ud800")  # a lone surrogate: not UTF-8
    good = committer.record(token="job-token-1", kind=PingKind.SUCCESS, at=T0, body=None)
    with caplog.at_level(logging.ERROR, "vigil.monitors.pings"):
        results = await asyncio.gather(bad, good, return_exceptions=True)
    await committer.stop()
    assert isinstance(results[0], PingNotRecordedError)
    assert not isinstance(results[0], DatabaseUnavailableError)
    assert results[1] == Ping("jobs/job-1", PingKind.SUCCESS, T0, None)
    assert ping_times(seeded, "cron/backup") == (None, None, None, None)
    assert "refused" in caplog.text


async def test_on_ping_sees_the_committed_ping_and_its_errors_are_only_logged(
    seeded: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = make_engine(db_url)
    seen: list[tuple[Ping, datetime | None]] = []

    def on_ping(ping: Ping) -> None:
        seen.append((ping, ping_times(other, ping.monitor_key)[1]))  # what a new connection sees right now
        raise RuntimeError("listener bug")

    committer = PingCommitter(seeded, on_ping=on_ping)
    await committer.start()
    with caplog.at_level(logging.ERROR, "vigil.monitors.pings"):
        first = await committer.record(token=TOKEN, kind=PingKind.START, at=T0, body=None)
        second = await committer.record(token="job-token-2", kind=PingKind.START, at=T0, body=None)
        assert await committer.record(token="no-such-token", kind=PingKind.START, at=T0, body=None) is None
    await committer.stop()
    other.dispose()
    assert first is not None and second is not None
    assert seen == [(first, T0), (second, T0)]
    assert caplog.text.count("on_ping failed") == 2 and "listener bug" in caplog.text


async def test_database_unavailable_raises_and_records_nothing(flaky_db: FlakyDatabase) -> None:
    seed(flaky_db.direct)
    committer = PingCommitter(flaky_db.engine, retry_after=7.0)
    await committer.start()
    flaky_db.down()
    try:
        with pytest.raises(DatabaseUnavailableError, match="database unavailable") as raised:
            await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=T0, body=None)
        assert raised.value.retry_after == 7.0
    finally:
        flaky_db.up()
    assert ping_times(flaky_db.direct, "cron/backup") == (None, None, None, None)
    later = T0 + timedelta(minutes=1)
    assert await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=later, body=None) is not None
    await committer.stop()
    assert ping_times(flaky_db.direct, "cron/backup")[0] == later
    assert committer.failures == 1


async def test_pings_are_refused_unless_started_and_stop_commits_what_was_taken(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    with pytest.raises(DatabaseUnavailableError, match="not taking pings"):
        await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=T0, body=None)
    await committer.start()
    taken = [
        asyncio.create_task(committer.record(token=f"job-token-{i}", kind=PingKind.SUCCESS, at=T0, body=None))
        for i in range(10)
    ]
    await asyncio.sleep(0)  # they are queued
    await committer.stop()
    assert all(task.done() and task.result() is not None for task in taken)
    with pytest.raises(DatabaseUnavailableError):
        await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=T0, body=None)


async def test_naive_times_and_bad_sizes_are_refused(seeded: Engine) -> None:
    committer = PingCommitter(seeded)
    await committer.start()
    with pytest.raises(ValueError, match="timezone-aware"):
        await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=datetime(2026, 1, 1), body=None)
    await committer.stop()
    with pytest.raises(ValueError, match="max_batch"):
        PingCommitter(seeded, max_batch=0)


async def test_a_full_backlog_is_refused_at_once(seeded: Engine) -> None:
    committer = PingCommitter(seeded, max_pending=5)
    await committer.start()
    with write_locked(seeded):
        queued = [
            asyncio.create_task(committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=T0, body=None))
            for _ in range(5)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(DatabaseUnavailableError, match="waiting"):
            await committer.record(token=TOKEN, kind=PingKind.SUCCESS, at=datetime.now(UTC), body=None)
    assert all(result is not None for result in await asyncio.gather(*queued))
    await committer.stop()
