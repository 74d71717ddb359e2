"""Cut sets, top-event probability and importance measures of a :class:`~vigil.analysis.faulttree.FaultTree`.

:class:`Analyzer` is built once per tree and then asked about many tops (every service of an infrastructure).

1. Every gate is rewritten once, bottom-up, into a *form* (see :class:`Forms`): the OR of some basic events and
   some *groups* (k-of-n gates with k ≥ 2) from which the part shared by all children has been factored out.
   In an infrastructure a service becomes its single points of failure plus a few small redundancy groups, and
   the variable order that suits one group is chosen per group rather than for the whole fleet (one global
   order made the BDDs of a 10,000-component fleet explode).
2. A top's groups split into independent *components* once the top's own events are set to "works".
3. Minimal cut sets: per group, bottom-up ZBDDs in one manager shared by all tops (OR = union, AND = product,
   AT-LEAST expanded; each step minimised and truncated to the order limit, as SCRAM does, which yields exactly
   the minimal cut sets within the limit), then per component. The top's own events are its order-1 sets.
4. Probability: exact. P(top) = 1 − P(own events work)·Π P(component works | own events work). A component
   whose groups share at most a few events is solved by cases on those events from one BDD per group (built
   once for all tops); otherwise by one BDD of the component, where events that occur in exactly the same
   children become one variable and groups sharing the most events sit next to each other in the order.
   Past a node or time budget: bounds from the cut sets (``"mcub"``), else Monte-Carlo, with ``exact=False``.
5. Importance: from a BDD of the whole top, one backward sweep for every event.

Results are memoised per gate, group and component, so a shared sub-tree is computed once. An Analyzer is not
thread-safe, and the tree must not change while it is used. Unknown ids raise :class:`FaultTreeError`.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from vigil.analysis.bdd import Bdd
from vigil.analysis.estimate import cut_set_bounds, monte_carlo
from vigil.analysis.faulttree import FaultTree
from vigil.analysis.forms import NOTHING, TRUE_GROUP, Form, Forms, Layout, Part, any_fails, minimal_union
from vigil.analysis.zbdd import BASE, EMPTY, BudgetExceededError, Zbdd, recursion_room

__all__ = ["DEFAULT_NODE_LIMIT", "Analyzer", "CutSets", "Importance", "Probability"]

# Nodes one BDD may create: ~250 bytes each in CPython, so ~250 MB and a few seconds. edf9203 needs ~760,000.
DEFAULT_NODE_LIMIT = 1_000_000
# ZBDD operation results kept between calls (~100 bytes each); results per gate and group are always kept.
_CACHE_ENTRIES = 1_000_000
# Groups sharing at most this many events are combined by cases (2^n BDD sweeps) rather than in a joint BDD.
_MAX_SHARED = 4
# Families scanned for their variables at most (sets × order), to skip needless minimisations.
_SCAN_LIMIT = 256
# Groups whose children have at most this many cut sets each get theirs in one joint recursion (Zbdd.at_least).
_JOINT_LIMIT = 64
# Cut sets enumerated at most for the min-cut upper bound when the BDD is over budget, and the most probable
# of them whose pairs tighten the lower bound.
_MCUB_SET_LIMIT = 200_000


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
        self._forms = Forms(tree, self._var)
        self._zbdd = Zbdd()
        self._view = _View(self._zbdd, self._names, self._p)
        # Diagram operations recurse about once per variable level, a few operations deep.
        self._depth = 4 * len(self._names) + 50
        self._group_families: dict[tuple[int, int | None], int] = {}
        self._union_families: dict[tuple[frozenset[int], int | None], int] = {}
        self._component_families: dict[tuple[Part, int | None], int] = {}
        self._avoided: dict[tuple[int, frozenset[int], int | None], int] = {}
        self._group_functions: dict[int, tuple[Bdd, int, dict[int, int]]] = {}
        self._component_exact: dict[Part, float] = {}
        self._too_big: set[Part | Form] = set()  # over the node limit once: not tried again
        self._exact: dict[str, float] = {}

    # -- cut sets -----------------------------------------------------------------------------------------------

    def cut_sets(self, top: str, *, max_order: int | None = 3) -> CutSets:
        """Return the minimal cut sets of ``top`` of order ≤ ``max_order`` (None: all).

        Raises FaultTreeError for an unknown id, ValueError for a negative order.
        """
        if max_order is not None and max_order < 0:
            raise ValueError(f"max_order must be at least 0, not {max_order}")
        form = self._forms.of(top)
        if TRUE_GROUP in form[1]:
            return CutSets(self._view, (), (BASE,), max_order)
        if max_order == 0:
            return CutSets(self._view, (), (), max_order)
        with recursion_room(self._depth):
            families = tuple(self._component_family(part, max_order) for part in self._forms.components(form))
        self._zbdd.trim_caches(_CACHE_ENTRIES)
        return CutSets(self._view, tuple(sorted(form[0])), families, max_order)

    def _component_family(self, part: Part, k: int | None) -> int:
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
            family = self._component_families[key] = minimal_union(self._zbdd, families)
        return family

    def _groups_family(self, groups: frozenset[int], k: int | None) -> int:
        """Return the minimal cut sets (order ≤ k) of the OR of ``groups`` (memoised)."""
        key = (groups, k)
        family = self._union_families.get(key)
        if family is None:
            self._make_group_families(groups, k)
            families = [self._group_families[(group, k)] for group in sorted(groups)]
            family = self._union_families[key] = minimal_union(self._zbdd, families)
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
        if k is not None and max(map(z.count, kids)) <= _JOINT_LIMIT:
            # Small children (an infrastructure's replicas): one joint recursion avoids the large partial
            # products that the order limit cuts down only at the end.
            return z.at_least(need, kids, k)
        # Large children (Aralia's edf9203, or no order limit): products minimised step by step are faster, and
        # their caches serve the other groups too.
        if need == len(kids):
            # Products of minimal families over disjoint variables are minimal: skip the check for those. Only
            # small families are scanned for their variables (a chain of nested ANDs would make it quadratic).
            family = BASE
            seen: set[int] | None = set()
            for kid in kids:
                sets, largest = z.count(kid), z.max_order(kid) or 0
                support = z.support(kid) if sets * (largest + 1) <= _SCAN_LIMIT else None
                disjoint = seen is not None and support is not None and seen.isdisjoint(support)
                family = z.and_minimal(family, kid, k, disjoint=disjoint)
                seen = None if seen is None or support is None else seen | support
            return family
        row = [BASE] + [EMPTY] * need  # row[j]: "at least j of kids[i:]", built from the last child back
        for i in range(len(kids) - 1, -1, -1):
            for j in range(min(need, len(kids) - i), 0, -1):
                # Minimised at every step: without a small order limit, non-minimal sets pile up fast.
                row[j] = z.minimal(z.union(z.product(kids[i], row[j - 1], k), row[j]))
        return row[need]

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
        if TRUE_GROUP in form[1]:
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

    def _component_probability(self, part: Part, deadline: float) -> float:
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

    def _joint_probability(self, part: Part, deadline: float) -> float:
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

    def _by_cases(self, part: Part, shared: list[int], deadline: float) -> float:
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
            form: Form = (NOTHING, frozenset((group,)))
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
        self, form: Form, layout: Layout, deadline: float, *, with_events: bool = False, merge: bool = False
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
        bdd = Bdd([any_fails([self._p[v] for v in members]) for members in classes])
        value: dict[int, int] = {}
        with bdd.budget(nodes=self._node_limit, seconds=deadline - time.monotonic()):
            # Importance sums over the nodes in the order they were made: it keeps the pairwise construction
            # so that its figures stay the same to the last digit. A probability depends on the diagram only.
            at_least = bdd.at_least if with_events else bdd.threshold
            any_of = bdd.disjunction if with_events else functools.partial(bdd.threshold, 1)
            for group in layout.post:
                need, children = self._forms.groups[group]
                kids = [
                    any_of([bdd.any_of(local[v] for v in events if v not in own), *(value[g] for g in groups)])
                    for events, groups in children
                ]
                value[group] = at_least(need, kids)
            root = any_of([value[g] for g in form[1]])
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
            lower, upper, value = cut_set_bounds(cut_sets, self._p, [self._p[self._var[e]] for e in self._cone(top)])
            if upper <= max(lower * 1.05, lower + 1e-12):
                return Probability(value, False, lower, upper, "mcub")
        sampled = monte_carlo(self._tree, top, deadline)
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
