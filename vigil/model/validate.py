"""Checks across entries and files: unknown references, duplicate ids, impossible groups, cycles.

Runs after the per-entry schema check, on the entries that passed it. References to entries that failed the
schema are not reported again as unknown: one mistake, one message.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vigil.model.errors import ModelIssue, dotted
from vigil.model.schema import AllSpec, AnySpec, AtLeastSpec, ComponentSpec, DomainSpec, RefSpec
from vigil.model.yamlio import FileLines

__all__ = ["Entry", "Source", "check_references", "dotted"]


class Source:
    """One model file: its parsed data, and its lines, worked out only when a problem needs them."""

    __slots__ = ("data", "file", "lines")

    def __init__(self, file: str, text: str, data: Any, *, lined: Any = None) -> None:
        self.file = file
        self.data = data
        self.lines = FileLines(file, text, lined)

    def line(self, path: tuple[str | int, ...]) -> int:
        return self.lines.line(path)

    def issue(self, path: tuple[str | int, ...], message: str) -> ModelIssue:
        return ModelIssue(self.file, self.lines.line(path), dotted(path), message)


@dataclass(slots=True)
class Entry:
    """A schema-valid component or domain, with where it came from."""

    spec: ComponentSpec | DomainSpec
    source: Source
    path: tuple[str | int, ...]  # ("components", 3)

    def line(self, *sub: str | int) -> int:
        return self.source.line((*self.path, *sub))

    def issue(self, sub: tuple[str | int, ...], message: str) -> ModelIssue:
        return self.source.issue((*self.path, *sub), message)


def check_references(entries: list[Entry], invalid_ids: set[str]) -> list[ModelIssue]:
    """Return every cross-entry problem: duplicates, unknown or wrong-kind references, bad k, cycles."""
    issues: list[ModelIssue] = []
    by_id: dict[str, Entry] = {}
    for entry in entries:
        first = by_id.get(entry.spec.id)
        if first is not None:
            where = f"{first.source.file}:{first.line()}"
            issues.append(entry.issue(("id",), f"duplicate id {entry.spec.id!r} (first defined at {where})"))
            continue
        by_id[entry.spec.id] = entry
    components = {i for i, e in by_id.items() if isinstance(e.spec, ComponentSpec)}
    domains = {i for i, e in by_id.items() if isinstance(e.spec, DomainSpec)}
    for entry in by_id.values():
        issues.extend(_check_entry(entry, components, domains, invalid_ids))
    issues.extend(_check_cycles(by_id))
    return issues


def _unknown(ref: str, wanted: str, known: set[str]) -> str:
    close = difflib.get_close_matches(ref, known, n=1) if len(known) < 20000 else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {wanted} {ref!r}{hint}"


def _check_entry(entry: Entry, components: set[str], domains: set[str], invalid: set[str]) -> Iterator[ModelIssue]:
    spec = entry.spec
    for index, dom in enumerate(spec.domains):
        if dom in components:
            yield entry.issue(("domains", index), f"{dom!r} is a component, not a failure domain")
        elif dom not in domains and dom not in invalid:
            yield entry.issue(("domains", index), _unknown(dom, "failure domain", domains))
        elif dom == spec.id:
            yield entry.issue(("domains", index), "a domain cannot contain itself")
    if not isinstance(spec, ComponentSpec):
        return
    if spec.runs_on is not None:
        yield from _check_ref(entry, ("runs_on",), spec.runs_on, components, domains, invalid)
    for index, req in enumerate(spec.depends_on):
        yield from _check_requirement(entry, index, req, components, domains, invalid)


def _check_ref(
    entry: Entry, sub: tuple[str | int, ...], ref: str, components: set[str], domains: set[str], invalid: set[str]
) -> Iterator[ModelIssue]:
    if ref == entry.spec.id:
        yield entry.issue(sub, f"{ref!r} cannot depend on itself")
    elif ref in domains:
        yield entry.issue(sub, f"{ref!r} is a failure domain: list it under 'domains', not as a dependency")
    elif ref not in components and ref not in invalid:
        yield entry.issue(sub, _unknown(ref, "component", components))


def _check_requirement(
    entry: Entry,
    index: int,
    req: str | RefSpec | AllSpec | AnySpec | AtLeastSpec,
    components: set[str],
    domains: set[str],
    invalid: set[str],
) -> Iterator[ModelIssue]:
    base: tuple[str | int, ...] = ("depends_on", index)
    if isinstance(req, str):
        yield from _check_ref(entry, base, req, components, domains, invalid)
        return
    if isinstance(req, RefSpec):
        yield from _check_ref(entry, (*base, "id"), req.id, components, domains, invalid)
        return
    key, members = (
        ("all", req.all)
        if isinstance(req, AllSpec)
        else ("any", req.any)
        if isinstance(req, AnySpec)
        else ("of", req.of)
    )
    seen: set[str] = set()
    for pos, member in enumerate(members):
        if member in seen:
            yield entry.issue((*base, key, pos), f"{member!r} is listed twice in the same group")
        seen.add(member)
        yield from _check_ref(entry, (*base, key, pos), member, components, domains, invalid)
    if isinstance(req, AtLeastSpec) and req.at_least > len(members):
        yield entry.issue((*base, "at_least"), f"at_least {req.at_least} but the group has {len(members)} members")


def _hard_edges(entry: Entry) -> list[tuple[str, tuple[str | int, ...]]]:
    """Edges that make a failure propagate (what the fault tree follows), with the field they come from."""
    spec = entry.spec
    edges: list[tuple[str, tuple[str | int, ...]]] = [(d, ("domains", i)) for i, d in enumerate(spec.domains)]
    if isinstance(spec, ComponentSpec):
        if spec.runs_on is not None:
            edges.append((spec.runs_on, ("runs_on",)))
        for index, req in enumerate(spec.depends_on):
            if isinstance(req, str):
                edges.append((req, ("depends_on", index)))
            elif not req.optional:
                members = [req.id] if isinstance(req, RefSpec) else _members(req)
                edges.extend((m, ("depends_on", index)) for m in members)
    return edges


def _members(req: AllSpec | AnySpec | AtLeastSpec) -> list[str]:
    if isinstance(req, AllSpec):
        return req.all
    if isinstance(req, AnySpec):
        return req.any
    return req.of


def _hard_targets(spec: ComponentSpec | DomainSpec) -> list[str]:
    """The ids of :func:`_hard_edges` without their fields: the cycle search runs on every entry."""
    out = list(spec.domains)
    if isinstance(spec, ComponentSpec):
        if spec.runs_on is not None:
            out.append(spec.runs_on)
        for req in spec.depends_on:
            if isinstance(req, str):
                out.append(req)
            elif not req.optional:
                out.extend([req.id] if isinstance(req, RefSpec) else _members(req))
    return out


def _check_cycles(by_id: dict[str, Entry]) -> list[ModelIssue]:
    """Report each cycle of hard dependencies once, as 'a → b → c → a', at the first edge's field.

    Cycles through optional requirements are allowed: real fleets have them (monitoring needs DNS, DNS is
    monitored) and they cannot take anything down.
    """
    # Unknown targets were reported already; leaving them out lets cycles among the rest still be found.
    edges = {node: [t for t in _hard_targets(entry.spec) if t in by_id] for node, entry in by_id.items()}
    state: dict[str, int] = {}
    issues: list[ModelIssue] = []
    for start in by_id:
        if start in state:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, pos = stack[-1]
            out = edges[node]
            if pos == len(out):
                stack.pop()
                state[node] = 2
                continue
            stack[-1] = (node, pos + 1)
            target = out[pos]
            seen = state.get(target)
            if seen == 1:
                path = [n for n, _ in stack]
                cycle = [*path[path.index(target) :], target]
                entry = by_id[target]
                field = next(f for t, f in _hard_edges(entry) if t == cycle[1])
                issues.append(entry.issue(field, "dependency cycle: " + " → ".join(cycle)))
            elif seen is None:
                state[target] = 1
                stack.append((target, 0))
    return issues
