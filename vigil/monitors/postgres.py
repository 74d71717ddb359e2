"""PostgreSQL checks: connect with psycopg 3 and run a query (``SELECT 1`` by default)."""

from __future__ import annotations

import math
from typing import Any

import psycopg

from vigil.monitors.errors import describe_exception, first_line
from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import PostgresMonitorSpec

__all__ = ["check"]


async def check(spec: PostgresMonitorSpec) -> CheckResult:
    """Return the result of connecting and running ``spec.query``; never raises.

    Down when the connection fails (refused, authentication, unknown database) or the query fails, with the
    server's first line of error ("query failed: syntax error at or near ..."). The connection is not pooled:
    the check measures what a new client goes through.
    """
    return await guarded(spec, lambda progress: _probe(spec, progress))


async def _probe(spec: PostgresMonitorSpec, progress: Progress) -> Verdict:
    progress.step = "while connecting"
    try:
        # libpq wants whole seconds, at least 2; the guard enforces the exact limit anyway.
        connection = await psycopg.AsyncConnection.connect(
            spec.conninfo(),
            autocommit=True,
            connect_timeout=max(2, math.ceil(spec.timeout)),
            application_name="vigil-monitor",
        )
    except psycopg.Error as exc:
        reason = describe_exception(exc, timeout=spec.timeout) or f"connection failed: {_message(exc)}"
        return Verdict(Outcome.DOWN, reason)
    try:
        progress.step = "while running the query"
        details: dict[str, object] = {"server_version": connection.info.server_version}
        try:
            row = await _run(connection, spec.query)
        except psycopg.Error as exc:
            details["sqlstate"] = exc.sqlstate
            return Verdict(Outcome.DOWN, f"query failed: {_message(exc)}", details)
    finally:
        await connection.close()
    if row is None:
        return Verdict(Outcome.UP, "query ran", details)
    details["first_value"] = str(row[0])[:200] if row else None
    return Verdict(Outcome.UP, f"query returned {str(row[0])[:60] if row else 'an empty row'}", details)


async def _run(connection: psycopg.AsyncConnection[Any], query: str) -> tuple[Any, ...] | None:
    """Return the first row of the query's result, or None when it returns no rows or no result set."""
    async with connection.cursor() as cursor:
        # The query comes from the operator's own config, like any monitor command: it is not user input.
        await cursor.execute(query.encode())
        return await cursor.fetchone() if cursor.description is not None else None


def _message(exc: psycopg.Error) -> str:
    # libpq prefixes "connection failed: connection to server at ..., port N failed:"; keep the useful tail.
    text = " ".join(first_line(exc).split())  # libpq pads "FATAL:  role ..." with two spaces
    return text.rsplit(" failed: ", 1)[-1] if text.startswith("connection failed") else text
