"""Draw the dependency graph as Graphviz DOT, with failures, blast radius and SPOFs highlighted.

Edges point from what needs to what is needed, so services sit at the top and hardware at the bottom.
A redundancy group is drawn as its own small node ("any 1 of 2") so that one can see at a glance which
failures a service can ride out. DOT is text; turning it into SVG is the caller's business (Graphviz ``dot``).
"""

from __future__ import annotations

from collections.abc import Iterable

from vigil.model.types import Component, Model, Requirement, Tier

__all__ = ["HIGHLIGHTS", "cone", "to_dot"]

# highlight name -> (fill colour, border colour)
HIGHLIGHTS = {
    "failed": ("#d62728", "#7f0000"),
    "maintenance": ("#9467bd", "#3f1f6b"),
    "down": ("#ff9896", "#d62728"),
    "degraded": ("#ffdd71", "#b8860b"),
    "exposed": ("#fff3b0", "#d4a017"),
    "spof": ("#ffffff", "#d62728"),
}
_SHAPES = {
    "service": "box",
    "vm": "component",
    "host": "box3d",
    "hypervisor": "box3d",
    "storage": "cylinder",
    "database": "cylinder",
    "queue": "cds",
    "network": "hexagon",
    "power": "octagon",
    "load_balancer": "trapezium",
}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def cone(model: Model, roots: Iterable[str]) -> set[str]:
    """Return ``roots`` and everything they need, directly or not (components and domains)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        comp = model.components.get(node_id)
        if comp is not None:
            stack.extend(comp.domains)
            if comp.runs_on:
                stack.append(comp.runs_on)
            stack.extend(m for r in comp.requirements for m in r.members)
        elif node_id in model.domains:
            stack.extend(model.domains[node_id].domains)
    return seen


def to_dot(
    model: Model,
    *,
    highlight: dict[str, str] | None = None,
    focus: set[str] | None = None,
    title: str | None = None,
) -> str:
    """Return DOT source for ``model`` (only the ``focus`` ids if given), colouring ``highlight`` ids.

    ``highlight`` maps an id to one of HIGHLIGHTS' keys; unknown highlight names are drawn plain.
    """
    marks = highlight or {}
    keep = focus if focus is not None else set(model.components) | set(model.domains)
    lines = [
        "digraph vigil {",
        "  graph [rankdir=TB, fontname=Helvetica, nodesep=0.3, ranksep=0.5"
        + (f", label={_q(title)}, labelloc=t" if title else "")
        + "];",
        '  node [fontname=Helvetica, fontsize=10, style="filled", fillcolor="#f4f6f8", color="#5b6770"];',
        '  edge [fontname=Helvetica, fontsize=8, color="#5b6770", arrowsize=0.6];',
    ]
    for domain in model.domains.values():
        if domain.id in keep:
            label = f"{domain.name}\n[{domain.kind}]"
            lines.append(f"  {_q(domain.id)} [label={_q(label)}, shape=tab, style={_q('filled,dashed')}"
                         f"{_colour(marks.get(domain.id))}];")  # fmt: skip
            lines.extend(f"  {_q(domain.id)} -> {_q(p)} [style=dotted];" for p in domain.domains if p in keep)
    for comp in model.components.values():
        if comp.id in keep:
            lines.extend(_component_lines(comp, keep, marks))
    lines.extend(_legend({m for m in marks.values() if m in HIGHLIGHTS}))
    lines.append("}")
    return "\n".join(lines) + "\n"


_LEGEND_TEXT = {
    "failed": "failed",
    "maintenance": "in maintenance",
    "down": "down (blast radius)",
    "degraded": "degraded",
    "exposed": "up, redundancy reduced",
    "spof": "single point of failure",
}


def _legend(used: set[str]) -> list[str]:
    if not used:
        return []
    out = ['  subgraph cluster_legend { label="legend"; fontsize=9; color="#c0c6cc"; style=dashed;']
    for mark in HIGHLIGHTS:
        if mark in used:
            out.append(f"    {_q('legend:' + mark)} [label={_q(_LEGEND_TEXT[mark])}, shape=box{_colour(mark)}];")
    out.append("  }")
    return out


def _colour(mark: str | None) -> str:
    if mark not in HIGHLIGHTS:
        return ""
    fill, border = HIGHLIGHTS[mark]
    width = 3 if mark in ("spof", "failed") else 2
    return f", fillcolor={_q(fill)}, color={_q(border)}, penwidth={width}"


def _component_lines(comp: Component, keep: set[str], marks: dict[str, str]) -> list[str]:
    name = comp.name if comp.name == comp.id else f"{comp.name}\n({comp.id})"
    label = f"{name}\n[{comp.kind}{', critical' if comp.tier is Tier.CRITICAL else ''}]"
    mark = marks.get(comp.id)
    extra = ', fontname="Helvetica-Bold"' if comp.tier is Tier.CRITICAL else ""
    style = "filled,rounded" if comp.kind == "service" else "filled"
    out = [
        f"  {_q(comp.id)} [label={_q(label)}, shape={_SHAPES.get(comp.kind, 'box')}, style={_q(style)}"
        f"{_colour(mark)}{extra}];"
    ]
    if comp.runs_on and comp.runs_on in keep:
        out.append(f'  {_q(comp.id)} -> {_q(comp.runs_on)} [label="runs on", penwidth=1.5];')
    out.extend(f"  {_q(comp.id)} -> {_q(d)} [style=dotted, arrowhead=none];" for d in comp.domains if d in keep)
    for index, req in enumerate(comp.requirements):
        out.extend(_requirement_lines(comp.id, index, req, keep))
    return out


def _edge_style(req: Requirement) -> str:
    if req.optional:
        return 'style=dashed, label="optional"'
    if req.startup_only:
        return 'style=dotted, penwidth=1.5, label="startup"'
    return ""


def _requirement_lines(owner: str, index: int, req: Requirement, keep: set[str]) -> list[str]:
    members = [m for m in req.members if m in keep]
    style = _edge_style(req)
    if not req.is_group:
        return [f"  {_q(owner)} -> {_q(m)} [{style}];" for m in members]
    group = f"{owner}#{index}"
    size = len(req.members)
    text = {"all": f"all {size}", "any": f"any 1 of {size}"}.get(str(req.mode), f"{req.k} of {size}")
    label = f"{req.name}\n{text}" if req.name else text
    out = [
        f'  {_q(group)} [label={_q(label)}, shape=diamond, fontsize=8, fillcolor="#e8eef7", height=0.3];',
        f"  {_q(owner)} -> {_q(group)} [{style}];",
    ]
    out.extend(f"  {_q(group)} -> {_q(m)};" for m in members)
    return out
