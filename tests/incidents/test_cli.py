"""`vigil incident ...` on a SQLite file, through Typer's runner: exit 0 done, 2 bad input naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli.app import app
from vigil.db import make_engine, session_scope, upgrade
from vigil.monitors.models import Component


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    monkeypatch.setenv("VIGIL_DATABASE_URL", url)
    engine = make_engine(url)
    upgrade(engine)
    with session_scope(engine) as session:
        for cid in ("db", "web"):
            session.add(Component(id=cid, name=cid, kind="service"))
    engine.dispose()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["incident", *args])


def test_a_whole_incident_from_the_command_line(run) -> None:  # type: ignore[no-untyped-def]
    assert run("open", "--title", "Both down", "--component", "db", "--component", "web").exit_code == 0
    assert run("open", "--title", "Dup").exit_code == 0
    assert run("ack", "1").exit_code == 0
    assert run("update", "1", "--status", "identified", "--message", "Disk").exit_code == 0
    assert run("component", "1", "web", "--status", "degraded_performance").exit_code == 0
    assert run("merge", "2", "1").exit_code == 0
    split = run("split", "1", "--component", "web")
    assert split.exit_code == 0 and "incident 3" in split.output
    assert run("resolve", "1").exit_code == 0
    shown = json.loads(run("show", "1", "--json").output)
    assert shown["status"] == "resolved" and [c["id"] for c in shown["components"]] == ["db"]
    assert any(e["body"] == "Disk" for e in shown["timeline"])
    listed = json.loads(run("list", "--open", "--json").output)
    assert [i["id"] for i in listed["incidents"]] == [3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("update", "42", "--message", "x"), "no incident with id 42"),
        (("update", "1", "--status", "bogus", "--message", "x"), "status: 'bogus' is not one of"),
        (("open", "--title", "x", "--component", "nope"), "components: unknown component(s) nope"),
        (("component", "1", "db", "--status", "broken"), "status: 'broken'"),
        (("merge", "1", "1"), "into: an incident cannot be merged into itself"),
    ],
)
def test_bad_input_exits_2_naming_the_field(run, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    assert run("open", "--title", "Base").exit_code == 0
    result = run(*args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_deliveries_of_an_incident_from_the_command_line(run) -> None:  # type: ignore[no-untyped-def]
    assert run("open", "--title", "DB down", "--component", "db").exit_code == 0
    shown = run("deliveries", "1", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {
        "incident_id": 1,
        "deliveries": [],  # nothing is sent from a shell: the server's dispatcher tells the change
        "subscribers": {"pending": 0, "sent": 0, "failed": 0},
    }
    assert "subscribers: 0 sent, 0 pending, 0 failed" in run("deliveries", "1").output
    missing = run("deliveries", "42")
    assert missing.exit_code == 2 and "no incident with id 42" in missing.output
