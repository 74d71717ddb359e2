"""Cut sets, top-event probability and importance measures of a :class:`~vigil.analysis.faulttree.FaultTree`.

:class:`Analyzer` is built once per tree and then asked about many tops (every service of an infrastructure).

1. Every gate is rewritten once, bottom-up, into a *form* (see :class:`_Forms`): the OR of some basic events and
   some *groups* (k-of-n gates with k ≥ 2) from which the part shared by all children has been factored out.
   In an infrastructure a service becomes its single points of failure plus a few small redundancy groups, and
   the variable order that suits one group is chosen per group rather than for the whole fleet (one global
   order made the BDDs of a 10,000-component fleet explode).
2. A top's groups split into independent *components* once the top's own events are set to "works".
3. Minimal cut sets: per group, bottom-up ZBDDs in one manager shared by all tops (OR = union, AND = product,
   AT-LEAST expanded; each step minimised and truncated to the order limit, as SCRAM does, which yields exactly
   the minimal cut sets within the limit), then per component. The top's own events are its order-1 sets.
4. Probability: exact, from one BDD per group (built once, variable order depth-first from the group),
   conditioned on the top's own events working and, within a component, on the few events its groups share.
   Past a node or time budget: bounds from the cut sets (``"mcub"``), else Monte-Carlo, with ``exact=False``.
5. Importance: from a BDD of the whole top, one backward sweep for every event.

Results are memoised per gate, group and component, so a shared sub-tree is computed once. An Analyzer is not
thread-safe, and the tree must not change while it is used. Unknown ids raise :class:`FaultTreeError`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from vigil.analysis.bdd import Bdd
from vigil.analysis.faulttree import FaultTree, Gate, GateKind
from vigil.analysis.zbdd import BASE, EMPTY, BudgetExceededError, Zbdd, recursion_room

__all__ = ["DEFAULT_NODE_LIMIT", "Analyzer", "CutSets", "Importance", "Probability"]

# Nodes one BDD may create: ~250 bytes each in CPython, so ~250 MB and a few seconds. edf9203 needs ~760,000.
DEFAULT_NODE_LIMIT = 1_000_000
# ZBDD operation results kept between calls (~100 bytes each); results per gate and group are always kept.
_CACHE_ENTRIES = 1_000_000
# Groups sharing at most this many events are combined by cases (2^n BDD sweeps) rather than in a joint BDD.
_MAX_SHARED = 4
# Events and groups a form may copy from a child OR; a larger child is kept as one group (see _Forms).
_FLATTEN_LIMIT = 256
# Cut sets enumerated at most for the min-cut upper bound when the BDD is over budget, and the most probable
# of them whose pairs tighten the lower bound.
_MCUB_SET_LIMIT = 200_000
_BONFERRONI_SETS = 256


@dataclass(frozen=True, slots=True)
class Probability:
    """P(top fails): exact (BDD) or an estimate with bounds (min-cut upper bound, Monte-Carlo)."""

    value: float
    exact: bool
    lower: float
    upper: float
    method: str  # "bdd" | "mcub" | "monte-carlo"


@dataclass(frozen=True, slots=True)
class Importance:
    """Importance of one basic event for one top."""

    birnbaum: float  # P(top | event failed) - P(top | event works)
    fussell_vesely: float  # (P(top) - P(top | event works)) / P(top); 0 when P(top) == 0


@dataclass(frozen=True, slots=True)
class _View:
    """What a CutSets needs of its analyzer: the ZBDD manager, event names and probabilities by variable."""

    zbdd: Zbdd
    names: Sequence[str]
    p: Sequence[float]


class CutSets:
    """The minimal cut sets of a top whose order is at most ``max_order`` (None: no limit).

    Held as the top's single points of failure plus ZBDDs of independent parts sharing no event (so no set is
    listed twice); nothing is enumerated until asked for, and counting happens on the diagrams.
    """

    def __init__(self, view: _View, singles: tuple[int, ...], families: tuple[int, ...], max_order: int | None) -> None:
        self._view = view
        self._singles = singles
        self._families = families
        self.max_order = max_order

    @cached_property
    def count(self) -> int:
        """The number of minimal cut sets."""
        return len(self._singles) + sum(self._view.zbdd.count(f) for f in self._families)

    @cached_property
    def order_distribution(self) -> dict[int, int]:
        """``{order: number of minimal cut sets of that order}`` in increasing order; empty orders omitted."""
        orders: dict[int, int] = {1: len(self._singles)} if self._singles else {}
        for family in self._families:
            for order, number in self._view.zbdd.count_by_order(family).items():
                orders[order] = orders.get(order, 0) + number
        return dict(sorted(orders.items()))

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[frozenset[str]]:
        """Yield the cut sets lazily, in no particular order."""
        names = self._view.names
        for variables in self._variable_sets():
            yield frozenset(names[v] for v in variables)

    def _variable_sets(self) -> Iterator[tuple[int, ...]]:
        """Yield the cut sets as tuples of variable numbers (the analyzer's), lazily."""
        yield from ((v,) for v in self._singles)
        for family in self._families:
            yield from self._view.zbdd.iter_sets(family)

    def ranked(self, limit: int | None = None) -> list[tuple[frozenset[str], float]]:
        """Return ``(cut set, product of its events' probabilities)``, most probable first, ties by sorted ids.

        With a limit only the best sets are searched for (best-first on the ZBDDs), not all enumerated.
        """
        if limit is not None and limit <= 0:
            return []
        z, names, p = self._view.zbdd, self._view.names, self._view.p
        found: Iterable[tuple[int, ...]] = self._variable_sets()
        if limit is not None:
            best = (z.heaviest(family, p, limit) for family in self._families)
            found = itertools.chain(((v,) for v in self._singles), (s for part in best for s, _ in part))
        # Multiplying the sorted probabilities makes equal multisets tie exactly, whatever the order.
        scored = [(-math.prod(sorted(p[v] for v in s)), sorted(names[v] for v in s)) for s in found]
        chosen = heapq.nsmallest(limit, scored) if limit is not None else sorted(scored)
        return [(frozenset(ids), -negative) for negative, ids in chosen]

    def _rare_event(self) -> tuple[float, dict[int, float]]:
        """Return Σ P(cut set) and its derivative by each event's probability (keyed by variable)."""
        z, p = self._view.zbdd, self._view.p
        slopes: dict[int, float] = dict.fromkeys(self._singles, 1.0)
        total = math.fsum(p[v] for v in self._singles)
        for family in self._families:
            total += z.rare_event(family, p)
            for v, slope in z.rare_event_slopes(family, p).items():
                slopes[v] = slopes.get(v, 0.0) + slope
        return total, slopes


Form = tuple[frozenset[int], frozenset[int]]
"""A node in flattened, factored form: the OR of some basic events (by variable) and some groups (by id)."""

_NOTHING: frozenset[int] = frozenset()
_TRUE_GROUP = 0  # the group that has always failed: a form holding it is constantly failed
_NEVER: Form = (_NOTHING, _NOTHING)
_ALWAYS: Form = (_NOTHING, frozenset({_TRUE_GROUP}))


@dataclass(frozen=True, slots=True)
class _Component:
    """Groups of a top that share events, and the top's own events they mention (to be set to "works")."""

    roots: frozenset[int]
    touched: frozenset[int]


@dataclass(frozen=True, slots=True)
class _Layout:
    """How to build one BDD: the variable order (global numbers) and the groups, children first."""

    order: list[int]
    post: list[int]


class _Forms:
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
        self._components: dict[Form, list[_Component]] = {}

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
        return frozenset((self._var[node],)), _NOTHING

    def _at_least(self, k: int, kids: list[Form]) -> Form:
        live = []
        for kid in kids:
            if _TRUE_GROUP in kid[1]:
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
        return _NOTHING, self._group(k, live)

    def _disjunction(self, forms: list[Form]) -> Form:
        if len(forms) == 1:
            return forms[0]
        # Copying big forms into every parent is quadratic along a chain of ORs (time and memory): beyond
        # _FLATTEN_LIMIT a child stays one opaque group ("at least 1 of [child]"), shared by its parents.
        forms = [f if len(f[0]) + len(f[1]) <= _FLATTEN_LIMIT else (_NOTHING, self._group(1, [f])) for f in forms]
        groups = _NOTHING.union(*(f[1] for f in forms)) or _NOTHING  # one shared empty set saves memory
        if _TRUE_GROUP in groups:
            return _ALWAYS
        return _NOTHING.union(*(f[0] for f in forms)) or _NOTHING, groups

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

    def components(self, form: Form) -> list[_Component]:
        """Split the groups of ``form`` into parts sharing no event once the form's own events work (memoised).

        The parts are independent: their probabilities multiply and their cut sets never overlap.
        """
        parts = self._components.get(form)
        if parts is None:
            own, roots = form[0], sorted(form[1])
            parent = list(range(len(roots)))
            owner: dict[int, int] = {}
            touched: list[set[int]] = []
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
            parts = [_Component(frozenset(members), frozenset(touches)) for members, touches in merged.values()]
            self._components[form] = parts
        return parts

    def shared_events(self, part: _Component) -> set[int]:
        """Return the events (outside ``part.touched``) that more than one group of ``part`` depends on."""
        seen: set[int] = set()
        shared: set[int] = set()
        for root in part.roots:
            events = self._events_under(root) - part.touched
            shared |= seen & events
            seen |= events
        return shared

    def _events_under(self, root: int) -> set[int]:
        events: set[int] = set()
        seen = {root}
        stack = [root]
        while stack:
            for child_events, child_groups in self.groups[stack.pop()][1]:
                events |= child_events
                stack.extend(g for g in child_groups if g not in seen)
                seen.update(child_groups)
        return events

    def layout(self, form: Form) -> _Layout:
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
        return _Layout(order, post)

    def equivalent_events(self, layout: _Layout, own: frozenset[int]) -> list[list[int]]:
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


def _minimal_union(z: Zbdd, families: list[int]) -> int:
    """Return the minimal sets of the union of ``families``, merged pairwise so no operand grows long early."""
    while len(families) > 1:
        pairs = zip(families[::2], families[1::2], strict=False)
        families = [z.union(a, b) for a, b in pairs] + families[len(families) // 2 * 2 :]
    return z.minimal(families[0] if families else EMPTY)


def _any_fails(probabilities: list[float]) -> float:
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


class Analyzer:
    """Answers cut-set, probability and importance questions about any node of one fault tree.

    ``node_limit`` caps the nodes of each BDD (the cut sets of a fallback may use DEFAULT_NODE_LIMIT ZBDD
    nodes). Raises FaultTreeError (from the constructor) if the tree is malformed.
    """

    def __init__(self, tree: FaultTree, *, node_limit: int = DEFAULT_NODE_LIMIT) -> None:
        tree.check()
        self._tree = tree
        self._names = _variable_order(tree)
        self._var = {name: v for v, name in enumerate(self._names)}
        self._p = [tree.events[name] for name in self._names]
        self._node_limit = node_limit
        self._forms = _Forms(tree, self._var)
        self._zbdd = Zbdd()
        self._view = _View(self._zbdd, self._names, self._p)
        # Diagram operations recurse about once per variable level, a few operations deep.
        self._depth = 4 * len(self._names) + 50
        self._group_families: dict[tuple[int, int | None], int] = {}
        self._union_families: dict[tuple[frozenset[int], int | None], int] = {}
        self._component_families: dict[tuple[_Component, int | None], int] = {}
        self._avoided: dict[tuple[int, frozenset[int], int | None], int] = {}
        self._group_functions: dict[int, tuple[Bdd, int, dict[int, int]]] = {}
        self._component_exact: dict[_Component, float] = {}
        self._too_big: set[_Component | Form] = set()  # over the node limit once: not tried again
        self._exact: dict[str, float] = {}

    # -- cut sets -----------------------------------------------------------------------------------------------

    def cut_sets(self, top: str, *, max_order: int | None = 3) -> CutSets:
        """Return the minimal cut sets of ``top`` of order ≤ ``max_order`` (None: all).

        Raises FaultTreeError for an unknown id, ValueError for a negative order.
        """
        if max_order is not None and max_order < 0:
            raise ValueError(f"max_order must be at least 0, not {max_order}")
        form = self._forms.of(top)
        if _TRUE_GROUP in form[1]:
            return CutSets(self._view, (), (BASE,), max_order)
        if max_order == 0:
            return CutSets(self._view, (), (), max_order)
        with recursion_room(self._depth):
            families = tuple(self._component_family(part, max_order) for part in self._forms.components(form))
        self._zbdd.trim_caches(_CACHE_ENTRIES)
        return CutSets(self._view, tuple(sorted(form[0])), families, max_order)

    def _component_family(self, part: _Component, k: int | None) -> int:
        """Return the minimal cut sets (order ≤ k) of one independent part of a top's groups (memoised)."""
        key = (part, k)
        family = self._component_families.get(key)
        if family is None:
            self._make_group_families(part.roots, k)
            # Sets holding one of the top's own events are not minimal. Dropping them group by group first is
            # cheaper: the same groups recur with the same own events (site, provider...) across many tops.
            families = []
            for group in sorted(part.roots):
                avoided = self._avoided.get((group, part.touched, k))
                if avoided is None:
                    # What is left of a minimal family is minimal: say so, or minimal() would check it again.
                    avoided = self._zbdd.avoiding(self._group_families[(group, k)], part.touched)
                    self._zbdd.known_minimal(avoided)
                    self._avoided[(group, part.touched, k)] = avoided
                families.append(avoided)
            family = self._component_families[key] = _minimal_union(self._zbdd, families)
        return family

    def _groups_family(self, groups: frozenset[int], k: int | None) -> int:
        """Return the minimal cut sets (order ≤ k) of the OR of ``groups`` (memoised)."""
        key = (groups, k)
        family = self._union_families.get(key)
        if family is None:
            self._make_group_families(groups, k)
            families = [self._group_families[(group, k)] for group in sorted(groups)]
            family = self._union_families[key] = _minimal_union(self._zbdd, families)
        return family

    def _make_group_families(self, groups: frozenset[int], k: int | None) -> None:
        memo = self._group_families
        for group in self._forms.reachable(groups, _KeyView(memo, k)):
            memo[(group, k)] = self._group_family(group, k)

    def _group_family(self, group: int, k: int | None) -> int:
        """Return the minimal cut sets (order ≤ k) of one group; those of the groups below must be memoised."""
        z = self._zbdd
        need, children = self._forms.groups[group]
        kids = []
        for events, groups in children:
            below = self._groups_family(groups, k) if groups else EMPTY
            kids.append(z.union(z.avoiding(below, events), z.singletons(events)))
        if need == len(kids):
            # Products of minimal families over disjoint variables are minimal: skip the check for those.
            family, seen = BASE, set[int]()
            for kid in kids:
                support = z.support(kid)
                family = z.and_minimal(family, kid, k, disjoint=seen.isdisjoint(support))
                seen |= support
            return family
        row = [BASE] + [EMPTY] * need  # row[j]: "at least j of kids[i:]", built from the last child back
        for i in range(len(kids) - 1, -1, -1):
            for j in range(min(need, len(kids) - i), 0, -1):
                row[j] = z.union(z.product(kids[i], row[j - 1], k), row[j])
        return z.minimal(row[need])

    # -- probability --------------------------------------------------------------------------------------------

    def probability(self, top: str, *, budget_seconds: float = 10.0) -> Probability:
        """Return P(top fails): exact from BDDs, else bounds (``exact=False``) found within about as long again.

        Raises FaultTreeError for an unknown id.
        """
        value = self._exact.get(top)
        if value is None:
            try:
                value = self._exact_probability(self._forms.of(top), time.monotonic() + budget_seconds)
            except BudgetExceededError:
                return self._estimate(top, budget_seconds)
            self._exact[top] = value
        return Probability(value, True, value, value, "bdd")

    def _exact_probability(self, form: Form, deadline: float) -> float:
        """Return 1 − P(own events work)·Π P(component works | own events work); raises BudgetExceededError."""
        if _TRUE_GROUP in form[1]:
            return 1.0
        own = [self._p[v] for v in form[0]]
        if any(p >= 1.0 for p in own):
            return 1.0
        # Summing logs of survival keeps 1 − Π(1 − p) accurate when it is tiny.
        logs = [math.log1p(-p) for p in own]
        for part in self._forms.components(form):
            p = self._component_probability(part, deadline)
            if p >= 1.0:
                return 1.0
            logs.append(math.log1p(-p))
        return 0.0 - math.expm1(math.fsum(logs))

    def _component_probability(self, part: _Component, deadline: float) -> float:
        """Return P(some group of ``part`` fails | the top's own events work), memoised.

        Raises BudgetExceededError; a part or group once over the node limit fails again at once.
        """
        value = self._component_exact.get(part)
        if value is None:
            with recursion_room(self._depth):
                shared = self._forms.shared_events(part)
                if len(shared) <= _MAX_SHARED:
                    value = self._by_cases(part, sorted(shared), deadline)
                else:
                    value = self._joint_probability(part, deadline)
            self._component_exact[part] = value
        return value

    def _joint_probability(self, part: _Component, deadline: float) -> float:
        if part in self._too_big:
            raise BudgetExceededError("this part of the tree is over the BDD node limit", nodes=True)
        form = (part.touched, part.roots)
        try:
            bdd, root = self._function(form, self._forms.layout(form), deadline, merge=True)
        except BudgetExceededError as exc:
            if exc.nodes:
                self._too_big.add(part)
            raise
        return bdd.probability(root)

    def _by_cases(self, part: _Component, shared: list[int], deadline: float) -> float:
        """Return P(OR of the groups of ``part``) from each group's own BDD, by cases on the events they share.

        Given the shared events the groups are independent: Σ_case P(case)·(1 − Π(1 − P(group | case))).
        """
        functions = [self._group_function(group, deadline) for group in sorted(part.roots)]
        terms = []
        for case in itertools.product((0.0, 1.0), repeat=len(shared)):
            weight = math.prod(self._p[v] if bit else 1.0 - self._p[v] for v, bit in zip(shared, case, strict=True))
            fixed = dict(zip(shared, case, strict=True)) | dict.fromkeys(part.touched, 0.0)
            logs = []
            for bdd, root, local in functions:
                p = bdd.probability_given(root, {local[v]: value for v, value in fixed.items() if v in local})
                logs.append(math.log1p(-p) if p < 1.0 else -math.inf)
            terms.append(weight * -math.expm1(math.fsum(logs)))
        return math.fsum(terms)

    def _group_function(self, group: int, deadline: float) -> tuple[Bdd, int, dict[int, int]]:
        """Return the BDD of one group (memoised), its root and the local number of each global variable."""
        hit = self._group_functions.get(group)
        if hit is None:
            form: Form = (_NOTHING, frozenset((group,)))
            if form in self._too_big:
                raise BudgetExceededError("this group is over the BDD node limit", nodes=True)
            layout = self._forms.layout(form)
            try:
                bdd, root = self._function(form, layout, deadline)
            except BudgetExceededError as exc:
                if exc.nodes:
                    self._too_big.add(form)
                raise
            hit = self._group_functions[group] = (bdd, root, {v: i for i, v in enumerate(layout.order)})
        return hit

    def _function(
        self, form: Form, layout: _Layout, deadline: float, *, with_events: bool = False, merge: bool = False
    ) -> tuple[Bdd, int]:
        """Return a BDD of ``form``'s groups (or of the whole form) and its root, variables in ``layout`` order.

        Without ``with_events`` the groups are built as if the form's own events worked. With ``merge`` the
        events that occur in exactly the same children become one variable (they always fail together as far
        as these groups can tell): fewer variables, same probability, but the variables are no longer events.
        Raises BudgetExceededError past the node limit or the deadline.
        """
        own = form[0]
        classes = self._forms.equivalent_events(layout, own) if merge else [[v] for v in layout.order]
        local = {v: i for i, members in enumerate(classes) for v in members}
        bdd = Bdd([_any_fails([self._p[v] for v in members]) for members in classes])
        value: dict[int, int] = {}
        with bdd.budget(nodes=self._node_limit, seconds=deadline - time.monotonic()):
            for group in layout.post:
                need, children = self._forms.groups[group]
                kids = [
                    bdd.disjunction([bdd.any_of(local[v] for v in events if v not in own), *(value[g] for g in groups)])
                    for events, groups in children
                ]
                value[group] = bdd.at_least(need, kids)
            root = bdd.disjunction([value[g] for g in form[1]])
            if with_events:
                root = bdd.or_(bdd.any_of(local[v] for v in own), root)
        return bdd, root

    # -- fallback -----------------------------------------------------------------------------------------------

    def _estimate(self, top: str, seconds: float) -> Probability:
        """Return bounds from the cut sets if they are tight, else a Monte-Carlo estimate within them."""
        deadline = time.monotonic() + seconds
        cut_sets = self._affordable_cut_sets(top, deadline)
        lower, upper, value = 0.0, 1.0, 0.5
        if cut_sets is not None:
            lower, upper, value = _cut_set_bounds(cut_sets, self._p, [self._p[self._var[e]] for e in self._cone(top)])
            if upper <= max(lower * 1.05, lower + 1e-12):
                return Probability(value, False, lower, upper, "mcub")
        sampled = _monte_carlo(self._tree, top, deadline)
        if sampled is None or sampled[1] > upper or sampled[2] < lower:
            return Probability(value, False, lower, upper, "mcub")
        estimate, low, high = sampled
        low, high = max(low, lower), min(high, upper)
        return Probability(min(max(estimate, low), high), False, low, high, "monte-carlo")

    def _affordable_cut_sets(self, top: str, deadline: float) -> CutSets | None:
        """Return all minimal cut sets if affordable, else those of the highest order limit that is; or None."""
        best = None
        for order in (None, *range(1, 64)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                with self._zbdd.budget(nodes=DEFAULT_NODE_LIMIT, seconds=remaining / 2):
                    cut_sets = self.cut_sets(top, max_order=order)
                    affordable = cut_sets.count <= _MCUB_SET_LIMIT
            except BudgetExceededError:
                if order is None:
                    continue
                break
            if not affordable:
                break
            best = cut_sets
            if order is None:
                break
        return best

    def _cone(self, top: str) -> set[str]:
        if top in self._tree.houses:
            return set()
        return self._tree.cone_events(top)

    # -- importance ---------------------------------------------------------------------------------------------

    def importance(self, top: str, *, budget_seconds: float = 10.0) -> dict[str, Importance]:
        """Return the Birnbaum and Fussell-Vesely importance of every basic event in ``top``'s cone.

        Exact from a BDD of the top; past the budget, the rare-event approximation on the cut sets of order ≤ 3.
        Raises FaultTreeError for an unknown id.
        """
        form = self._forms.of(top)
        layout = self._forms.layout(form)
        try:
            with recursion_room(self._depth):
                bdd, root = self._function(form, layout, time.monotonic() + budget_seconds, with_events=True)
        except BudgetExceededError:
            total, slopes = self.cut_sets(top, max_order=3)._rare_event()
        else:
            total = bdd.probability(root)
            slopes = {layout.order[v]: slope for v, slope in bdd.birnbaum(root).items()}
        result = {}
        for name in sorted(self._cone(top), key=self._var.__getitem__):
            v = self._var[name]
            birnbaum = slopes.get(v, 0.0)
            result[name] = Importance(birnbaum, self._p[v] * birnbaum / total if total > 0 else 0.0)
        return result


class _KeyView:
    """``g in view`` means ``(g, k) in memo``: which groups already have a family for order limit k."""

    def __init__(self, memo: dict[tuple[int, int | None], int], k: int | None) -> None:
        self._memo = memo
        self._k = k

    def __contains__(self, group: object) -> bool:
        return (group, self._k) in self._memo


def _variable_order(tree: FaultTree) -> list[str]:
    """Return the basic events in depth-first, left-to-right order of first appearance from the root gates.

    Roots are the gates no gate refers to, in declaration order; events under no gate come last. This numbers
    the ZBDD variables; it is deterministic and keeps the events of a sub-tree together.
    """
    referenced = {child for gate in tree.gates.values() for child in gate.children}
    roots = [gid for gid in tree.gates if gid not in referenced]
    seen_gates: set[str] = set(roots)
    order: dict[str, None] = {}
    for root in roots:
        stack = [iter(tree.gates[root].children)]
        while stack:
            for child in stack[-1]:
                if child in tree.events:
                    order.setdefault(child)
                elif child in tree.gates and child not in seen_gates:
                    seen_gates.add(child)
                    stack.append(iter(tree.gates[child].children))
                    break
            else:
                stack.pop()
    for name in tree.events:
        order.setdefault(name)
    return list(order)


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


# -- fallback estimates ---------------------------------------------------------------------------------------


def _cut_set_bounds(cut_sets: CutSets, p: Sequence[float], cone: Sequence[float]) -> tuple[float, float, float]:
    """Return (lower, upper, estimate) of P(top) from its minimal cut sets (those of order ≤ max_order).

    Lower: the larger of the exact probability that one of a greedy choice of pairwise disjoint sets fails
    and the second Bonferroni bound Σ P(Ci) − Σ P(Ci ∩ Cj) over the most probable sets. Upper: the min-cut
    upper bound 1 − Π(1 − P(Ci)) (Esary-Proschan, for coherent trees), plus, when the sets are truncated,
    P(more than max_order events of the cone fail), which covers every larger set. Estimate: the MCUB.
    """
    scored = sorted(((math.prod(p[v] for v in s), s) for s in cut_sets._variable_sets()), reverse=True)
    survive_all, survive_disjoint = 1.0, 1.0
    used: set[int] = set()
    for prob, variables in scored:
        survive_all *= 1.0 - prob
        if used.isdisjoint(variables):
            used.update(variables)
            survive_disjoint *= 1.0 - prob
    best = [(prob, set(variables)) for prob, variables in scored[:_BONFERRONI_SETS]]
    pairs = (math.prod(p[v] for v in a | b) for (_, a), (_, b) in itertools.combinations(best, 2))
    bonferroni = math.fsum(prob for prob, _ in best) - math.fsum(pairs)
    lower, mcub = max(1.0 - survive_disjoint, bonferroni), 1.0 - survive_all
    order = cut_sets.max_order
    upper = min(1.0, mcub + (0.0 if order is None else _more_than(order, cone)))
    return lower, upper, min(mcub, upper)


def _more_than(order: int, probabilities: Sequence[float]) -> float:
    """Return P(more than ``order`` of independent events with these probabilities occur)."""
    dist = [1.0] + [0.0] * order  # dist[j] = P(exactly j so far), for j ≤ order
    for p in probabilities:
        for j in range(order, 0, -1):
            dist[j] = dist[j] * (1.0 - p) + dist[j - 1] * p
        dist[0] *= 1.0 - p
    return max(0.0, 1.0 - math.fsum(dist))


def _monte_carlo(tree: FaultTree, top: str, deadline: float) -> tuple[float, float, float] | None:
    """Return (estimate, 95 % Wilson interval) of P(top) from bit-parallel sampling until ``deadline``.

    Batches start small and double, so a huge tree overruns the deadline by about one small batch. Returns
    None if no batch finished in time.
    """
    rng = random.Random(0x5EED)  # reproducible answers
    cone = sorted(_cone_of(tree, top))
    gates = list(tree.topological_gates([top]))
    batch, failures, samples = 1 << 10, 0, 0
    while time.monotonic() < deadline:
        failures += _simulate(tree, top, cone, gates, batch, rng).bit_count()
        samples += batch
        batch = min(batch * 2, 1 << 16)
    if samples == 0:
        return None
    return failures / samples, *_wilson(failures, samples)


def _simulate(tree: FaultTree, top: str, cone: list[str], gates: list[Gate], bits: int, rng: random.Random) -> int:
    """Return a ``bits``-wide integer whose bit i says whether ``top`` failed in random sample i."""
    mask = (1 << bits) - 1
    values = {name: mask if failed else 0 for name, failed in tree.houses.items()}
    for name in cone:
        values[name] = _bernoulli_bits(tree.events[name], bits, rng)
    for gate in gates:
        kids = [values[c] for c in gate.children]
        if gate.kind is GateKind.OR:
            values[gate.id] = _or_all(kids)
        elif gate.kind is GateKind.AND:
            values[gate.id] = _and_all(kids, mask)
        else:
            at_least = [0] * gate.k  # at_least[j]: "more than j children failed", per sample
            for kid in kids:
                for j in range(gate.k - 1, 0, -1):
                    at_least[j] |= at_least[j - 1] & kid
                at_least[0] |= kid
            values[gate.id] = at_least[-1]
    return values[top]


def _cone_of(tree: FaultTree, top: str) -> set[str]:
    return {top} if top in tree.events else set() if top in tree.houses else tree.cone_events(top)


def _or_all(values: list[int]) -> int:
    result = 0
    for value in values:
        result |= value
    return result


def _and_all(values: list[int], mask: int) -> int:
    result = mask
    for value in values:
        result &= value
    return result


def _bernoulli_bits(p: float, bits: int, rng: random.Random) -> int:
    """Return ``bits`` independent Bernoulli(p) bits as an integer (p rounded to about 24 significant bits)."""
    if p <= 0.0:
        return 0
    if p >= 1.0:
        return (1 << bits) - 1
    # Reading p's binary digits from the least significant: r = U | r for a 1, U & r for a 0, gives P(bit) = p.
    precision = min(60, 24 - math.frexp(p)[1])
    digits = round(p * (1 << precision))
    result = 0
    for _ in range(precision):
        word = rng.getrandbits(bits)
        result = (word | result) if digits & 1 else (word & result)
        digits >>= 1
    return result


def _wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Return the Wilson score interval of a binomial proportion (95 % by default)."""
    phat = successes / n
    denominator = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
