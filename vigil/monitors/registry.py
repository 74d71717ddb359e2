"""The check function for each monitor type, and :func:`run_check`, which runs any of them."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import dns.asyncresolver

from vigil.monitors import command, heartbeat, http, postgres, redis, tcp, tls
from vigil.monitors import dns as dns_check
from vigil.monitors.guard import internal_error
from vigil.monitors.heartbeat import HeartbeatState
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import (
    CommandMonitorSpec,
    DnsMonitorSpec,
    HeartbeatMonitorSpec,
    HttpMonitorSpec,
    MonitorSpec,
    PostgresMonitorSpec,
    RedisMonitorSpec,
    TcpMonitorSpec,
    TlsMonitorSpec,
)

__all__ = ["CHECKS", "CheckContext", "CheckFunction", "HttpClients", "run_check"]


class HttpClients:
    """The shared HTTP clients, one per ``verify_tls`` setting, created on first use; close with ``aclose``.

    ``trust`` replaces the system trust store for verified requests (a private CA). Making an ``HttpClients``
    needs no event loop; the clients themselves are made inside the running loop, on first use.
    """

    def __init__(self, *, trust: ssl.SSLContext | None = None, max_connections: int = http.MAX_CONNECTIONS) -> None:
        self._trust = trust
        # The runtime passes its check concurrency: a lower cap inside the client would queue checks with their
        # timeout running (false "timeout" results under load) instead of the scheduler queueing them as lateness.
        self._max_connections = max_connections
        self._clients: dict[bool, http.HttpClient] = {}

    def for_spec(self, spec: HttpMonitorSpec) -> http.HttpClient:
        """Return the client for the monitor's ``verify_tls`` setting; call it inside the running event loop."""
        client = self._clients.get(spec.verify_tls)
        if client is None:
            verify: bool | ssl.SSLContext = (self._trust or True) if spec.verify_tls else False
            client = self._clients[spec.verify_tls] = http.new_http_client(
                verify=verify, max_connections=self._max_connections
            )
        return client

    async def aclose(self) -> None:
        """Close every client created so far."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> HttpClients:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()


def _no_heartbeat(spec: HeartbeatMonitorSpec) -> HeartbeatState:
    return HeartbeatState()


@dataclass(slots=True)
class CheckContext:
    """What checks share across runs: HTTP clients, trust, DNS resolver, and where heartbeat pings are kept.

    Without ``http``, each HTTP check opens and closes a client of its own (fine for one-off runs, wasteful in
    the scheduler). ``heartbeats`` returns the ping times of a heartbeat monitor; ``now`` is for tests.
    """

    http: HttpClients | None = None
    trust: ssl.SSLContext | None = None
    resolver: dns.asyncresolver.Resolver | None = None
    heartbeats: Callable[[HeartbeatMonitorSpec], HeartbeatState] = field(default=_no_heartbeat)
    now: Callable[[], datetime] | None = None


CheckFunction = Callable[[Any, CheckContext], Awaitable[CheckResult]]


async def _http(spec: HttpMonitorSpec, context: CheckContext) -> CheckResult:
    if context.http is not None:
        return await http.check(spec, client=context.http.for_spec(spec))
    async with HttpClients(trust=context.trust) as clients:
        return await http.check(spec, client=clients.for_spec(spec))


async def _tcp(spec: TcpMonitorSpec, context: CheckContext) -> CheckResult:
    return await tcp.check(spec)


async def _tls(spec: TlsMonitorSpec, context: CheckContext) -> CheckResult:
    return await tls.check(spec, context=context.trust, now=context.now() if context.now else None)


async def _dns(spec: DnsMonitorSpec, context: CheckContext) -> CheckResult:
    return await dns_check.check(spec, resolver=context.resolver)


async def _command(spec: CommandMonitorSpec, context: CheckContext) -> CheckResult:
    return await command.check(spec)


async def _heartbeat(spec: HeartbeatMonitorSpec, context: CheckContext) -> CheckResult:
    now = context.now() if context.now else None
    return await heartbeat.check(spec, state=context.heartbeats(spec), now=now)


async def _postgres(spec: PostgresMonitorSpec, context: CheckContext) -> CheckResult:
    return await postgres.check(spec)


async def _redis(spec: RedisMonitorSpec, context: CheckContext) -> CheckResult:
    return await redis.check(spec)


CHECKS: Mapping[str, CheckFunction] = {
    "http": _http,
    "tcp": _tcp,
    "tls": _tls,
    "dns": _dns,
    "command": _command,
    "heartbeat": _heartbeat,
    "postgres": _postgres,
    "redis": _redis,
}


async def run_check(spec: MonitorSpec, context: CheckContext | None = None) -> CheckResult:
    """Return the result of running the monitor's check; never raises (cancellation aside).

    Anything the check lets out, or a check returning something other than a :class:`CheckResult`, becomes a
    down result "internal error: …".
    """
    started_at = datetime.now(UTC)
    try:
        result: object = await CHECKS[spec.type](spec, context or CheckContext())
    except Exception as exc:
        return CheckResult(_monitor_id(spec), started_at, 0.0, Outcome.DOWN, internal_error(exc))
    if not isinstance(result, CheckResult):
        reason = f"internal error: check returned {type(result).__name__}, not a result"
        return CheckResult(_monitor_id(spec), started_at, 0.0, Outcome.DOWN, reason)
    return result


def _monitor_id(spec: object) -> str:
    try:
        return str(getattr(spec, "monitor_id", "?"))
    except Exception:
        return "?"
