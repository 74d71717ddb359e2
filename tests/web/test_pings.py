from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine

from tests.dbfixtures import FlakyDatabase
from tests.web.support import TOKEN, LocalBackend, counting_commits, ping_times, seed, serving, write_locked
from vigil.db import make_engine
from vigil.monitors.models import PING_BODY_LIMIT
from vigil.monitors.pings import Ping
from vigil.web.app import create_app

pytest_plugins = ["tests.dbfixtures"]


def test_a_200_means_the_ping_is_committed(base_url: str, db_url: str) -> None:
    before = datetime.now(UTC)
    response = httpx.get(f"{base_url}/ping/{TOKEN}")
    after = datetime.now(UTC)
    assert (response.status_code, response.text) == (200, "OK\n")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    fresh = make_engine(db_url)  # a new engine, a new connection: only what was committed is there
    try:
        last_ping, last_start, last_fail, body = ping_times(fresh, "cron/backup")
    finally:
        fresh.dispose()
    assert last_ping is not None and before <= last_ping <= after
    assert (last_start, last_fail, body) == (None, None, None)


def test_start_fail_and_exit_status_set_their_own_times(base_url: str, engine: Engine) -> None:
    assert httpx.get(f"{base_url}/ping/{TOKEN}/start").status_code == 200
    assert httpx.post(f"{base_url}/ping/{TOKEN}/fail", content=b"disk full").status_code == 200
    last_ping, last_start, last_fail, body = ping_times(engine, "cron/backup")
    assert last_ping is None and last_start is not None and last_fail is not None and last_start < last_fail
    assert body == "disk full"
    assert httpx.post(f"{base_url}/ping/{TOKEN}/0", content=b"ok").status_code == 200
    assert ping_times(engine, "cron/backup")[0] is not None
    assert httpx.get(f"{base_url}/ping/job-token-1/2").status_code == 200
    assert ping_times(engine, "jobs/job-1")[2] is not None  # a non-zero exit status is a failure
    assert httpx.head(f"{base_url}/ping/job-token-2/start/").status_code == 200  # HEAD, trailing slash
    assert ping_times(engine, "jobs/job-2")[1] is not None


def test_unknown_and_malformed_tokens(base_url: str) -> None:
    cases = {
        "/ping/no-such-token": (404, "unknown token"),
        "/ping/gone": (404, "unknown token"),  # its monitor left the config
        "/ping/bad%20token": (400, "malformed token"),
        "/ping/tok.en": (400, "malformed token"),
        "/ping/" + "a" * 129: (400, "malformed token"),
        "/ping/%C3%A9t%C3%A9": (400, "malformed token"),
        f"/ping/{TOKEN}/256": (400, "exit status must be 0 to 255"),
        f"/ping/{TOKEN}/restart": (404, "not found"),
        f"/ping/{TOKEN}/start/now": (404, "not found"),
        "/ping/": (404, "not found"),
    }
    for path, (status, text) in cases.items():
        response = httpx.get(base_url + path)
        assert (response.status_code, response.text.startswith(text)) == (status, True), path
    response = httpx.put(f"{base_url}/ping/{TOKEN}")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST, HEAD"


def test_huge_and_invalid_bodies_are_cut_and_decoded(base_url: str, engine: Engine) -> None:
    with httpx.Client(base_url=base_url) as client:
        response = client.post(f"/ping/{TOKEN}/fail", content=b"\xff" + b"e" * 5_000_000)
        assert response.status_code == 200
        # The same connection still works after the server left most of that body unread.
        assert client.post("/ping/job-token-3", content="é".encode()).status_code == 200
    body = ping_times(engine, "cron/backup")[3]
    assert body == "\ufffd" + "e" * (PING_BODY_LIMIT - 1)
    assert ping_times(engine, "jobs/job-3")[3] == "é"
    assert httpx.post(f"{base_url}/ping/job-token-3", content=b"").status_code == 200
    assert ping_times(engine, "jobs/job-3")[3] == "é"  # an empty body leaves the last one


def test_concurrent_pings_are_group_committed(base_url: str, engine: Engine) -> None:
    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            responses = await asyncio.gather(*(client.get(f"/ping/job-token-{i % 20}") for i in range(200)))
        return [response.status_code for response in responses]

    with counting_commits(engine) as commits:
        statuses = asyncio.run(burst())
    assert statuses == [200] * 200
    assert all(ping_times(engine, f"jobs/job-{i}")[0] is not None for i in range(20))
    # One transaction per ping would be 200; group commit takes whatever arrived during the last commit.
    assert len(commits) <= 50, f"{len(commits)} transactions for 200 pings"


def test_database_unavailable_gives_503_and_acknowledges_nothing(flaky_db: FlakyDatabase) -> None:
    seed(flaky_db.direct)
    backend = LocalBackend(flaky_db.engine, retry_after=7.0)
    with serving(create_app(backend)) as base_url:
        flaky_db.down()
        try:
            response = httpx.get(f"{base_url}/ping/{TOKEN}")
        finally:
            flaky_db.up()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert "not recorded" in response.text
        assert ping_times(flaky_db.direct, "cron/backup")[0] is None
        assert backend.seen == []
        assert httpx.get(f"{base_url}/ping/{TOKEN}").status_code == 200
    assert ping_times(flaky_db.direct, "cron/backup")[0] is not None


def test_on_ping_errors_do_not_break_ingestion(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    seed(engine, heartbeats=2)

    def broken(ping: Ping) -> None:
        raise RuntimeError("engine bug")

    backend = LocalBackend(engine, on_ping=broken)
    with caplog.at_level(logging.ERROR), serving(create_app(backend)) as base_url:
        statuses = [httpx.get(f"{base_url}/ping/job-token-{i}").status_code for i in range(2)]
    assert statuses == [200, 200]
    assert [ping.monitor_key for ping in backend.seen] == ["jobs/job-0", "jobs/job-1"]
    assert "engine bug" in caplog.text


def test_a_slow_database_does_not_block_the_server(base_url: str, engine: Engine) -> None:
    results: list[int] = []
    with write_locked(engine):
        pinger = threading.Thread(target=lambda: results.append(httpx.get(f"{base_url}/ping/{TOKEN}").status_code))
        pinger.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert httpx.get(f"{base_url}/healthz").status_code == 200
        assert time.monotonic() - started < 1.0
        assert results == []  # still waiting for its commit
    pinger.join(timeout=10)
    assert results == [200]
