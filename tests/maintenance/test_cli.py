"""`vigil maintenance ...` on a SQLite file: the what-if refusal (exit 2) and --force, bad input naming the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLES
from vigil.cli.app import app

PA = str(EXAMPLES / "pythonanywhere-2014.yaml")
QUEUES = str(EXAMPLES / "queue-cluster-2019.yaml")
WHEN = ["--start", "2026-03-01T22:00:00+00:00", "--end", "2026-03-02T00:00:00+00:00"]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    monkeypatch.setenv("VIGIL_DATABASE_URL", f"sqlite:///{tmp_path / 'vigil.db'}")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["maintenance", *args])


def test_the_backup_server_resync_is_refused_then_forced(run) -> None:  # type: ignore[no-untyped-def]
    args = ["schedule", PA, "--title", "Backup server to SSDs", *WHEN, "--component", "backup-server"]
    refused = run(*args)
    assert refused.exit_code == 2
    output = " ".join(refused.output.split())
    assert "web: no redundancy left, one failure of ebs-raid, file-server takes it down" in output
    assert "console:" in output and "scheduled-tasks:" in output and "--force" in output
    assert json.loads(run("list", "--json").output) == {"maintenance": []}
    forced = run(*args, "--force")
    assert forced.exit_code == 0 and "maintenance 1 scheduled" in forced.output
    shown = json.loads(run("show", "1", "--json").output)
    assert shown["forced"] and shown["status"] == "scheduled" and shown["components"] == ["backup-server"]
    assert {f["service"] for f in shown["findings"]} == {"web", "console", "scheduled-tasks"}


def test_start_complete_cancel(run) -> None:  # type: ignore[no-untyped-def]
    assert run("schedule", QUEUES, "--title", "Dashboard upgrade", *WHEN, "--component", "dashboard").exit_code == 0
    assert run("schedule", QUEUES, "--title", "Again", *WHEN, "--component", "dashboard", "--manual").exit_code == 0
    assert run("start", "1").exit_code == 0
    assert run("complete", "1").exit_code == 0
    assert run("cancel", "2").exit_code == 0
    listed = json.loads(run("list", "--json").output)["maintenance"]
    assert {m["id"]: m["status"] for m in listed} == {1: "completed", 2: "cancelled"}
    assert not listed[0]["auto_start"] or not listed[1]["auto_start"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-03-02T00:00:00Z", "--end", "2026-03-01T22:00:00Z", "--component", "dashboard"], "--end:"),
        ([*WHEN, "--component", "nope"], "--component: unknown component(s) nope"),
        ([*WHEN], "--component: name at least one component"),
        (["--start", "tonight", "--end", "2026-03-01T22:00:00Z", "--component", "dashboard"], "--start: 'tonight'"),
    ],
)
def test_bad_input_exits_2_naming_the_option(run, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = run("schedule", QUEUES, "--title", "x", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_an_unknown_window_exits_2(run) -> None:  # type: ignore[no-untyped-def]
    result = run("complete", "42")
    assert result.exit_code == 2 and "no maintenance with id 42" in result.output
