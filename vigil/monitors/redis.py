"""Redis checks: connect with redis-py's asyncio client and PING."""

from __future__ import annotations

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vigil.monitors.errors import describe_exception, first_line
from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import RedisMonitorSpec

__all__ = ["check"]


async def check(spec: RedisMonitorSpec) -> CheckResult:
    """Return the result of ``PING`` on ``spec.url``; never raises.

    Down when the connection fails, authentication is refused, or the answer is not PONG. Retries are off:
    a monitor must report the first failure, not hide it behind redis-py's reconnect backoff.
    """
    return await guarded(spec, lambda progress: _probe(spec, progress))


async def _probe(spec: RedisMonitorSpec, progress: Progress) -> Verdict:
    progress.step = "waiting for PONG"
    client = redis.asyncio.Redis.from_url(
        spec.url.get_secret_value(),
        socket_connect_timeout=spec.timeout,
        socket_timeout=spec.timeout,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
    )
    try:
        answer = await client.ping()
    except redis.exceptions.AuthenticationError as exc:
        return Verdict(Outcome.DOWN, f"authentication failed: {first_line(exc)}")
    except redis.exceptions.RedisError as exc:
        known = describe_exception(exc, timeout=spec.timeout)
        reason = known or f"Redis error: {first_line(exc) or type(exc).__name__}"
        return Verdict(Outcome.DOWN, reason)
    finally:
        await client.aclose()
    if answer is not True:
        return Verdict(Outcome.DOWN, f"unexpected answer to PING: {answer!r:.60}")
    return Verdict(Outcome.UP, "PONG")
