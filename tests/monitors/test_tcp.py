from __future__ import annotations

from typing import Any

import pytest

from tests.monitors.servers import closed_port
from vigil.monitors import tcp
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import TcpMonitorSpec

pytestmark = pytest.mark.anyio


def spec(port: int, **fields: Any) -> TcpMonitorSpec:
    return TcpMonitorSpec.model_validate({"type": "tcp", "host": "127.0.0.1", "port": port, **fields})


async def test_connects(line_port: int) -> None:
    result = await tcp.check(spec(line_port))
    assert (result.outcome, result.reason) == (Outcome.UP, "connected")
    assert result.monitor_id == f"tcp:127.0.0.1:{line_port}"


async def test_send_and_expect(line_port: int) -> None:
    result = await tcp.check(spec(line_port, send="PING\r\n", expect="PONG"))
    assert (result.outcome, result.reason) == (Outcome.UP, "connected, answer contains 'PONG'")
    assert result.details["answer"] == "+PONG\r\n"


async def test_wrong_answer(line_port: int) -> None:
    result = await tcp.check(spec(line_port, send="HELLO\r\n", expect="PONG"))
    assert result.outcome is Outcome.DOWN
    assert result.reason == "expected 'PONG', connection closed after '-ERR unknown command\\r\\n'"


async def test_refused() -> None:
    result = await tcp.check(spec(closed_port()))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "connection refused")


async def test_accepts_and_never_answers(silent_port: int) -> None:
    # 1 s, not 300 ms: on a machine loaded by the whole suite, connecting alone once took 300 ms, and the reason
    # named the connect step instead of the wait for the answer this test is about.
    result = await tcp.check(spec(silent_port, send="PING\r\n", expect="PONG", timeout="1s"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "timeout after 1 s while waiting for 'PONG'")


async def test_localhost_by_name(line_port: int) -> None:
    assert (await tcp.check(spec(line_port, host="localhost"))).outcome is Outcome.UP
    refused = await tcp.check(spec(closed_port(), host="localhost"))
    assert (refused.outcome, refused.reason) == (Outcome.DOWN, "connection refused")
