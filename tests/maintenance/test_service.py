"""The maintenance service on SQLite and PostgreSQL: the what-if check (PythonAnywhere, 2014), --force, bad
input naming the field, and windows advancing on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from tests.conftest import EXAMPLES
from vigil.maintenance.models import MaintenanceStatus
from vigil.maintenance.service import (
    InvalidMaintenanceError,
    MaintenanceAtRiskError,
    active_components,
    advance_windows,
    cancel_maintenance,
    complete_maintenance,
    get_maintenance,
    list_maintenances,
    schedule_maintenance,
    start_maintenance,
)
from vigil.model.loader import load_model
from vigil.model.types import Model

pytest_plugins = ["tests.dbfixtures"]

T0 = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
M = MaintenanceStatus


@pytest.fixture(scope="module")
def pythonanywhere() -> Model:
    return load_model([EXAMPLES / "pythonanywhere-2014.yaml"])


@pytest.fixture(scope="module")
def queues() -> Model:
    return load_model([EXAMPLES / "queue-cluster-2019.yaml"])


def plan(session: Session, model: Model, components: list[str], **extra: object) -> int:
    args: dict[str, object] = {
        "title": "Move the backup server to SSDs",
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=2),
    }
    args.update(extra)
    window = schedule_maintenance(session=session, model=model, components=components, now=T0, **args)  # type: ignore[arg-type]
    return window.id


def test_the_backup_server_resync_is_refused_it_leaves_the_file_server_without_fallback(
    session: Session, pythonanywhere: Model
) -> None:
    with pytest.raises(MaintenanceAtRiskError) as caught:
        plan(session, pythonanywhere, ["backup-server"])
    found = {f.service: f for f in caught.value.findings}
    assert set(found) == {"web", "console", "scheduled-tasks"}  # every critical service on the file storage
    assert all("file-server" in f.new_spofs and f.status == "up" for f in found.values())
    assert "web: no redundancy left, one failure of ebs-raid, file-server takes it down" in str(caught.value)
    assert list_maintenances(session=session) == []  # nothing was scheduled


def test_force_schedules_it_and_keeps_the_findings(session: Session, pythonanywhere: Model) -> None:
    window = get_maintenance(
        session=session, maintenance_id=plan(session, pythonanywhere, ["backup-server"], force=True)
    )
    assert window.forced and window.status is M.SCHEDULED and window.component_ids == ["backup-server"]
    assert window.findings is not None
    assert {f["service"] for f in window.findings} == {"web", "console", "scheduled-tasks"}
    assert window.findings[0]["new_spofs"] == ["ebs-raid", "file-server"]


def test_one_of_a_pair_is_refused_too_the_other_becomes_a_single_point_of_failure(
    session: Session, pythonanywhere: Model
) -> None:
    with pytest.raises(MaintenanceAtRiskError, match="web: no redundancy left, one failure of web2 takes it down"):
        plan(session, pythonanywhere, ["web1"])


def test_a_window_that_puts_no_critical_service_at_risk_needs_no_force(session: Session, queues: Model) -> None:
    window = get_maintenance(session=session, maintenance_id=plan(session, queues, ["dashboard"]))
    assert not window.forced and window.findings is None


def test_taking_a_service_down_is_a_finding_too(session: Session, pythonanywhere: Model) -> None:
    with pytest.raises(MaintenanceAtRiskError) as caught:
        plan(session, pythonanywhere, ["file-server", "backup-server"])
    assert {f.status for f in caught.value.findings} == {"down"}


@pytest.mark.parametrize(
    ("extra", "components", "field", "message"),
    [
        ({"ends_at": T0 - timedelta(minutes=1)}, ["web1"], "ends_at", "is not after starts_at"),
        ({"ends_at": T0}, ["web1"], "ends_at", "is not after starts_at"),
        ({}, ["web1", "nope"], "components", "unknown component(s) nope"),
        ({}, [], "components", "at least one component"),
        ({"title": "  "}, ["web1"], "title", "must not be empty"),
    ],
)
def test_bad_input_names_the_field(
    session: Session, pythonanywhere: Model, extra: dict[str, object], components: list[str], field: str, message: str
) -> None:
    with pytest.raises(InvalidMaintenanceError) as caught:
        plan(session, pythonanywhere, components, **extra)
    assert caught.value.field == field and message in str(caught.value)


def test_windows_start_and_complete_on_the_clock(session: Session, queues: Model) -> None:
    auto = plan(session, queues, ["dashboard"])
    manual = plan(session, queues, ["worker1"], auto_start=False, auto_complete=False, force=True)
    assert advance_windows(session=session, now=T0 - timedelta(seconds=1)) == []
    assert active_components(session=session) == frozenset()
    assert advance_windows(session=session, now=T0) == [(auto, M.IN_PROGRESS)]
    assert active_components(session=session) == {"dashboard"}
    start_maintenance(session=session, maintenance_id=manual, now=T0)
    assert active_components(session=session) == {"dashboard", "worker1"}
    end = T0 + timedelta(hours=2)
    assert advance_windows(session=session, now=end) == [(auto, M.COMPLETED)]
    assert get_maintenance(session=session, maintenance_id=auto).completed_at == end
    assert active_components(session=session) == {"worker1"}  # a manual window waits for a person
    complete_maintenance(session=session, maintenance_id=manual, now=end)
    assert active_components(session=session) == frozenset()


def test_a_window_missed_entirely_starts_and_completes_at_once(session: Session, queues: Model) -> None:
    window = plan(session, queues, ["dashboard"])
    later = T0 + timedelta(days=1)
    assert advance_windows(session=session, now=later) == [(window, M.IN_PROGRESS), (window, M.COMPLETED)]


def test_cancel_and_the_transitions_that_are_refused(session: Session, queues: Model) -> None:
    window = plan(session, queues, ["dashboard"])
    with pytest.raises(InvalidMaintenanceError, match="only a in_progress one can be completed"):
        complete_maintenance(session=session, maintenance_id=window)
    assert cancel_maintenance(session=session, maintenance_id=window, now=T0).status is M.CANCELLED
    with pytest.raises(InvalidMaintenanceError) as caught:
        cancel_maintenance(session=session, maintenance_id=window)
    assert caught.value.field == "status"
    assert advance_windows(session=session, now=T0 + timedelta(hours=1)) == []  # a cancelled window never starts
    with pytest.raises(LookupError, match="no maintenance with id 999"):
        get_maintenance(session=session, maintenance_id=999)
