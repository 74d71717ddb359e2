"""Single failures: which basic events fail a node of a fault tree on their own (its order-1 cut sets).

The reports need these for every service, for every redundancy group and for each of a group's members, and
once more with the startup requirements left out. Asking the cut-set engine for order-1 cut sets each time
builds diagrams; here one pass over the gates with plain sets answers them all: an event fails an OR gate
alone if it fails one child alone, and an AT-LEAST k gate if it fails k children alone (minus the children
that have always failed). A node that has failed whatever happens has no single failure: its only minimal cut
set is the empty one, as the engine says.
"""

from __future__ import annotations

from collections.abc import Mapping

from vigil.analysis.faulttree import FaultTree, GateKind

__all__ = ["SingleFailures"]

_NONE: frozenset[str] = frozenset()


class SingleFailures:
    """Single failures of the nodes of one tree, memoised per gate.

    ``skip`` maps a gate id to positions of its children to leave out (e.g. startup requirements), as if the
    gate had been built without them. The tree must not change while this is used.
    """

    def __init__(self, tree: FaultTree, skip: Mapping[str, tuple[int, ...]] | None = None) -> None:
        self._tree = tree
        self._skip = skip or {}
        # Gate id -> its single failures, or None when it has failed whatever happens.
        self._memo: dict[str, frozenset[str] | None] = {}

    def of(self, node: str) -> frozenset[str]:
        """Return the basic events whose failure alone fails ``node``; raises KeyError for an unknown id."""
        found = self._of(node)
        return _NONE if found is None else found

    def _of(self, node: str) -> frozenset[str] | None:
        tree = self._tree
        if node in tree.events:
            return frozenset((node,))
        if node in tree.houses:
            return None if tree.houses[node] else _NONE
        memo = self._memo
        if node not in memo:
            self._fill(node)
        return memo[node]

    def _fill(self, top: str) -> None:
        """Compute the gates under ``top`` that are not memoised yet, children first, without recursion."""
        gates, memo = self._tree.gates, self._memo
        stack = [(top, iter(gates[top].children))]
        seen = {top}
        while stack:
            gid, children = stack[-1]
            for child in children:
                if child in gates and child not in memo and child not in seen:
                    seen.add(child)
                    stack.append((child, iter(gates[child].children)))
                    break
            else:
                stack.pop()
                memo[gid] = self._gate(gid)

    def _gate(self, gid: str) -> frozenset[str] | None:
        gate = self._tree.gates[gid]
        children = gate.children
        if gid in self._skip:
            skipped = set(self._skip[gid])
            children = tuple(c for i, c in enumerate(children) if i not in skipped)
        kids = [self._of(child) for child in children]
        live = [kid for kid in kids if kid is not None]
        if gate.kind is GateKind.OR:
            return _NONE.union(*live) if len(live) == len(kids) else None
        need = (len(children) if gate.kind is GateKind.AND else gate.k) - (len(kids) - len(live))
        if need <= 0:
            return None
        if need == 1:
            return _NONE.union(*live)
        counts: dict[str, int] = {}
        for kid in live:
            for event in kid:
                counts[event] = counts.get(event, 0) + 1
        return frozenset(event for event, count in counts.items() if count >= need)
