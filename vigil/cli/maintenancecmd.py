"""``vigil maintenance ...``: maintenance windows on the database of ``VIGIL_DATABASE_URL`` (migrated first).

``schedule`` reads the model (``CONFIG...``, as ``vigil serve``) to check the window with the what-if analysis:
when critical services would go down or lose their last redundancy it lists them and exits 2, unless
``--force``. Exit codes as for every command: 0 done, 2 bad input (the message names the option), 1 the
database could not be used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from vigil.cli.common import err, fail, migrated_session
from vigil.maintenance import service
from vigil.maintenance.schemas import maintenance_document
from vigil.maintenance.service import MaintenanceAtRiskError, MaintenanceError
from vigil.model.errors import ModelError
from vigil.model.loader import load_model
from vigil.model.types import Model

__all__ = ["maintenance_app"]

maintenance_app = typer.Typer(help="Schedule, start, complete and cancel maintenance windows.", no_args_is_help=True)
_out = Console(soft_wrap=True)
R = TypeVar("R")

# The service names its fields; people typed options.
_OPTIONS = {"title": "--title", "starts_at": "--start", "ends_at": "--end", "components": "--component"}

IdArg = Annotated[int, typer.Argument(help="Maintenance id.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _refuse(exc: MaintenanceError) -> NoReturn:
    message = str(exc)
    option = _OPTIONS.get(exc.field or "")
    if option is not None and message.startswith(f"{exc.field}:"):
        message = option + message[len(exc.field or "") :]
    fail(message)


@contextmanager
def _session() -> Iterator[Session]:
    try:
        with migrated_session() as session:
            yield session
    except MaintenanceAtRiskError as exc:  # after the rollback: nothing of a refused command is written
        err.print("[yellow]warning:[/] this maintenance puts critical services at risk:", highlight=False)
        for finding in exc.findings:
            err.print(f"  - {escape(finding.summary)}", highlight=False)
        fail("not scheduled; run again with --force to schedule it anyway")
    except MaintenanceError as exc:
        _refuse(exc)


def _run(work: Callable[[Session], R]) -> R:
    with _session() as session:
        return work(session)
    raise AssertionError("unreachable")  # _session exits through _fail on errors


def _moment(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option}: {value!r} is not an ISO 8601 time (2026-03-01T22:00+01:00)")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _model(config: list[Path]) -> Model:
    try:
        return load_model(config)
    except ModelError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        fail(f"the config has {len(exc.issues)} problem(s)")


def _print(doc: dict[str, Any]) -> None:
    _out.print(f"[bold]#{doc['id']}[/] {escape(doc['title'])}", highlight=False)
    _out.print(f"status {doc['status']}, {doc['starts_at']} → {doc['ends_at']}", highlight=False)
    _out.print(f"  components: {', '.join(doc['components'])}", highlight=False)
    if doc["message"]:
        _out.print(escape(doc["message"]), highlight=False)
    if doc["forced"]:
        _out.print("  scheduled with --force despite:", highlight=False)
        for finding in doc["findings"]:
            spofs = ", ".join(finding["new_spofs"]) or "-"
            _out.print(f"    {finding['service']}: {finding['status']}, new SPOFs {spofs}", highlight=False)


@maintenance_app.command()
def schedule(
    config: Annotated[list[Path], typer.Argument(help="Config files or directories (the model).", show_default=False)],
    title: Annotated[str, typer.Option("--title", help="What people will read.", show_default=False)],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 start (UTC without a zone).", show_default=False)],
    end: Annotated[str, typer.Option("--end", help="ISO 8601 end.", show_default=False)],
    component: Annotated[
        list[str] | None, typer.Option("--component", help="A component in maintenance (repeat).")
    ] = None,
    message: Annotated[str, typer.Option("--message", help="The announcement (Markdown).")] = "",
    manual: Annotated[bool, typer.Option("--manual", help="Start and complete by hand, not on the clock.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Schedule even if critical services are put at risk.")] = False,
) -> None:
    """Schedule a maintenance window, after checking it with the what-if analysis."""
    model = _model(config)
    starts_at, ends_at = _moment(start, "--start"), _moment(end, "--end")

    def work(session: Session) -> dict[str, Any]:
        window = service.schedule_maintenance(
            session=session,
            model=model,
            title=title,
            starts_at=starts_at,
            ends_at=ends_at,
            components=component or [],
            message=message,
            auto_start=not manual,
            auto_complete=not manual,
            force=force,
        )
        return maintenance_document(window)

    doc = _run(work)
    if doc["forced"]:
        err.print("[yellow]warning:[/] scheduled with --force; critical services are at risk:", highlight=False)
        for finding in doc["findings"]:
            err.print(f"  - {finding['service']}: {finding['status']}", highlight=False)
    _out.print(f"maintenance {doc['id']} scheduled", highlight=False)


@maintenance_app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List maintenance windows, latest start first."""
    docs = _run(lambda s: [maintenance_document(m) for m in service.list_maintenances(session=s)])
    if as_json:
        _out.print_json(json.dumps({"maintenance": docs}))
        return
    table = Table("id", "status", "starts", "ends", "title", "components")
    for doc in docs:
        table.add_row(
            str(doc["id"]),
            doc["status"],
            doc["starts_at"],
            doc["ends_at"],
            escape(doc["title"]),
            ", ".join(doc["components"]),
        )
    _out.print(table)


@maintenance_app.command()
def show(maintenance_id: IdArg, as_json: JsonOpt = False) -> None:
    """Show a maintenance window."""
    doc = _run(lambda s: maintenance_document(service.get_maintenance(session=s, maintenance_id=maintenance_id)))
    if as_json:
        _out.print_json(json.dumps(doc))
    else:
        _print(doc)


@maintenance_app.command()
def start(maintenance_id: IdArg) -> None:
    """Start a scheduled window now."""
    _run(lambda s: service.start_maintenance(session=s, maintenance_id=maintenance_id))
    _out.print(f"maintenance {maintenance_id} started", highlight=False)


@maintenance_app.command()
def complete(maintenance_id: IdArg) -> None:
    """Complete a window in progress (a component still down then opens an incident)."""
    _run(lambda s: service.complete_maintenance(session=s, maintenance_id=maintenance_id))
    _out.print(f"maintenance {maintenance_id} completed", highlight=False)


@maintenance_app.command()
def cancel(maintenance_id: IdArg) -> None:
    """Cancel a scheduled window, or end one in progress."""
    _run(lambda s: service.cancel_maintenance(session=s, maintenance_id=maintenance_id))
    _out.print(f"maintenance {maintenance_id} cancelled", highlight=False)
