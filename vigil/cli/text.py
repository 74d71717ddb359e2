"""Human output: Rich tables for the terminal and Markdown for issues, wikis and postmortems.

Both render the JSON payloads of ``payload.py``, so the three formats can never disagree.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["impact_markdown", "print_impact", "print_report", "report_markdown"]

_CUTS_SHOWN = 5


def _pct(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f} %"


def _availability(s: dict[str, Any]) -> str:
    if s["availability_exact"]:
        return _pct(s["availability"])
    low, high = s["availability_bounds"]
    return f"{_pct(low)} – {_pct(high)} (bounds, {s['method']})"


def _spof_note(p: dict[str, Any]) -> str:
    notes = []
    if p["startup_only"]:
        notes.append("needed to start")
    if p["defeats_redundancy"]:
        shared = "shared failure domain" if p["kind"].startswith("domain:") else "shared dependency"
        notes.append(f"{shared}: defeats {'; '.join(p['defeats_redundancy'])}")
    return f" — {', '.join(notes)}" if notes else ""


def print_report(payload: dict[str, Any], console: Console, *, what_if: bool = False) -> None:
    services = payload["services"]
    order = "any order" if payload["max_order"] is None else f"order ≤ {payload['max_order']}"
    console.print(f"[bold]{payload['model']}[/]: {len(services)} services, minimal cut sets of {order}")
    if payload["states"]:
        console.print("What-if: " + ", ".join(f"{k} {v}" for k, v in payload["states"].items()))
    table = Table(show_lines=False)
    last = "new SPOFs" if what_if else "SPOFs"
    for col in ("service", "tier", *(["status"] if what_if else []), "availability", "downtime/yr", "SLO", last):
        table.add_column(col, overflow="fold")
    for s in services:
        spofs = ", ".join(s["spofs"]) or "none"
        if what_if:
            spofs = f"[bold red]{', '.join(s['new_spofs'])}[/]" if s["new_spofs"] else "none"
        slo = "—" if s["slo"] is None else ("[green]met[/]" if s["meets_slo"] else "[red]missed[/]")
        status = [f"[red]{s['status']}[/]" if s["status"] != "up" else "up"] if what_if else []
        hours = f"{s['downtime_hours_per_year']:.1f} h"
        table.add_row(s["id"], s["tier"], *status, _availability(s), hours, slo, spofs)
    console.print(table)
    for s in services:
        if s["tier"] != "critical" and not s["new_spofs"]:
            continue
        _print_details(s, console)
    if what_if:
        exposed = payload["exposed"]
        verdict = (
            "[bold red]exposed[/]: " + ", ".join(exposed)
            if exposed
            else "[green]no service loses its last redundancy[/]"
        )
        console.print(f"\nDuring this window: {verdict}")
    if payload["assumed_availability"]:
        shown = ", ".join(payload["assumed_availability"][:12])
        more = len(payload["assumed_availability"]) - 12
        console.print(f"\n[dim]Default availability assumed for: {shown}{f' and {more} more' if more > 0 else ''}[/]")


def _print_details(s: dict[str, Any], console: Console) -> None:
    console.print(f"\n[bold]{s['id']}[/] ({s['tier']}): ", end="")
    if not s["spofs"]:
        console.print("[green]no single point of failure[/]")
    else:
        console.print("[red]single points of failure[/]")
        for p in s["spof_details"]:
            console.print(f"  • {p['id']} [{p['kind']}]{_spof_note(p)}", markup=False)
    if s["slo_gap"] is not None:
        console.print(f"  SLO {_pct(s['slo'], 3)}: gap {s['slo_gap'] * 100:+.4f} points")
    cuts = list(zip(s["cut_sets"], s["cut_set_probabilities"], strict=True))[:_CUTS_SHOWN]
    if cuts:
        console.print(f"  most likely failure combinations ({s['cut_set_count']} minimal cut sets):")
        for ids, prob in cuts:
            console.print(f"    {{{', '.join(ids)}}}  p={prob:.3g}", markup=False)
    if s["importance"]:
        top = ", ".join(f"{i['id']} ({i['fussell_vesely']:.2f})" for i in s["importance"][:5])
        console.print(f"  improve first (Fussell-Vesely): {top}", markup=False)


def print_impact(payload: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]{', '.join(payload['failed']) or 'nothing'}[/] failed: {len(payload['down'])} down, "
        f"{len(payload['degraded'])} degraded, {len(payload['exposed'])} with reduced redundancy"
    )
    table = Table()
    for col in ("component", "status", "because", "chain"):
        table.add_column(col)
    colours = {"down": "red", "degraded": "yellow", "exposed": "cyan"}
    for key in ("down", "degraded", "exposed"):
        for e in payload[key]:
            table.add_row(e["id"], f"[{colours[key]}]{e['status']}[/]", e["because"], " ← ".join(e["chain"]))
    console.print(table)


def report_markdown(payload: dict[str, Any], *, what_if: bool = False) -> str:
    order = "any order" if payload["max_order"] is None else f"order ≤ {payload['max_order']}"
    out = [f"# Resilience report: {payload['model']}", "", f"Minimal cut sets of {order}."]
    if payload["states"]:
        out += ["", "What-if: " + ", ".join(f"`{k}` {v}" for k, v in payload["states"].items())]
    head = [
        "Service",
        "Tier",
        *(["Status", "New SPOFs"] if what_if else []),
        "Availability",
        "Downtime/yr",
        "SLO",
        "SPOFs",
    ]
    out += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in payload["services"]:
        extra = [s["status"], ", ".join(s["new_spofs"]) or "—"] if what_if else []
        slo = "—" if s["slo"] is None else f"{_pct(s['slo'], 3)} ({'met' if s['meets_slo'] else 'missed'})"
        row = [s["id"], s["tier"], *extra, _availability(s), f"{s['downtime_hours_per_year']:.1f} h", slo,
               ", ".join(s["spofs"]) or "none"]  # fmt: skip
        out.append("| " + " | ".join(row) + " |")
    for s in payload["services"]:
        if s["spof_details"] and (s["tier"] == "critical" or s["new_spofs"]):
            out += ["", f"## {s['id']}", "", "Single points of failure:", ""]
            out += [f"- `{p['id']}` ({p['kind']}){_spof_note(p)}" for p in s["spof_details"]]
    if what_if:
        exposed = payload["exposed"]
        out += ["", "**Exposed during this window:** " + (", ".join(exposed) if exposed else "none")]
    return "\n".join(out) + "\n"


def impact_markdown(payload: dict[str, Any]) -> str:
    out = [f"# Blast radius of {', '.join(payload['failed']) or 'nothing'}", ""]
    out += ["| Component | Status | Because | Chain |", "|---|---|---|---|"]
    for key in ("down", "degraded", "exposed"):
        for e in payload[key]:
            out.append(f"| {e['id']} | {e['status']} | {e['because']} | {' ← '.join(e['chain'])} |")
    return "\n".join(out) + "\n"
