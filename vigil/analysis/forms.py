"""Flattened, factored forms of gates: the rewrite the engine memoises per gate.

Each gate becomes the OR of some basic events and some k-of-n groups, with what all of a group's children share
moved out of the group; groups of one top that share events are then analysed together (a "part"). This is
what lets the engine analyse thousands of tops over one tree without one global diagram (see engine.py).
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from dataclasses import dataclass

from vigil.analysis.faulttree import FaultTree, Gate, GateKind
from vigil.analysis.zbdd import EMPTY, Zbdd

# Events and groups a form may copy from a child OR; a larger child is kept as one group (see Forms).
_FLATTEN_LIMIT = 256

Form = tuple[frozenset[int], frozenset[int]]
"""A node in flattened, factored form: the OR of some basic events (by variable) and some groups (by id)."""

NOTHING: frozenset[int] = frozenset()
TRUE_GROUP = 0  # the group that has always failed: a form holding it is constantly failed
_NEVER: Form = (NOTHING, NOTHING)
_ALWAYS: Form = (NOTHING, frozenset({TRUE_GROUP}))


@dataclass(frozen=True, slots=True)
class Part:
    """Groups of a top that share events, and the top's own events they mention (to be set to "works")."""

    roots: frozenset[int]
    touched: frozenset[int]


@dataclass(frozen=True, slots=True)
class Layout:
    """How to build one BDD: the variable order (global numbers) and the groups, children first."""

    order: list[int]
    post: list[int]


class Forms:
    """The flattened, factored form of every node of one tree, memoised per gate.

    OR gates are flattened into one OR of events and groups. A group is "at least k of n child forms" with
    2 ≤ k ≤ n (an AND when k = n); what all its children share is moved out of it, since
    ``atleast_k(C ∨ x1, …, C ∨ xn) = C ∨ atleast_k(x1, …, xn)``. The replicas of a service share its
    requirements, so groups shrink to the replicas' own failure modes. Group ids are allocated children first.
    """

    def __init__(self, tree: FaultTree, var: dict[str, int]) -> None:
        self._tree = tree
        self._var = var
        self.groups: list[tuple[int, tuple[Form, ...]]] = [(0, ())]
        self._interned: dict[tuple[int, tuple[Form, ...]], int] = {}
        self._memo: dict[str, Form] = {}
        self._components: dict[Form, list[Part]] = {}
        self._under: dict[int, frozenset[int]] = {}

    def of(self, node: str) -> Form:
        """Return the form of ``node``; raises FaultTreeError for an unknown id."""
        memo = self._memo
        if node in memo:
            return memo[node]
        if self._tree.kind_of(node) != "gate":
            return self._leaf(node)
        for gate in _pending(self._tree, node, memo):
            kids = [memo[c] if c in memo else self._leaf(c) for c in gate.children]
            if gate.kind is GateKind.OR:
                memo[gate.id] = self._disjunction(kids)
            else:
                memo[gate.id] = self._at_least(len(kids) if gate.kind is GateKind.AND else gate.k, kids)
        return memo[node]

    def _leaf(self, node: str) -> Form:
        if node in self._tree.houses:
            return _ALWAYS if self._tree.houses[node] else _NEVER
        return frozenset((self._var[node],)), NOTHING

    def _at_least(self, k: int, kids: list[Form]) -> Form:
        live = []
        for kid in kids:
            if TRUE_GROUP in kid[1]:
                k -= 1
            elif kid != _NEVER:
                live.append(kid)
        if k == len(live):  # an AND: a repeated child adds nothing
            live = list(dict.fromkeys(live))
            k = len(live)
        if k <= 0:
            return _ALWAYS
        if k > len(live):
            return _NEVER
        if k == 1:
            return self._disjunction(live)
        common = (frozenset.intersection(*(f[0] for f in live)), frozenset.intersection(*(f[1] for f in live)))
        if common != _NEVER:
            # A child left with nothing cannot fail once the common part works: it drops out.
            live = [rest for f in live if (rest := (f[0] - common[0], f[1] - common[1])) != _NEVER]
            return self._disjunction([common, self._at_least(k, live) if k <= len(live) else _NEVER])
        return NOTHING, self._group(k, live)

    def _disjunction(self, forms: list[Form]) -> Form:
        if len(forms) == 1:
            return forms[0]
        # Copying big forms into every parent is quadratic along a chain of ORs (time and memory): beyond
        # _FLATTEN_LIMIT a child stays one opaque group ("at least 1 of [child]"), shared by its parents.
        forms = [f if len(f[0]) + len(f[1]) <= _FLATTEN_LIMIT else (NOTHING, self._group(1, [f])) for f in forms]
        groups = NOTHING.union(*(f[1] for f in forms)) or NOTHING  # one shared empty set saves memory
        if TRUE_GROUP in groups:
            return _ALWAYS
        return NOTHING.union(*(f[0] for f in forms)) or NOTHING, groups

    def _group(self, k: int, children: list[Form]) -> frozenset[int]:
        """Return ``{id}`` of the (interned) group "at least k of children"."""
        key = (k, tuple(sorted(children, key=lambda f: (sorted(f[0]), sorted(f[1])))))
        group = self._interned.get(key)
        if group is None:
            group = self._interned[key] = len(self.groups)
            self.groups.append(key)
        return frozenset((group,))

    def reachable(self, roots: frozenset[int], done: Container[int] = ()) -> list[int]:
        """Return the groups under ``roots`` (included) that are not in ``done``, children first."""
        found: set[int] = set()
        stack = [g for g in roots if g not in done]
        while stack:
            g = stack.pop()
            if g not in found:
                found.add(g)
                stack.extend(h for child in self.groups[g][1] for h in child[1] if h not in done)
        return sorted(found)  # ids are allocated children first

    def components(self, form: Form) -> list[Part]:
        """Split the groups of ``form`` into parts sharing no event once the form's own events work (memoised).

        The parts are independent: their probabilities multiply and their cut sets never overlap.
        """
        parts = self._components.get(form)
        if parts is None:
            own, roots = form[0], sorted(form[1])
            parent = list(range(len(roots)))
            owner: dict[int, int] = {}
            touched: list[frozenset[int]] = []
            for i, root in enumerate(roots):
                events = self._events_under(root)
                touched.append(events & own)
                for v in events - own:
                    parent[_find(parent, owner.setdefault(v, i))] = _find(parent, i)
            merged: dict[int, tuple[list[int], set[int]]] = {}
            for i, root in enumerate(roots):
                members, touches = merged.setdefault(_find(parent, i), ([], set()))
                members.append(root)
                touches |= touched[i]
            parts = [Part(frozenset(members), frozenset(touches)) for members, touches in merged.values()]
            self._components[form] = parts
        return parts

    def shared_events(self, part: Part) -> set[int]:
        """Return the events (outside ``part.touched``) that more than one group of ``part`` depends on."""
        seen: set[int] = set()
        shared: set[int] = set()
        for root in part.roots:
            events = self._events_under(root) - part.touched
            shared |= seen & events
            seen |= events
        return shared

    def _events_under(self, root: int) -> frozenset[int]:
        """Return the events a group depends on (memoised: the popular groups are asked about for every top)."""
        memo = self._under
        found = memo.get(root)
        if found is None:
            for group in self.reachable(frozenset((root,)), memo):  # children first
                events: set[int] = set()
                for child_events, child_groups in self.groups[group][1]:
                    events.update(child_events, *(memo[g] for g in child_groups))
                memo[group] = frozenset(events)
            found = memo[root]
        return found

    def layout(self, form: Form) -> Layout:
        """Return a variable order for a BDD of ``form`` and its groups, children first.

        The form's own events come first (they add a chain of nodes at most), then the events of its groups in
        depth-first order of first appearance, which keeps each group's variables together; the groups go in
        the order of :meth:`_root_order`.
        """
        order = sorted(form[0])
        placed = set(order)
        post: list[int] = []
        seen: set[int] = set()
        for root in self._root_order(form):
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, self._items(root))]
            while stack:
                group, items = stack[-1]
                for item in items:
                    if item < 0:
                        if ~item not in seen:
                            seen.add(~item)
                            stack.append((~item, self._items(~item)))
                            break
                    elif item not in placed:
                        placed.add(item)
                        order.append(item)
                else:
                    stack.pop()
                    post.append(group)
        return Layout(order, post)

    def equivalent_events(self, layout: Layout, own: frozenset[int]) -> list[list[int]]:
        """Return the events of ``layout``'s groups outside ``own``, in classes occurring in the same children.

        Classes come in ``layout`` order (of their first member).
        """
        places: dict[int, list[tuple[int, int]]] = {}
        for group in layout.post:
            for i, (events, _) in enumerate(self.groups[group][1]):
                for v in events:
                    if v not in own:
                        places.setdefault(v, []).append((group, i))
        classes: dict[tuple[tuple[int, int], ...], list[int]] = {}
        for v in layout.order:
            if v in places:
                classes.setdefault(tuple(places[v]), []).append(v)
        return list(classes.values())

    def _root_order(self, form: Form) -> list[int]:
        """Return the groups of ``form``, each next one sharing the largest fraction of its events with those before.

        Keeping groups that share events (racks, power feeds) close shortens the stretch of the order over which
        a shared event must be remembered, which is what makes a BDD of several groups wide.
        """
        roots = sorted(form[1])
        if len(roots) <= 2:
            return roots
        events = {g: self._events_under(g) - form[0] for g in roots}
        first = min(roots, key=lambda g: (len(events[g]), g))
        chosen, placed, rest = [first], set(events[first]), set(roots) - {first}
        while rest:
            best = max(rest, key=lambda g: (len(events[g] & placed) / (len(events[g]) or 1), -g))
            chosen.append(best)
            placed |= events[best]
            rest.discard(best)
        return chosen

    def _items(self, group: int) -> Iterator[int]:
        # Events as their variable, groups as ~id (negative), in a deterministic order. Children without
        # groups come first, so a chain of nested groups puts each group's own events above its sub-groups'.
        for events, groups in sorted(self.groups[group][1], key=lambda form: bool(form[1])):
            yield from sorted(events)
            yield from (~g for g in sorted(groups))


def minimal_union(z: Zbdd, families: list[int]) -> int:
    """Return the minimal sets of the union of ``families``, merged pairwise so no operand grows long early."""
    while len(families) > 1:
        pairs = zip(families[::2], families[1::2], strict=False)
        families = [z.union(a, b) for a, b in pairs] + families[len(families) // 2 * 2 :]
    return z.minimal(families[0] if families else EMPTY)


def any_fails(probabilities: list[float]) -> float:
    """Return P(at least one of independent events fails), accurate when tiny."""
    if len(probabilities) == 1:
        return probabilities[0]
    if max(probabilities) >= 1.0:
        return 1.0
    return 0.0 - math.expm1(math.fsum(math.log1p(-p) for p in probabilities))


def _find(parent: list[int], i: int) -> int:
    """Return the representative of ``i`` in a union-find forest, halving paths on the way."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _pending(tree: FaultTree, top: str, done: Container[str]) -> list[Gate]:
    """Return the gates under ``top`` (itself included) not in ``done``, children first.

    Stops at finished gates, so asking about many tops that share sub-trees costs each sub-tree once.
    """
    gates = tree.gates
    if top in done:
        return []
    result: list[Gate] = []
    seen = {top}
    stack = [(top, iter(gates[top].children))]
    while stack:
        gid, children = stack[-1]
        for child in children:
            if child in gates and child not in seen and child not in done:
                seen.add(child)
                stack.append((child, iter(gates[child].children)))
                break
        else:
            stack.pop()
            result.append(gates[gid])
    return result
