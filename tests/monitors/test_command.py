from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vigil.monitors import command
from vigil.monitors.result import Outcome
from vigil.monitors.schemas import CommandMonitorSpec

pytestmark = pytest.mark.anyio
PY = sys.executable


def spec(argv: list[str] | str, **fields: Any) -> CommandMonitorSpec:
    return CommandMonitorSpec.model_validate({"type": "command", "command": argv, **fields})


def gone(pid: int) -> bool:
    """Return whether the process has ended (reaped or a zombie), waiting up to 2 s for it."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


async def test_ok() -> None:
    result = await command.check(spec([PY, "-c", "print('all good')"], contains="good"))
    assert (result.outcome, result.reason) == (Outcome.UP, "exit code 0: all good")
    assert result.details["output"] == "all good\n"


async def test_string_command_is_split_not_shelled() -> None:
    result = await command.check(spec("echo '$HOME' `id` ; true"))
    assert (result.outcome, result.reason) == (Outcome.UP, "exit code 0: $HOME `id` ; true")
    assert result.monitor_id == "command:echo '$HOME' '`id`' ';' true"


async def test_exit_code() -> None:
    script = "import sys; print('checking'); print('disk full', file=sys.stderr); sys.exit(1)"
    result = await command.check(spec([PY, "-c", script]))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "exit code 1 (expected 0): disk full")
    assert (await command.check(spec([PY, "-c", script], expected_exit_code=1))).outcome is Outcome.UP


async def test_output_missing() -> None:
    result = await command.check(spec(["echo", "degraded"], contains="OK"))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "output does not contain 'OK': degraded")


async def test_not_found() -> None:
    result = await command.check(spec(["/nonexistent/vigil-probe", "-x"]))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "command not found: /nonexistent/vigil-probe")


async def test_killed_by_signal() -> None:
    result = await command.check(spec([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]))
    assert (result.outcome, result.reason) == (Outcome.DOWN, "killed by signal SIGTERM")


async def test_hang_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 30 & echo $! > {pids}; echo started; sleep 30"
    result = await command.check(spec(["sh", "-c", script], timeout="500ms"))
    assert (result.outcome, result.reason) == (
        Outcome.DOWN,
        "timeout after 500 ms while running sh (process group killed)",
    )
    assert result.latency < 2
    assert gone(int(pids.read_text()))


async def test_background_child_does_not_hold_the_check(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    result = await command.check(spec(["sh", "-c", f"sleep 30 & echo $! > {pids}; echo done"]))
    assert (result.outcome, result.reason) == (Outcome.UP, "exit code 0: done")
    assert result.latency < 2
    assert gone(int(pids.read_text()))


async def test_output_is_capped() -> None:
    script = "import sys; sys.stdout.write('x' * 3_000_000 + '\\nlast line\\n')"
    result = await command.check(spec([PY, "-c", script], max_output="1KiB", contains="last line"))
    assert result.outcome is Outcome.DOWN
    assert result.reason.startswith("output does not contain 'last line': xxx")
    assert result.details["truncated"] is True
    assert len(result.details["output"]) == 1024


async def test_environment_is_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_TEST_MARK", "marked")
    result = await command.check(spec([PY, "-c", "import os; print(os.environ['VIGIL_TEST_MARK'])"]))
    assert result.reason == "exit code 0: marked"
    assert os.environ["VIGIL_TEST_MARK"] == "marked"
