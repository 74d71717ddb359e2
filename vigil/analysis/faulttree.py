"""A neutral, coherent fault-tree representation shared by every analysis.

Both the infrastructure model (``vigil.analysis.build``) and Open-PSA MEF files (``vigil.analysis.mef``)
are translated into a :class:`FaultTree`; the engines (cut sets, probability, importance) only ever see this
structure. Keeping the engines ignorant of YAML and XML is what lets Vigil be checked against SCRAM on SCRAM's
own models.

The tree is *coherent*: gates are OR, AND and AT-LEAST (k of n); there is no negation. A node is referred to by
its id, which names exactly one of: a basic event (a probability of failure), a house event (a constant: ``True``
means "failed"), or a gate. Ids are free-form strings; exporters sanitise them.

Exceptions: :class:`FaultTreeError` (a ``ValueError``) for an unknown reference, a duplicate id, a k outside
``1..len(children)`` or a cycle (the last found by :meth:`FaultTree.check`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["FaultTree", "FaultTreeError", "Gate", "GateKind"]


class FaultTreeError(ValueError):
    """The fault tree is malformed (unknown reference, duplicate id, bad k, cycle)."""


class GateKind(StrEnum):
    OR = "or"
    AND = "and"
    ATLEAST = "atleast"


@dataclass(frozen=True, slots=True)
class Gate:
    """A gate: fails when its children's failures satisfy ``kind``.

    ``k`` is only meaningful for ``ATLEAST`` (fails when at least ``k`` children fail).
    """

    id: str
    kind: GateKind
    children: tuple[str, ...]
    k: int = 0


@dataclass(slots=True)
class FaultTree:
    """Basic events with failure probabilities, house events and gates, addressed by id."""

    events: dict[str, float] = field(default_factory=dict)
    houses: dict[str, bool] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    # Human-readable labels (e.g. the component's display name) for reports; optional.
    labels: dict[str, str] = field(default_factory=dict)

    def add_event(self, id: str, probability: float, *, label: str | None = None) -> None:
        """Add a basic event failing with ``probability`` (0 ≤ p ≤ 1). Raises FaultTreeError on a duplicate."""
        self._check_new(id)
        if not 0.0 <= probability <= 1.0:
            raise FaultTreeError(f"basic event {id!r}: probability {probability} is not in [0, 1]")
        self.events[id] = probability
        if label:
            self.labels[id] = label

    def add_house(self, id: str, failed: bool) -> None:
        """Add a constant node (``True`` = failed). Raises FaultTreeError on a duplicate."""
        self._check_new(id)
        self.houses[id] = failed

    def add_gate(self, id: str, kind: GateKind, children: list[str] | tuple[str, ...], k: int = 0) -> Gate:
        """Add a gate; children may be declared later (checked by :meth:`check`)."""
        self._check_new(id)
        kids = tuple(children)
        if not kids:
            raise FaultTreeError(f"gate {id!r} has no children")
        if kind is GateKind.ATLEAST and not 1 <= k <= len(kids):
            raise FaultTreeError(f"gate {id!r}: at least {k} of {len(kids)} is impossible")
        gate = Gate(id, kind, kids, k if kind is GateKind.ATLEAST else 0)
        self.gates[id] = gate
        return gate

    def _check_new(self, id: str) -> None:
        if id in self.events or id in self.houses or id in self.gates:
            raise FaultTreeError(f"duplicate node id {id!r}")

    def kind_of(self, id: str) -> str:
        """Return ``"event"``, ``"house"`` or ``"gate"``; raises FaultTreeError for an unknown id."""
        if id in self.gates:
            return "gate"
        if id in self.events:
            return "event"
        if id in self.houses:
            return "house"
        raise FaultTreeError(f"unknown node {id!r}")

    def check(self) -> None:
        """Raise FaultTreeError if a child is undefined or the gates form a cycle."""
        for gate in self.gates.values():
            for child in gate.children:
                if child not in self.gates and child not in self.events and child not in self.houses:
                    raise FaultTreeError(f"gate {gate.id!r} refers to unknown node {child!r}")
        for _ in self.topological_gates():
            pass

    def topological_gates(self, roots: list[str] | None = None) -> Iterator[Gate]:
        """Yield the gates reachable from ``roots`` (all gates if None), children before parents.

        Iterative, so deep trees do not hit Python's recursion limit. Raises FaultTreeError on a cycle.
        """
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        starts = list(self.gates) if roots is None else [r for r in roots if r in self.gates]
        for start in starts:
            if state.get(start) == 2:
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            state[start] = 1
            while stack:
                gid, index = stack[-1]
                children = self.gates[gid].children
                if index < len(children):
                    stack[-1] = (gid, index + 1)
                    child = children[index]
                    if child in self.gates:
                        seen = state.get(child)
                        if seen == 1:
                            raise FaultTreeError(f"cycle through gate {child!r}")
                        if seen is None:
                            state[child] = 1
                            stack.append((child, 0))
                else:
                    stack.pop()
                    state[gid] = 2
                    yield self.gates[gid]

    def cone_events(self, root: str) -> set[str]:
        """Return the basic events a node depends on (its cone)."""
        if root in self.events:
            return {root}
        found: set[str] = set()
        for gate in self.topological_gates([root]):
            found.update(c for c in gate.children if c in self.events)
        return found
