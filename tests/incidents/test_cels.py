"""The proof of issue 4: the real engine on the CELS 2022 model, vserver8's plug pulled, incidents from the outbox.

A flag-file command monitor stands for each watched hypervisor (as in tests/engine/test_runtime.py): deleting
the file is the failure. The VMs have no monitors, so their states come from the model, as in 2022. Runs on
SQLite and PostgreSQL; waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import waiting
from tests.conftest import EXAMPLES
from vigil.config import Settings
from vigil.db import session_scope
from vigil.engine.runtime import Runtime
from vigil.incidents.models import ComponentStatus, EventType, Incident, IncidentStatus
from vigil.incidents.service import get_incident, list_incidents

pytest_plugins = ["tests.dbfixtures"]
pytestmark = pytest.mark.anyio

VMS = {"login1", "login2", "buildbot", "pwca", "horde", "repo.anl-external.org"}


def with_flag_monitor(text: str, component: str, flag: Path) -> str:
    check = f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"
    monitor = (
        f"    monitors:\n      - {{id: power, type: command, command: [{sys.executable!r}, '-c', {check!r}],"
        " interval: 1s, timeout: 900ms, failures_before_down: 1}\n"
    )
    entry = f"  - id: {component}\n"
    assert entry in text
    return text.replace(entry, entry + monitor, 1)


@dataclass
class Cels:
    runtime: Runtime
    flags: dict[str, Path]
    now: list[datetime]  # the worker's clock; tests move it forward

    def incidents(self) -> list[Incident]:
        with session_scope(self.runtime.database) as session:
            return [get_incident(session=session, incident_id=i.id) for i in list_incidents(session=session)]


async def until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    await waiting.until(condition, timeout)  # this module's patience: its runs are longer


@pytest.fixture
async def cels(db_url: str, tmp_path: Path) -> AsyncIterator[Cels]:
    text = (EXAMPLES / "cels-2022.yaml").read_text(encoding="utf-8")
    flags = {}
    for host in ("vserver8", "vserver-ha1"):
        flags[host] = tmp_path / f"{host}-powered"
        flags[host].touch()
        text = with_flag_monitor(text, host, flags[host])
    config = tmp_path / "cels.yaml"
    config.write_text(text, encoding="utf-8")
    settings = Settings(
        environment="development",
        database_url=db_url,
        startup_spread=0.0,
        write_flush_interval=0.1,
        pid_file=str(tmp_path / "vigil.pid"),
    )
    runtime = Runtime(settings=settings, paths=[config])
    now = [datetime.now(UTC)]
    runtime.incidents.clock = lambda: max(now[0], datetime.now(UTC))
    runtime.incidents._poll_interval = 0.2  # the test's patience, not the product's
    await runtime.start()
    try:
        await until(lambda: runtime.verdicts.get("vserver8") is not None and runtime.verdicts["vserver8"].state == "up")
        yield Cels(runtime, flags, now)
    finally:
        await runtime.stop()


async def test_vserver8_down_is_one_incident_with_the_six_vms(cels: Cels) -> None:
    cels.flags["vserver8"].unlink()
    await until(lambda: len(cels.incidents()) == 1 and len(cels.incidents()[0].components) == 7)
    await asyncio.sleep(1.0)  # the next rounds must not open a second incident for a VM
    (incident,) = cels.incidents()
    assert incident.auto and incident.probable_cause == "vserver8"
    statuses = {c.component_id: c.status for c in incident.components}
    assert statuses == {"vserver8": ComponentStatus.MAJOR_OUTAGE, **dict.fromkeys(VMS, ComponentStatus.MAJOR_OUTAGE)}
    assert incident.status is IncidentStatus.INVESTIGATING and incident.impact == "critical"
    assert incident.started_at <= incident.detected_at
    events = [u for u in incident.updates if u.event_type is EventType.STATE_CHANGE]
    assert {u.data["component_id"] for u in events if u.data} == {"vserver8", *VMS}

    # A second, unrelated failure: a node of the resilient pool. Its own incident.
    cels.flags["vserver-ha1"].unlink()
    await until(lambda: len(cels.incidents()) == 2)
    second = cels.incidents()[0]  # newest first
    assert second.probable_cause == "vserver-ha1"
    assert {c.component_id for c in second.components} == {"vserver-ha1"}

    # vserver8 comes back: every VM with it, so the incident is mitigated and watched, not resolved yet.
    cels.flags["vserver8"].touch()
    await until(lambda: cels.incidents()[1].status is IncidentStatus.MONITORING)
    first = cels.incidents()[1]
    assert first.mitigated_at is not None and first.resolved_at is None
    assert {c.status for c in first.components} == {ComponentStatus.OPERATIONAL}
    assert cels.incidents()[0].status is IncidentStatus.INVESTIGATING  # the pool node is still down

    # The quiet period (10 min by default) passes on the worker's clock: resolved.
    cels.now[0] = datetime.now(UTC) + timedelta(minutes=11)
    await until(lambda: cels.incidents()[1].status is IncidentStatus.RESOLVED)
    assert cels.incidents()[1].resolved_at is not None
    assert cels.incidents()[0].status is IncidentStatus.INVESTIGATING
