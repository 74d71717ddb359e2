"""TCP checks: connect, optionally send a line and wait for an expected answer."""

from __future__ import annotations

import asyncio
import contextlib

from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import TcpMonitorSpec

__all__ = ["check"]

_MAX_ANSWER = 64 * 1024  # an expected banner or reply is short; never buffer more than this


async def check(spec: TcpMonitorSpec) -> CheckResult:
    """Return the result of connecting to ``spec.host:spec.port``; never raises.

    Down when the connection fails or times out, or when ``expect`` is set and does not arrive (the connection
    closes first, or the timeout passes); ``send`` is written first when given.
    """
    return await guarded(spec, lambda progress: _probe(spec, progress))


async def _probe(spec: TcpMonitorSpec, progress: Progress) -> Verdict:
    progress.step = "while connecting"
    reader, writer = await asyncio.open_connection(spec.host, spec.port)
    try:
        peer = writer.get_extra_info("peername")
        details: dict[str, object] = {"peer": f"{peer[0]}:{peer[1]}"} if peer else {}
        if spec.send is not None:
            progress.step = "while sending"
            writer.write(spec.send.encode())
            await writer.drain()
        if spec.expect is None:
            return Verdict(Outcome.UP, "connected", details)
        progress.step = f"while waiting for {spec.expect!r}"
        answer = await _read_until(reader, spec.expect.encode())
        details["answer"] = answer[:200].decode(errors="replace")
        if spec.expect.encode() in answer:
            return Verdict(Outcome.UP, f"connected, answer contains {spec.expect!r}", details)
        shown = answer[:60].decode(errors="replace")
        return Verdict(Outcome.DOWN, f"expected {spec.expect!r}, connection closed after {shown!r}", details)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _read_until(reader: asyncio.StreamReader, expected: bytes) -> bytes:
    # Returns at the expected text, end of stream, or the size cap; the guard's timeout bounds the wait.
    answer = b""
    while expected not in answer and len(answer) < _MAX_ANSWER:
        chunk = await reader.read(4096)
        if not chunk:
            break
        answer += chunk
    return answer
