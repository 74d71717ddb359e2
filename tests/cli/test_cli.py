from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CELS = str(EXAMPLES / "cels-2022.yaml")
PA = str(EXAMPLES / "pythonanywhere-2014.yaml")
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_analyze_json_has_the_documented_keys() -> None:
    code, out, _ = run("analyze", CELS, "--format", "json")
    assert code == 0
    data = json.loads(out)
    repo = next(s for s in data["services"] if s["id"] == "repo.anl-external.org")
    assert {"id", "availability", "spofs", "cut_sets"} <= set(repo)
    assert "vserver8" in repo["spofs"]
    assert ["vserver8"] in repo["cut_sets"]
    assert 0.99 < repo["availability"] < 1
    assert repo["meets_slo"] is False and repo["slo"] == 0.999


def test_analyze_text_and_markdown() -> None:
    code, out, _ = run("analyze", CELS)
    assert code == 0 and "single points of failure" in out and "vserver8" in out
    code, out, _ = run("analyze", CELS, "--format", "markdown", "--service", "repo.anl-external.org")
    assert code == 0 and out.startswith("# Resilience report") and "| repo.anl-external.org | critical" in out


def test_max_order_all_and_bad_values() -> None:
    code, out, _ = run("analyze", CELS, "-f", "json", "--max-order", "all")
    assert code == 0 and json.loads(out)["max_order"] is None
    code, out, _ = run("analyze", CELS, "-f", "json", "--max-order", "1")
    assert all(len(c) == 1 for s in json.loads(out)["services"] for c in s["cut_sets"])
    code, _, err = run("analyze", CELS, "--max-order", "two")
    assert code == 2 and "--max-order" in err
    code, _, err = run("analyze", CELS, "--max-order", "-1")
    assert code == 2


def test_impact_json_lists_down_with_because() -> None:
    code, out, _ = run("impact", CELS, "--fail", "vserver8", "--format", "json")
    assert code == 0
    data = json.loads(out)
    down = {d["id"]: d for d in data["down"]}
    assert set(down) == {"login1", "login2", "buildbot", "pwca", "horde", "repo.anl-external.org"}
    assert down["login1"]["because"] == "runs on vserver8 (failed)"
    assert down["login1"]["chain"] == ["login1", "vserver8"]
    code, out, _ = run("impact", CELS, "--fail", "vserver8")
    assert code == 0 and "6 down" in out


def test_what_if_reports_lost_redundancy() -> None:
    code, out, _ = run("what-if", PA, "--state", "backup-server=degraded", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data["exposed"]) == {"web", "console", "scheduled-tasks"}
    for svc in data["services"]:
        assert "file-server" in svc["spofs"] and "file-server" in svc["new_spofs"]
    code, out, _ = run("what-if", PA, "--maintenance", "web1")
    assert code == 0 and "web2" in out
    code, out, _ = run("what-if", PA, "--state", "backup-server=degraded", "-f", "markdown")
    assert "**Exposed during this window:** web, console, scheduled-tasks" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("what-if", PA), "at least one"),
        (("what-if", PA, "--state", "backup-server"), "expected ID=STATE"),
        (("what-if", PA, "--state", "backup-server=sleepy"), "state must be one of"),
        (("what-if", PA, "--maintenance", "nope"), "unknown component or domain: 'nope'"),
        (("impact", CELS, "--fail", "vserver9"), "unknown component or domain"),
        (("analyze", CELS, "--service", "nope"), "unknown service 'nope'"),
        (("analyze",), "at least one model"),
        (("export-mef", CELS, "--service", "nope"), "unknown service"),
    ],
)
def test_usage_errors_exit_2_with_a_reason(args: tuple[str, ...], needle: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert needle in err


def test_invalid_model_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("components:\n  - {id: a, kind: vm, runs_on: b}\n  - {id: c, kind: vm, mtbf: 3}\n")
    for command in (["analyze", str(bad)], ["validate", str(bad)], ["impact", str(bad), "--fail", "a"]):
        code, out, err = run(*command)
        assert code == 2, command
        assert f"{bad}:2: components[0].runs_on: unknown component 'b'" in err
        assert f"{bad}:3: components[1].mtbf:" in err
        assert "2 problems" in err and out == ""


def test_validate_ok() -> None:
    code, _, err = run("validate", str(EXAMPLES))
    assert code == 0 and "components" in err


def test_schema_is_json_schema() -> None:
    code, out, _ = run("schema")
    schema = json.loads(out)
    assert code == 0 and schema["title"] == "Vigil model" and "ComponentSpec" in schema["$defs"]


def test_schema_describes_monitors() -> None:
    code, out, _ = run("schema")
    assert code == 0
    defs = json.loads(out)["$defs"]
    assert defs["ComponentSpec"]["properties"]["monitors"]["items"] == {"$ref": "#/$defs/MonitorSpec"}
    branches = {ref["$ref"].rsplit("/", 1)[1] for ref in defs["MonitorSpec"]["oneOf"]}
    assert branches == {f"{kind.title()}MonitorSpec" for kind in ("http", "tcp", "tls", "dns", "command",
                                                                   "heartbeat", "postgres", "redis")}  # fmt: skip
    assert all(name in defs for name in branches)  # every $ref resolves within the one document
    assert "token" in defs["HeartbeatMonitorSpec"]["properties"]


MONITORED = """\
components:
  - id: db
    kind: database
    monitors:
      - {type: tcp, host: db1, port: 5432}
  - id: web
    kind: service
    depends_on: [db]
    monitors:
      - type: http
        url: ftp://web
      - {id: nightly, type: heartbeat, token: backup-7f3a9c2e}
      - {id: nightly, type: heartbeat}
"""


def test_validate_counts_monitors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    fixed = MONITORED.replace("ftp://web", "http://web/healthz")
    good.write_text(fixed.replace("{id: nightly, type: heartbeat}", "{id: weekly, type: heartbeat}"))
    code, out, err = run("validate", str(good))
    assert code == 0 and out == ""
    assert "ok: 2 components, 0 failure domains, 4 monitors" in err


def test_validate_reports_monitor_problems_like_model_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MONITORED)
    code, out, err = run("validate", str(bad))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert (
        lines[0]
        == f"{bad}:11: components[1].monitors[0].url: 'ftp://web' is not an http:// or https:// URL with a host"
    )
    assert lines[1].startswith(f"{bad}:13: components[1].monitors[2].id: duplicate monitor id 'nightly'")
    assert f"(first at {bad}:12)" in lines[1]
    assert "2 problems" in err


def test_validate_reports_model_and_monitor_problems_together(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MONITORED + "  - {id: orphan, kind: vm, runs_on: nowhere}\n")
    code, _, err = run("validate", str(bad))
    assert code == 2
    assert f"{bad}:11: components[1].monitors[0].url:" in err
    assert f"{bad}:13: components[1].monitors[2].id:" in err
    assert f"{bad}:14: components[2].runs_on: unknown component 'nowhere'" in err
    assert "3 problems" in err
    # Sorted by line as model errors are, whichever check found them.
    found = [int(line.split(":")[1]) for line in err.splitlines() if line.startswith(str(bad))]
    assert found == sorted(found)


def test_analyze_ignores_monitor_problems(tmp_path: Path) -> None:
    # A broken monitor is validate's business; the resilience analysis of the model still runs.
    bad = tmp_path / "bad.yaml"
    bad.write_text(MONITORED)
    code, out, _ = run("analyze", str(bad), "--format", "json")
    assert code == 0 and json.loads(out)["services"]


def test_dot_output_highlights_blast_radius() -> None:
    code, out, _ = run("impact", CELS, "--fail", "vserver8", "--format", "dot")
    assert code == 0 and out.startswith("digraph vigil {")
    assert '"vserver8" [label=' in out and "#d62728" in out  # failed: red
    assert '"login3"' in out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed (apt-get install graphviz)")
def test_svg_output(tmp_path: Path) -> None:
    target = tmp_path / "impact.svg"
    code, _, _ = run("impact", CELS, "--fail", "vserver8", "--format", "svg", "-o", str(target))
    assert code == 0
    svg = target.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "vserver8" in svg
    code, out, _ = run("analyze", CELS, "--format", "svg", "--service", "repo.anl-external.org")
    assert code == 0 and "<svg" in out and "login3" not in out  # drawn: the service's cone only


def test_output_to_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = run("analyze", CELS, "-f", "json", "-o", str(tmp_path / "missing" / "x.json"))
    assert code == 2 and "cannot write" in err


def test_entry_point_runs_as_a_program() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vigil.cli import main; main()",
            "impact",
            CELS,
            "--fail",
            "vserver8",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["down"]) == 6
