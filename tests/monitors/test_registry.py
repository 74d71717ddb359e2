from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.monitors.servers import closed_port
from vigil.monitors import registry
from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.heartbeat import HeartbeatState
from vigil.monitors.registry import CheckContext, HttpClients, run_check
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import MONITOR_TYPES, TcpMonitorSpec, parse_monitor

pytestmark = pytest.mark.anyio


def tcp_spec(port: int, **fields: Any) -> TcpMonitorSpec:
    return TcpMonitorSpec.model_validate({"type": "tcp", "host": "127.0.0.1", "port": port, **fields})


def test_every_type_has_a_check() -> None:
    assert set(registry.CHECKS) == set(MONITOR_TYPES)


async def test_guard_turns_exceptions_into_down() -> None:
    async def broken(progress: Progress) -> Verdict:
        raise KeyError("cache")

    result = await guarded(tcp_spec(1), broken)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "internal error: KeyError: 'cache'")


async def test_guard_refuses_garbage() -> None:
    async def garbage(progress: Progress) -> Any:
        return 42

    async def wrong_outcome(progress: Progress) -> Verdict:
        return Verdict("fine", "ok")  # type: ignore[arg-type]

    result = await guarded(tcp_spec(1), garbage)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "internal error: check returned int, not a verdict")
    result = await guarded(tcp_spec(1), wrong_outcome)
    assert result.outcome is Outcome.DOWN
    assert result.reason.startswith("internal error: check returned a malformed verdict")


async def test_guard_enforces_the_timeout_even_on_stubborn_code() -> None:
    async def sleeper(progress: Progress) -> Verdict:
        progress.step = "while sleeping"
        await asyncio.sleep(30)
        return Verdict(Outcome.UP, "woke up")

    result = await guarded(tcp_spec(1, timeout="200ms"), sleeper)
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 200 ms while sleeping")
    assert 0.15 < result.latency < 1


async def test_guard_passes_on_a_cancellation_from_outside_and_leaves_no_timer() -> None:
    # The guard's timeout is a timer of its own: a cancellation that is not its timer's (shutdown, the
    # scheduler's hang sweep) must go on as a cancellation, not become "timeout".
    entered = asyncio.Event()

    async def sleeper(progress: Progress) -> Verdict:
        entered.set()
        await asyncio.sleep(30)
        return Verdict(Outcome.UP, "woke up")

    task = asyncio.create_task(guarded(tcp_spec(1, timeout="300ms"), sleeper))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Its timer was cancelled with it: the time it would have fired passes with this task untouched.
    waiter = asyncio.create_task(asyncio.sleep(0.5))
    await waiter
    assert not waiter.cancelled()

    # A timeout that fires while another cancellation is pending still lets that cancellation through.
    async def outer() -> None:
        current = asyncio.current_task()
        assert current is not None
        asyncio.get_running_loop().call_later(0.1, current.cancel)
        await guarded(tcp_spec(1, timeout="100ms"), sleeper)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(outer())


async def test_guard_degrades_slow_results() -> None:
    async def slow(progress: Progress) -> Verdict:
        await asyncio.sleep(0.05)
        return Verdict(Outcome.UP, "connected")

    result = await guarded(tcp_spec(1, degraded_if={"latency_ms_above": 10}), slow)
    assert result.outcome is Outcome.DEGRADED
    assert result.reason.startswith("slow: ") and result.reason.endswith("(degraded above 10 ms); connected")


async def test_run_check_dispatches(line_port: int) -> None:
    result = await run_check(parse_monitor({"type": "tcp", "host": "127.0.0.1", "port": line_port}))
    assert (result.outcome, result.reason) == (Outcome.UP, "connected")
    refused = await run_check(parse_monitor({"type": "tcp", "host": "127.0.0.1", "port": closed_port()}))
    assert refused.reason == "connection refused"


async def test_run_check_http_with_shared_clients(http_base: str) -> None:
    spec = parse_monitor({"type": "http", "url": f"{http_base}/ok"})
    async with HttpClients() as clients:
        context = CheckContext(http=clients)
        first, second = await run_check(spec, context), await run_check(spec, context)
        assert clients.for_spec(spec) is clients.for_spec(spec)  # type: ignore[arg-type]
    assert first.outcome is second.outcome is Outcome.UP
    assert (await run_check(spec)).outcome is Outcome.UP  # without a context: a client for this one check


def test_http_clients_need_no_event_loop() -> None:
    HttpClients()  # what ``vigil serve`` makes before its loop runs: the sessions come later, on first use


async def test_http_clients_one_per_verify_setting() -> None:
    strict = parse_monitor({"type": "http", "url": "https://example.invalid/"})
    lax = parse_monitor({"type": "http", "url": "https://example.invalid/", "verify_tls": False})
    async with HttpClients() as clients:
        first, second = clients.for_spec(strict), clients.for_spec(lax)  # type: ignore[arg-type]
        assert first is not second
        assert first is clients.for_spec(strict)  # type: ignore[arg-type]
    assert first.closed and second.closed


async def test_run_check_heartbeat_state() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    spec = parse_monitor({"type": "heartbeat", "period": "1h", "grace": "10m"})
    context = CheckContext(heartbeats=lambda spec: HeartbeatState(last_ping=now - timedelta(hours=2)), now=lambda: now)
    result = await run_check(spec, context)
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "no ping since 2 h ago (expected every 60 min, grace 10 min)",
    )
    assert (await run_check(spec)).reason == "no ping received yet"


async def test_run_check_wraps_a_raising_check(monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(spec: Any, context: CheckContext) -> CheckResult:
        raise RuntimeError("boom")

    monkeypatch.setitem(registry.CHECKS, "tcp", explode)
    result = await run_check(tcp_spec(1))
    assert (result.monitor_id, result.outcome, result.reason) == (
        "tcp:127.0.0.1:1",
        Outcome.DOWN,
        "internal error: RuntimeError: boom",
    )


async def test_run_check_wraps_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    async def garbage(spec: Any, context: CheckContext) -> Any:
        return {"status": "up"}

    monkeypatch.setitem(registry.CHECKS, "tcp", garbage)
    result = await run_check(tcp_spec(1))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "internal error: check returned dict, not a result")
