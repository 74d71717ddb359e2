"""The runtime with a fake clock: a window starts and completes on its own, the failures inside it open nothing,
and a window that ends with its component still down opens an incident at once (the overrun). SQLite file."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import waiting
from vigil.config import Settings
from vigil.db import session_scope
from vigil.engine.runtime import Runtime
from vigil.incidents.service import list_incidents
from vigil.maintenance.models import MaintenanceStatus
from vigil.maintenance.service import get_maintenance, schedule_maintenance
from vigil.monitors.models import ComponentState

pytestmark = pytest.mark.anyio

S = ComponentState
T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


async def until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    await waiting.until(condition, timeout)  # this module's patience: its runs are longer


def config_text(flag: Path) -> str:
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"
    return f"""
components:
  - id: hv
    kind: hypervisor
    monitors:
      - {{id: power, type: command, command: [{sys.executable!r}, "-c", {check!r}], interval: 1s, timeout: 900ms,
          failures_before_down: 1}}
  - {{id: vm1, kind: vm, runs_on: hv}}
"""


def titles(runtime: Runtime) -> list[str]:
    with session_scope(runtime.database) as session:
        return [i.title for i in list_incidents(session=session)]


async def test_the_maintenance_that_overruns(tmp_path: Path) -> None:
    flag = tmp_path / "hv-powered"
    flag.touch()
    config = tmp_path / "vigil.yaml"
    config.write_text(config_text(flag), encoding="utf-8")
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{tmp_path / 'vigil.db'}",
        startup_spread=0.0,
        write_flush_interval=0.1,
        pid_file=str(tmp_path / "vigil.pid"),
    )
    now = [T0 - timedelta(hours=1)]
    runtime = Runtime(settings=settings, paths=[config], clock=lambda: now[0], maintenance_interval=0.1)
    await runtime.start()
    try:
        await until(lambda: "hv" in runtime.verdicts and runtime.verdicts["hv"].state is S.UP)
        assert runtime.model is not None
        with session_scope(runtime.database) as session:
            window = schedule_maintenance(
                session=session,
                model=runtime.model,
                title="Firmware upgrade",
                starts_at=T0,
                ends_at=T0 + timedelta(hours=1),
                components=["hv", "vm1"],
                now=now[0],
            ).id
        await asyncio.sleep(0.3)
        assert runtime.maintenance == frozenset()  # not yet: the clock says 21:00
        now[0] = T0
        await until(lambda: runtime.verdicts["hv"].state is S.MAINTENANCE)
        flag.unlink()  # the planned power-off
        await until(lambda: runtime._trackers["hv/power"].state is S.DOWN)
        await asyncio.sleep(1.5)  # the incident worker polls every second
        assert runtime.verdicts["hv"].state is S.MAINTENANCE and runtime.verdicts["vm1"].state is S.MAINTENANCE
        assert titles(runtime) == []  # planned: nobody is paged
        now[0] = T0 + timedelta(hours=1)  # the window ends; hv is still off
        await until(lambda: runtime.verdicts["hv"].state is S.DOWN)
        await until(lambda: bool(titles(runtime)))
        assert titles(runtime) == ["maintenance overran: hv still down"]
        with session_scope(runtime.database) as session:
            assert get_maintenance(session=session, maintenance_id=window).status is MaintenanceStatus.COMPLETED
    finally:
        await runtime.stop()
