"""Translate the infrastructure model into a coherent fault tree, one gate per component.

For a component ``c`` the gate ``#c`` fails when any of these fails: ``c`` itself (basic event ``c``), one of
its failure domains, what it runs on, or one of its hard requirements. A requirement group becomes an OR
(``all``), AND (``any``) or AT-LEAST gate over its members' gates: a k-of-n group fails when n - k + 1 members
fail. Optional requirements are left out (they degrade, never take down); ``startup_only`` ones are kept,
because every restart needs them and a service restarts many times a year (Galaxy could not boot without all
of its storage directories).

What-if states: a component ``down`` or in ``maintenance`` has its basic event replaced by a failed house
event; a ``degraded`` one still serves what depends on it directly, but cannot stand in as a member of a
redundancy group (a backup still re-syncing is no fallback), so inside ``any``/``at_least`` groups it is a
failed constant.

Gate ids start with ``#``, which component ids cannot contain, so they never collide with event ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.analysis.faulttree import FaultTree, GateKind
from vigil.model.types import Component, Domain, GroupMode, Model, Requirement, State

__all__ = ["DEGRADED_MEMBER", "ModelTree", "build_fault_tree", "gate_id"]

# The failed constant standing for a degraded member of a redundancy group.
DEGRADED_MEMBER = "#degraded"
_OUT = (State.DOWN, State.MAINTENANCE)


def gate_id(node_id: str) -> str:
    """Return the id of the gate that fails when component or domain ``node_id`` is down."""
    return "#" + node_id


@dataclass(slots=True)
class ModelTree:
    """The fault tree of a model and, for reports, which group gate came from which requirement."""

    tree: FaultTree
    groups: dict[str, tuple[str, Requirement]] = field(default_factory=dict)  # gate id -> (component, req)
    # Gate id -> positions of its children that are startup_only requirements (what "needed to start" drops).
    startup: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def gate(self, node_id: str) -> str:
        """Return the top gate of component or domain ``node_id``; raises KeyError if unknown."""
        gid = gate_id(node_id)
        if gid not in self.tree.gates:
            raise KeyError(node_id)
        return gid


def build_fault_tree(model: Model) -> ModelTree:
    """Return the fault tree of ``model`` (every component and domain has a gate, see module doc)."""
    result = ModelTree(FaultTree())
    tree = result.tree
    degraded = {c.id for c in model.components.values() if c.state is State.DEGRADED}
    if degraded:
        tree.add_house(DEGRADED_MEMBER, True)
    for domain in model.domains.values():
        _add_basic(tree, domain)
        tree.add_gate(gate_id(domain.id), GateKind.OR, [domain.id, *map(gate_id, domain.domains)])
    for comp in model.components.values():
        _add_basic(tree, comp)
        children = [comp.id, *map(gate_id, comp.domains)]
        if comp.runs_on is not None:
            children.append(gate_id(comp.runs_on))
        startup = []
        for index, req in enumerate(comp.requirements):
            if not req.optional:
                if req.startup_only:
                    startup.append(len(children))
                children.append(_requirement_node(result, comp, index, req, degraded))
        tree.add_gate(gate_id(comp.id), GateKind.OR, children)
        if startup:
            result.startup[gate_id(comp.id)] = tuple(startup)
    return result


def _add_basic(tree: FaultTree, node: Component | Domain) -> None:
    if node.state in _OUT:
        tree.add_house(node.id, True)
    else:
        tree.add_event(node.id, 1.0 - node.availability, label=node.name)


def _requirement_node(result: ModelTree, comp: Component, index: int, req: Requirement, degraded: set[str]) -> str:
    if not req.is_group:
        return gate_id(req.members[0])
    if req.mode is GroupMode.ALL:
        # Every member is needed, so a degraded member still serves: no constant here.
        kind, children, k = GateKind.OR, [gate_id(m) for m in req.members], 0
    else:
        children = [DEGRADED_MEMBER if m in degraded else gate_id(m) for m in req.members]
        n = len(children)
        failures_to_fail = n - req.k + 1
        kind, k = (GateKind.AND, 0) if failures_to_fail == n else (GateKind.ATLEAST, failures_to_fail)
        if failures_to_fail == 1:
            kind, k = GateKind.OR, 0
    gid = f"{gate_id(comp.id)}#{index}"
    result.tree.add_gate(gid, kind, children, k)
    result.groups[gid] = (comp.id, req)
    return gid
