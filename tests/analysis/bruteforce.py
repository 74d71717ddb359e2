"""Reference answers by exhaustion: every one of the 2^n failure combinations of a small tree's cone.

Slow and obviously right, so the engine's tests can compare with it. Only for trees with ≤ ~16 events.
"""

from __future__ import annotations

import itertools
import math

from vigil.analysis.faulttree import FaultTree, GateKind

__all__ = ["conditional_probability", "cone", "fails", "minimal_cut_sets", "probability"]


def cone(tree: FaultTree, top: str) -> list[str]:
    """Return the basic events ``top`` depends on, sorted."""
    if top in tree.events:
        return [top]
    if top in tree.houses:
        return []
    return sorted(tree.cone_events(top))


def fails(tree: FaultTree, top: str, failed: frozenset[str] | set[str]) -> bool:
    """Return whether ``top`` fails when exactly the basic events in ``failed`` have failed."""
    if top in tree.events:
        return top in failed
    if top in tree.houses:
        return tree.houses[top]
    state: dict[str, bool] = {}
    for gate in tree.topological_gates([top]):
        values = [_value(tree, child, failed, state) for child in gate.children]
        if gate.kind is GateKind.OR:
            state[gate.id] = any(values)
        elif gate.kind is GateKind.AND:
            state[gate.id] = all(values)
        else:
            state[gate.id] = sum(values) >= gate.k
    return state[top]


def _value(tree: FaultTree, node: str, failed: frozenset[str] | set[str], state: dict[str, bool]) -> bool:
    if node in tree.gates:
        return state[node]
    if node in tree.houses:
        return tree.houses[node]
    return node in failed


def minimal_cut_sets(tree: FaultTree, top: str, max_order: int | None = None) -> set[frozenset[str]]:
    """Return the minimal cut sets of ``top`` (by definition: failing sets with no failing proper subset)."""
    events = cone(tree, top)
    failing = {
        frozenset(combo)
        for size in range(len(events) + 1)
        for combo in itertools.combinations(events, size)
        if fails(tree, top, frozenset(combo))
    }
    minimal = {s for s in failing if not any(s - {e} in failing for e in s)}
    return {s for s in minimal if max_order is None or len(s) <= max_order}


def probability(tree: FaultTree, top: str, overrides: dict[str, float] | None = None) -> float:
    """Return P(top fails) by summing the probability of every failure combination of its cone."""
    p = dict(tree.events)
    p.update(overrides or {})
    events = cone(tree, top)
    terms = []
    for size in range(len(events) + 1):
        for combo in itertools.combinations(events, size):
            failed = frozenset(combo)
            if fails(tree, top, failed):
                terms.append(math.prod(p[e] if e in failed else 1.0 - p[e] for e in events))
    return math.fsum(terms)


def conditional_probability(tree: FaultTree, top: str, event: str, failed: bool) -> float:
    """Return P(top fails | ``event`` failed) or P(top fails | ``event`` works)."""
    return probability(tree, top, {event: 1.0 if failed else 0.0})
