"""Command checks: run a program (never through a shell), judge its exit code and output."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from subprocess import DEVNULL, PIPE, STDOUT

from vigil.monitors.guard import Progress, Verdict, guarded
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.schemas import CommandMonitorSpec

__all__ = ["check"]

_DRAIN_AFTER_EXIT = 1.0  # seconds to wait for output after the command exits, should a daemon keep the pipe open


async def check(spec: CommandMonitorSpec) -> CheckResult:
    """Return the result of running ``spec.command``; never raises.

    Down when the program cannot start, exits with another code than ``expected_exit_code``, dies of a signal,
    lacks ``contains`` in its output (stdout and stderr together), or outlives the timeout; then its whole
    process group is killed, so that children it started do not pile up from one check to the next.
    """
    return await guarded(spec, lambda progress: _probe(spec, progress))


async def _probe(spec: CommandMonitorSpec, progress: Progress) -> Verdict:
    program = spec.command[0]
    loop = asyncio.get_running_loop()
    try:
        # A session of its own makes the command a process-group leader: one killpg reaches all its children.
        transport, output = await loop.subprocess_exec(
            lambda: _Output(int(spec.max_output), loop),
            *spec.command,
            stdin=DEVNULL,
            stdout=PIPE,
            stderr=STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        return Verdict(Outcome.DOWN, f"command not found: {program}")
    except PermissionError:
        return Verdict(Outcome.DOWN, f"permission denied: {program}")
    progress.step = f"while running {program} (process group killed)"
    try:
        await output.exited
        exit_code = transport.get_returncode()
        # Whatever it left running in the background would outlive the check and hold the pipe open.
        _kill_group(transport.get_pid())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(output.closed), _DRAIN_AFTER_EXIT)
    finally:
        if transport.get_returncode() is None:  # timed out (or cancelled): nothing of it may survive the check
            _kill_group(transport.get_pid())
        transport.close()
    return _judge(spec, exit_code if exit_code is not None else -1, output)


class _Output(asyncio.SubprocessProtocol):
    """Combined stdout and stderr, of which the first ``cap`` bytes are kept; the rest is read and dropped.

    Reading past the cap keeps a chatty command from blocking on a full pipe until the timeout. A protocol,
    not ``Process.wait()``, tells when the command exits: on Python 3.11 ``wait()`` also waits for the pipes to
    close, which a background child holding them would delay until the timeout.
    """

    def __init__(self, cap: int, loop: asyncio.AbstractEventLoop) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | bytearray) -> None:
        room = self.cap - len(self.data)
        self.data += data[: max(room, 0)]
        self.truncated = self.truncated or len(data) > room

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        return self.data.decode(errors="replace")

    def last_line(self) -> str:
        lines = [line.strip() for line in self.text().splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""


def _judge(spec: CommandMonitorSpec, exit_code: int, output: _Output) -> Verdict:
    text = output.text()
    details: dict[str, object] = {"exit_code": exit_code, "output": text[:2000], "truncated": output.truncated}
    last = f": {output.last_line()}" if output.last_line() else ""
    if exit_code < 0:
        return Verdict(Outcome.DOWN, f"killed by signal {_signal_name(-exit_code)}{last}", details)
    if exit_code != spec.expected_exit_code:
        return Verdict(Outcome.DOWN, f"exit code {exit_code} (expected {spec.expected_exit_code}){last}", details)
    if spec.contains is not None and spec.contains not in text:
        return Verdict(Outcome.DOWN, f"output does not contain {spec.contains!r}{last}", details)
    return Verdict(Outcome.UP, f"exit code {exit_code}{last}", details)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
