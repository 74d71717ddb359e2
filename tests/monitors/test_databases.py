"""Postgres and Redis checks against the servers of the development machine (skipped where there are none)."""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.monitors.servers import closed_port
from vigil.monitors import postgres, redis
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import PostgresMonitorSpec, RedisMonitorSpec

pytestmark = pytest.mark.anyio


def _server_url(variable: str, default: str) -> str:
    url = os.environ.get(variable)
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", urlsplit(default).port or 0), timeout=1):
            return default
    except OSError:
        pytest.skip(f"{variable} is unset and nothing listens at {default}")


@pytest.fixture(scope="module")
def postgres_url() -> str:
    return _server_url("VIGIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def redis_url() -> str:
    return _server_url("VIGIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"))


def pg(dsn: str, **fields: Any) -> PostgresMonitorSpec:
    return PostgresMonitorSpec.model_validate({"type": "postgres", "dsn": dsn, **fields})


async def test_postgres_ok(postgres_url: str) -> None:
    result = await postgres.check(pg(postgres_url))
    assert (result.outcome, result.reason) == (Outcome.UP, "query returned 1")
    assert result.details["server_version"] > 100000


async def test_postgres_by_fields(postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    fields = {"host": parts.hostname, "port": parts.port or 5432, "user": parts.username, "dbname": parts.path[1:]}
    spec = PostgresMonitorSpec.model_validate({"type": "postgres", "query": "SELECT 'ready'", **fields})
    result = await postgres.check(spec)
    assert (result.outcome, result.reason) == (Outcome.UP, "query returned ready")


async def test_postgres_refused(postgres_url: str) -> None:
    result = await postgres.check(pg(with_port(postgres_url, closed_port())))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "connection refused")


async def test_postgres_bad_query(postgres_url: str) -> None:
    result = await postgres.check(pg(postgres_url, query="SELEC 1"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, 'query failed: syntax error at or near "SELEC"')
    assert result.details["sqlstate"] == "42601"


async def test_postgres_unknown_database(postgres_url: str) -> None:
    result = await postgres.check(pg(urlunsplit(urlsplit(postgres_url)._replace(path="/vigil_no_such_db"))))
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        'connection failed: FATAL: database "vigil_no_such_db" does not exist',
    )


async def test_postgres_slow_query_times_out(postgres_url: str) -> None:
    result = await postgres.check(pg(postgres_url, query="SELECT pg_sleep(5)", timeout="500ms"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 500 ms while running the query")
    assert result.latency < 3


async def test_redis_ok(redis_url: str) -> None:
    result = await redis.check(RedisMonitorSpec.model_validate({"type": "redis", "url": redis_url}))
    assert (result.outcome, result.reason) == (Outcome.UP, "PONG")


async def test_redis_refused(redis_url: str) -> None:
    spec = RedisMonitorSpec.model_validate({"type": "redis", "url": with_port(redis_url, closed_port())})
    result = await redis.check(spec)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "connection refused")
    assert result.latency < 2


async def test_redis_not_redis(line_port: int) -> None:
    spec = RedisMonitorSpec.model_validate({"type": "redis", "url": f"redis://127.0.0.1:{line_port}"})
    result = await redis.check(spec)
    assert result.outcome is Outcome.DOWN
    assert result.reason.startswith("Redis error: ")
