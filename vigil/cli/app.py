"""``vigil`` commands: analyze, impact, what-if, export-mef, validate, schema (and the server's: serve, reload,
heartbeats, db upgrade, from :mod:`vigil.cli.servecmd`).

Exit codes: 0 done; 2 the input is wrong (model errors, unknown ids, bad options), with every problem on
stderr; 1 something failed that the user could not have prevented (e.g. Graphviz crashed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress

from vigil.analysis.impact import blast_radius
from vigil.analysis.render import cone, to_dot
from vigil.analysis.report import analyze_model, what_if
from vigil.cli import incidentcmd, maintenancecmd, servecmd, text
from vigil.cli.common import err
from vigil.cli.common import fail as _fail  # as _fail: impact and what-if have a --fail option, `fail`
from vigil.cli.mefcmd import analyze_mef, export_service_mef
from vigil.cli.payload import impact_payload, report_payload
from vigil.model.errors import ModelError, ModelIssue
from vigil.model.loader import load_model
from vigil.model.schema import file_json_schema
from vigil.model.types import Model, State
from vigil.monitors.config import monitors_of
from vigil.monitors.schemas import monitor_json_schema
from vigil.notify.config import notifications_of

__all__ = ["app", "main"]

app = typer.Typer(
    name="vigil",
    help="Vigil: model your infrastructure, find single points of failure, know what breaks when.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    SVG = "svg"
    DOT = "dot"


ModelArg = Annotated[list[Path], typer.Argument(help="Model files or directories (merged).", show_default=False)]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
OrderOpt = Annotated[str, typer.Option("--max-order", help="Largest cut-set order to compute, or 'all'.")]
StateOpt = Annotated[list[str], typer.Option("--state", help="What-if state ID=down|maintenance|degraded.")]


def _load(paths: list[Path]) -> Model:
    try:
        return load_model(paths)
    except ModelError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        noun = "problem" if len(exc.issues) == 1 else "problems"
        _fail(f"the model has {len(exc.issues)} {noun}; nothing was analysed")


def _max_order(value: str) -> int | None:
    if value.strip().lower() in ("all", "none", "0"):
        return None
    try:
        order = int(value)
    except ValueError:
        _fail(f"--max-order: {value!r} is not a number or 'all'")
    if order < 1:
        _fail("--max-order must be at least 1, or 'all'")
    return order


def _states(model: Model, items: list[str], **fixed: list[str]) -> dict[str, State]:
    states: dict[str, State] = {}
    for name, ids in fixed.items():
        for node_id in ids:
            states[node_id] = State(name)
    for item in items:
        node_id, sep, value = item.partition("=")
        if not sep:
            _fail(f"--state {item!r}: expected ID=STATE, e.g. backup-server=degraded")
        try:
            states[node_id.strip()] = State(value.strip().lower())
        except ValueError:
            _fail(f"--state {item!r}: state must be one of {', '.join(s.value for s in State)}")
    unknown = [n for n in states if n not in model.components and n not in model.domains]
    if unknown:
        _fail("unknown component or domain: " + ", ".join(repr(u) for u in unknown))
    return states


def _emit(content: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(content)
        return
    try:
        output.write_text(content, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {output}: {exc.strerror or exc}")


def _emit_graph(dot_source: str, fmt: Format, output: Path | None) -> None:
    if fmt is Format.DOT:
        _emit(dot_source, output)
        return
    dot = shutil.which("dot")
    if dot is None:
        _fail("--format svg needs Graphviz's 'dot' (apt-get install graphviz); --format dot works without it")
    try:
        done = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        _fail("Graphviz took more than 120 s: draw less with --service or fewer --fail ids", 1)
    if done.returncode != 0:
        _fail(f"Graphviz failed: {done.stderr.strip()[:500]}", 1)
    _emit(done.stdout, output)


def _emit_payload(payload: dict[str, Any], fmt: Format, output: Path | None, kind: str) -> None:
    if fmt is Format.JSON:
        _emit(json.dumps(payload, indent=2) + "\n", output)
    elif fmt is Format.MARKDOWN:
        md = (
            text.impact_markdown(payload)
            if kind == "impact"
            else text.report_markdown(payload, what_if=kind == "what-if")
        )
        _emit(md, output)
    else:
        # Piped or written to a file, Rich would wrap at 80 columns; reports read better wider.
        console = Console(file=output.open("w", encoding="utf-8"), width=120) if output else _stdout_console()
        if kind == "impact":
            text.print_impact(payload, console)
        else:
            text.print_report(payload, console, what_if=kind == "what-if")


def _stdout_console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=120)


def _progress_analyze(model: Model, **kwargs: Any) -> Any:
    # A bar only where the wait is noticeable, and on stderr so that stdout stays clean for JSON.
    with Progress(console=err, transient=True, disable=len(model.components) < 2000) as bar:
        task = bar.add_task("analysing services", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return analyze_model(model, progress=tick, **kwargs)


@app.command()
def analyze(
    models: Annotated[list[Path] | None, typer.Argument(help="Model files or directories.", show_default=False)] = None,
    mef: Annotated[Path | None, typer.Option("--mef", help="Analyse an Open-PSA MEF fault tree instead.")] = None,
    fmt: FormatOpt = Format.TEXT,
    max_order: OrderOpt = "3",
    service: Annotated[list[str] | None, typer.Option("--service", "-s", help="Only these services.")] = None,
    state: StateOpt = [],  # noqa: B006 - Typer reads the default, never mutates it
    importance: Annotated[bool, typer.Option(help="Compute importance measures.")] = True,
    max_cut_sets: Annotated[
        int | None, typer.Option("--max-cut-sets", min=0, help="List at most N cut sets per service (JSON: all).")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Single points of failure, minimal cut sets and availability of every service."""
    order = _max_order(max_order)
    if mef is not None:
        if models:
            _fail("give either model files or --mef, not both")
        if fmt in (Format.SVG, Format.DOT):
            _fail("--format svg/dot draws a model; a MEF file has no model to draw")
        shown = max_cut_sets if fmt is Format.JSON else min(max_cut_sets or 5, 5)
        _emit_payload(analyze_mef(mef, max_order=order, fail=_fail, max_cut_sets=shown), fmt, output, "analyze")
        return
    if not models:
        _fail("give at least one model file or directory (or --mef FILE)")
    model = _load(models)
    if state:
        model = model.with_states(_states(model, state))
    try:
        report = _progress_analyze(model, max_order=order, services=service, importance=importance)
    except KeyError as exc:
        _fail(f"unknown service {exc.args[0]!r}")
    if fmt in (Format.SVG, Format.DOT):
        marks = {p.id: "spof" for s in report.services for p in s.spofs}
        marks.update({n: "failed" for n, st in report.states.items() if st in ("down", "maintenance")})
        focus = cone(model, [s.id for s in report.services]) if service else None
        _emit_graph(to_dot(model, highlight=marks, focus=focus, title=f"{model.name}: single points of failure"),
                    fmt, output)  # fmt: skip
        return
    shown = max_cut_sets if fmt is Format.JSON else min(max_cut_sets or 5, 5)
    _emit_payload(report_payload(report, max_cut_sets=shown), fmt, output, "analyze")


@app.command()
def impact(
    models: ModelArg,
    fail: Annotated[list[str], typer.Option("--fail", help="A component or domain that fails (repeatable).")],
    state: StateOpt = [],  # noqa: B006
    fmt: FormatOpt = Format.TEXT,
    output: OutputOpt = None,
) -> None:
    """Blast radius: everything that goes down or degrades when --fail ids fail, and why."""
    model = _load(models)
    states = _states(model, state, down=fail)
    result = blast_radius(model, states=states)
    payload = impact_payload(result)
    if fmt in (Format.SVG, Format.DOT):
        marks = {e["id"]: e["status"] for k in ("down", "degraded", "exposed") for e in payload[k]}
        marks.update({n: ("maintenance" if s is State.MAINTENANCE else "failed") for n, s in states.items()
                      if s in (State.DOWN, State.MAINTENANCE)})  # fmt: skip
        marks.update({n: "degraded" for n, s in states.items() if s is State.DEGRADED})
        focus = cone(model, marks) if len(model.components) > 300 else None
        title = f"{model.name}: {', '.join(result.failed)} failed"
        _emit_graph(to_dot(model, highlight=marks, focus=focus, title=title), fmt, output)
        return
    _emit_payload(payload, fmt, output, "impact")


@app.command("what-if")
def what_if_cmd(
    models: ModelArg,
    maintenance: Annotated[list[str], typer.Option("--maintenance", "-m", help="Taken out for maintenance.")] = [],  # noqa: B006
    fail: Annotated[list[str], typer.Option("--fail", help="Also failed.")] = [],  # noqa: B006
    state: StateOpt = [],  # noqa: B006
    fmt: FormatOpt = Format.TEXT,
    max_order: OrderOpt = "3",
    service: Annotated[list[str] | None, typer.Option("--service", "-s", help="Only these services.")] = None,
    output: OutputOpt = None,
) -> None:
    """Which services lose their last redundancy (or go down) during a maintenance or failure."""
    model = _load(models)
    states = _states(model, state, maintenance=maintenance, down=fail)
    if not states:
        _fail("give at least one --maintenance, --fail or --state")
    try:
        report = what_if(model, states=states, max_order=_max_order(max_order), services=service)
    except KeyError as exc:
        _fail(f"unknown service {exc.args[0]!r}")
    if fmt in (Format.SVG, Format.DOT):
        changed = model.with_states(states)
        radius = blast_radius(changed)
        marks = {e.id: e.status for e in [*radius.down, *radius.degraded]}
        marks.update({p: "spof" for s in report.services for p in s.new_spofs})
        marks.update({s.id: "exposed" for s in report.services if s.new_spofs and s.status == "up"})
        marks.update({n: str(s) if s is not State.DOWN else "failed" for n, s in states.items()})
        _emit_graph(to_dot(model, highlight=marks, title=f"{model.name}: what if"), fmt, output)
        return
    _emit_payload(report_payload(report, max_cut_sets=None if fmt is Format.JSON else 5), fmt, output, "what-if")


@app.command("export-mef")
def export_mef_cmd(
    models: ModelArg,
    service: Annotated[str, typer.Option("--service", "-s", help="The service whose fault tree to export.")],
    state: StateOpt = [],  # noqa: B006
    output: OutputOpt = None,
) -> None:
    """Write a service's fault tree in Open-PSA MEF XML (check Vigil's numbers with SCRAM)."""
    model = _load(models)
    if state:
        model = model.with_states(_states(model, state))
    if service not in model.components:
        _fail(f"unknown service {service!r}")
    _emit(export_service_mef(model, service), output)


def _fail_with_issues(issues: list[ModelIssue]) -> NoReturn:
    for issue in ModelError(issues).issues:  # in the loader's order: by file, line, field
        err.print(str(issue), markup=False, highlight=False)
    _fail(f"the model has {len(issues)} {'problem' if len(issues) == 1 else 'problems'}")


@app.command()
def validate(models: ModelArg) -> None:
    """Check model files and their monitors: every problem with file, line and field; exit 2 if any."""
    try:
        model = load_model(models)
    except ModelError as exc:
        # The monitors of the entries that did load are checked too: every problem in one run.
        partial = [*monitors_of(exc.partial).issues, *notifications_of(exc.partial).issues] if exc.partial else []
        _fail_with_issues([*exc.issues, *partial])
    found = monitors_of(model)
    notify = notifications_of(model)  # channels and routes (issue 4): an Apprise URL Apprise refuses, say
    if found.issues or notify.issues:
        _fail_with_issues([*found.issues, *notify.issues])
    counts = f"{len(model.components)} components, {len(model.domains)} failure domains"
    channels = f", {len(notify.channels)} notification channels" if notify.channels else ""
    err.print(f"ok: {counts}, {len(found.monitors)} monitors{channels}", highlight=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of model files, monitors included (for editor autocompletion)."""
    sys.stdout.write(json.dumps(file_json_schema(monitor_json_schema()), indent=2) + "\n")


# The server's commands live in servecmd (they pull in the engine and, for `serve`, the web app).
app.command()(servecmd.serve)
app.command()(servecmd.reload)
app.command()(servecmd.heartbeats)
app.add_typer(servecmd.db_app, name="db")
app.add_typer(incidentcmd.incident_app, name="incident")
app.add_typer(maintenancecmd.maintenance_app, name="maintenance")  # scheduled maintenance (issue 4)


def main() -> None:
    app()
