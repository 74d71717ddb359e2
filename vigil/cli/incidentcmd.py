"""``vigil incident ...``: incidents on the database of ``VIGIL_DATABASE_URL`` (migrated first if needed).

Each command is one transaction. Exit codes as for every command: 0 done, 2 bad input (unknown incident or
component, bad status; the message names the field), 1 the database could not be used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session

from vigil.cli.common import fail, migrated_session
from vigil.incidents import reshape, service
from vigil.incidents.models import ComponentStatus, IncidentStatus
from vigil.incidents.schemas import incident_document
from vigil.incidents.service import IncidentError, parse_choice
from vigil.notify import deliveries as notify_deliveries

__all__ = ["incident_app"]

incident_app = typer.Typer(help="Open, update, merge and split incidents.", no_args_is_help=True)
_out = Console(soft_wrap=True)
R = TypeVar("R")

IdArg = Annotated[int, typer.Argument(help="Incident id.", show_default=False)]
AuthorOpt = Annotated[str | None, typer.Option("--author", help="Who writes this (shown in the timeline).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def _session() -> Iterator[Session]:
    try:
        with migrated_session() as session:
            yield session
    except IncidentError as exc:  # after the rollback: nothing of a refused command is written
        fail(str(exc))


def _run(work: Callable[[Session], R]) -> R:
    with _session() as session:
        return work(session)
    raise AssertionError("unreachable")  # _session exits through _fail on errors


def _print(doc: dict[str, Any]) -> None:
    _out.print(f"[bold]#{doc['id']}[/] {escape(doc['title'])}", highlight=False)
    _out.print(
        f"status {doc['status']}, impact {doc['impact']}, probable cause {doc['probable_cause'] or '-'}"
        + (f", merged into #{doc['merged_into']}" if doc["merged_into"] else ""),
        highlight=False,
    )
    for name in ("started_at", "detected_at", "acknowledged_at", "mitigated_at", "resolved_at"):
        if doc[name]:
            _out.print(f"  {name.removesuffix('_at')}: {doc[name]}", highlight=False)
    for comp in doc["components"]:
        _out.print(f"  {escape(comp['id'])}: {comp['status']}", highlight=False)
    for entry in doc.get("timeline", []):
        who = f" {entry['author']}" if entry["author"] else ""
        status = f" [{entry['status']}]" if entry["status"] else ""
        line = f"{entry['display_at']} {entry['kind']}{who}{status}: {entry['body']}"
        _out.print(escape(line), highlight=False)


def _show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _out.print_json(json.dumps(doc))
    else:
        _print(doc)


@incident_app.command("list")
def list_(
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents not resolved.")] = False,
    resolved: Annotated[bool, typer.Option("--resolved", help="Only resolved incidents.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List incidents, newest first."""
    if open_only and resolved:
        fail("--open and --resolved: give one of them, or neither for all")
    which = True if open_only else (False if resolved else None)
    docs = _run(lambda s: [incident_document(i) for i in service.list_incidents(session=s, open_only=which)])
    if as_json:
        _out.print_json(json.dumps({"incidents": docs}))
        return
    table = Table("id", "status", "impact", "title", "components")
    for doc in docs:
        table.add_row(str(doc["id"]), doc["status"], doc["impact"], escape(doc["title"]), str(len(doc["components"])))
    _out.print(table)


@incident_app.command()
def show(incident_id: IdArg, as_json: JsonOpt = False) -> None:
    """Show an incident with its components and timeline."""
    doc = _run(lambda s: incident_document(service.get_incident(session=s, incident_id=incident_id), timeline=True))
    _show(doc, as_json)


@incident_app.command("open")
def open_(
    title: Annotated[str, typer.Option("--title", help="What people will read.", show_default=False)],
    component: Annotated[list[str] | None, typer.Option("--component", help="An affected component (repeat).")] = None,
    status: Annotated[str, typer.Option("--status", help="investigating, identified, monitoring.")] = "investigating",
    message: Annotated[str, typer.Option("--message", help="The first update (Markdown).")] = "",
    author: AuthorOpt = None,
) -> None:
    """Open an incident (components in major outage; change them with `vigil incident component`)."""

    def work(session: Session) -> int:
        incident = service.open_incident(
            session=session,
            title=title,
            components=component or [],
            status=parse_choice(IncidentStatus, status, field="status"),
            body=message,
            author=author,
        )
        return incident.id

    _out.print(f"incident {_run(work)} opened", highlight=False)


@incident_app.command()
def update(
    incident_id: IdArg,
    message: Annotated[str, typer.Option("--message", "-m", help="The update (Markdown).")] = "",
    status: Annotated[str | None, typer.Option("--status", help="New status.")] = None,
    author: AuthorOpt = None,
) -> None:
    """Write an update, optionally changing the status."""

    def work(session: Session) -> None:
        new = parse_choice(IncidentStatus, status, field="status") if status is not None else None
        service.post_update(session=session, incident_id=incident_id, body=message, status=new, author=author)

    _run(work)
    _out.print(f"incident {incident_id} updated", highlight=False)


@incident_app.command()
def ack(incident_id: IdArg, author: AuthorOpt = None) -> None:
    """Acknowledge an incident (someone is on it)."""
    _run(lambda s: service.acknowledge_incident(session=s, incident_id=incident_id, author=author))
    _out.print(f"incident {incident_id} acknowledged", highlight=False)


@incident_app.command()
def resolve(
    incident_id: IdArg,
    message: Annotated[str, typer.Option("--message", "-m", help="The closing update (Markdown).")] = "",
    author: AuthorOpt = None,
) -> None:
    """Resolve an incident."""
    _run(lambda s: service.resolve_incident(session=s, incident_id=incident_id, body=message, author=author))
    _out.print(f"incident {incident_id} resolved", highlight=False)


@incident_app.command()
def merge(
    incident_id: IdArg,
    into_id: Annotated[int, typer.Argument(help="The incident that stays.", show_default=False)],
    author: AuthorOpt = None,
) -> None:
    """Merge an incident into another: its timeline and components join that one."""
    _run(lambda s: reshape.merge_incidents(session=s, source_id=incident_id, target_id=into_id, author=author))
    _out.print(f"incident {incident_id} merged into {into_id}", highlight=False)


@incident_app.command()
def split(
    incident_id: IdArg,
    component: Annotated[list[str], typer.Option("--component", help="A component to move (repeat).")],
    title: Annotated[str | None, typer.Option("--title", help="Title of the new incident.")] = None,
    author: AuthorOpt = None,
) -> None:
    """Move components of an incident to a new incident."""
    new_id = _run(
        lambda s: (
            reshape.split_incident(
                session=s, incident_id=incident_id, components=component, title=title, author=author
            ).id
        )
    )
    _out.print(f"incident {new_id} opened with {', '.join(component)}", highlight=False)


@incident_app.command("component")
def component_(
    incident_id: IdArg,
    component_id: Annotated[str, typer.Argument(help="Component id.", show_default=False)],
    status: Annotated[str, typer.Option("--status", help="A Statuspage status, or 'none' to remove it.")],
    author: AuthorOpt = None,
) -> None:
    """Add an affected component, change its status, or remove it (--status none)."""

    def work(session: Session) -> None:
        new = None if status == "none" else parse_choice(ComponentStatus, status, field="status")
        service.set_component_status(
            session=session, incident_id=incident_id, component_id=component_id, status=new, author=author
        )

    _run(work)
    _out.print(f"incident {incident_id}: {component_id} {status}", highlight=False)


@incident_app.command()
def deliveries(incident_id: IdArg, as_json: JsonOpt = False) -> None:
    """Show the notifications of an incident: each channel's delivery, and counts for subscribers."""

    def work(session: Session) -> dict[str, Any]:
        service.get_incident(session=session, incident_id=incident_id)  # an unknown id is exit 2, named
        return notify_deliveries.deliveries_document(session=session, incident_id=incident_id)

    doc = _run(work)
    if as_json:
        _out.print_json(json.dumps(doc))
        return
    table = Table("id", "channel", "change", "status", "attempts", "sent / next attempt", "last error")
    for d in doc["deliveries"]:
        when = d["sent_at"] or d["next_attempt_at"] or "-"
        table.add_row(
            str(d["id"]),
            escape(d["channel_id"]),
            d["change"],
            d["status"],
            str(d["attempts"]),
            when,
            escape(d["last_error"] or ""),
        )
    _out.print(table)
    counts = doc["subscribers"]
    _out.print(
        f"subscribers: {counts['sent']} sent, {counts['pending']} pending, {counts['failed']} failed", highlight=False
    )
