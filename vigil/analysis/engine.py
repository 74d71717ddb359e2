"""Cut sets, top-event probability and importance measures of a :class:`~vigil.analysis.faulttree.FaultTree`.

:class:`Analyzer` is the public entry point. It is built once per tree and then asked about many tops (every
service of an infrastructure), so it keeps one ZBDD manager and one BDD manager with a single variable order
for the whole tree and memoises the diagram of every gate: a sub-tree shared by many tops is computed once.

* Minimal cut sets are built bottom-up as ZBDDs (OR = union, AND = product, AT-LEAST expanded, each result
  minimised and truncated to the order limit; the approach of SCRAM and Rauzy). Truncating at every step gives
  exactly the minimal cut sets whose order is within the limit, because sets only grow on the way up.
* Probability is exact on the BDD of the top (Shannon decomposition). When the BDD outgrows its node or time
  budget the answer is a pair of bounds from the cut sets, or a Monte-Carlo interval (see :mod:`.bounds`
  functions below), marked ``exact=False``.
* Importance (Birnbaum, Fussell-Vesely) comes from the same BDD in one sweep.

The tree must not change while an Analyzer uses it. Raises :class:`FaultTreeError` for unknown ids.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from vigil.analysis.bdd import FALSE, TRUE, Bdd, MinimalSolutions
from vigil.analysis.faulttree import FaultTree, Gate, GateKind
from vigil.analysis.zbdd import BASE, EMPTY, BudgetExceededError, Zbdd

__all__ = ["DEFAULT_NODE_LIMIT", "Analyzer", "CutSets", "Importance", "Probability"]

# About 150 bytes a node in CPython: a million nodes is ~150 MB, a few seconds of work in pure Python.
DEFAULT_NODE_LIMIT = 1_000_000
# Cut sets enumerated at most to compute the min-cut upper bound when the BDD is too big.
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


class CutSets:
    """The minimal cut sets of a top whose order is at most ``max_order`` (None: no limit), held as a ZBDD."""

    def __init__(
        self, zbdd: Zbdd, root: int, names: Sequence[str], probabilities: Sequence[float], max_order: int | None
    ) -> None:
        self._zbdd = zbdd
        self._root = root
        self._names = names
        self._p = probabilities
        self.max_order = max_order

    @cached_property
    def count(self) -> int:
        """The number of minimal cut sets (counted on the ZBDD, not enumerated)."""
        return self._zbdd.count(self._root)

    @cached_property
    def order_distribution(self) -> dict[int, int]:
        """``{order: number of minimal cut sets of that order}``, orders without sets omitted."""
        return self._zbdd.count_by_order(self._root)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[frozenset[str]]:
        """Yield the cut sets lazily, in no particular order."""
        names = self._names
        for variables in self._zbdd.iter_sets(self._root):
            yield frozenset(names[v] for v in variables)

    def ranked(self, limit: int | None = None) -> list[tuple[frozenset[str], float]]:
        """Return ``(cut set, product of its events' probabilities)``, most probable first, ties by sorted ids.

        With a limit only the best sets are searched for (best-first on the ZBDD), not all enumerated.
        """
        if limit is not None and limit <= 0:
            return []
        if limit is None:
            candidates = self._zbdd.iter_sets(self._root)
        else:
            candidates = (v for v, _ in self._zbdd.heaviest(self._root, self._p, limit))
        scored = []
        for variables in candidates:
            ids = sorted(self._names[v] for v in variables)
            scored.append((-math.prod(sorted(self._p[v] for v in variables)), ids))
        best = heapq.nsmallest(limit, scored) if limit is not None else sorted(scored)
        return [(frozenset(ids), -negative) for negative, ids in best]


class Analyzer:
    """Answers cut-set, probability and importance questions about any node of one fault tree.

    Raises FaultTreeError (from the constructor) if the tree is malformed.
    """

    def __init__(self, tree: FaultTree, *, node_limit: int = DEFAULT_NODE_LIMIT) -> None:
        tree.check()
        self._tree = tree
        self._names = _variable_order(tree)
        self._var = {name: v for v, name in enumerate(self._names)}
        self._p = [tree.events[name] for name in self._names]
        self._node_limit = node_limit
        self._zbdd = Zbdd()
        self._bdd = Bdd(self._p)
        self._minsol = MinimalSolutions(self._bdd, self._zbdd)
        self._cut_memo: dict[tuple[str, int | None], int] = {}
        self._bdd_memo: dict[str, int] = {}

    # -- cut sets -----------------------------------------------------------------------------------------------

    def cut_sets(self, top: str, *, max_order: int | None = 3) -> CutSets:
        """Return the minimal cut sets of ``top`` of order ≤ ``max_order`` (None: all).

        Raises FaultTreeError for an unknown id, ValueError for a negative order.
        """
        if max_order is not None and max_order < 0:
            raise ValueError(f"max_order must be at least 0, not {max_order}")
        root = self._cut_family(top, max_order)
        return CutSets(self._zbdd, root, self._names, self._p, max_order)

    def _cut_family(self, top: str, k: int | None) -> int:
        kind = self._tree.kind_of(top)
        if kind != "gate":
            return self._cut_leaf(top, k)
        memo = self._cut_memo
        z = self._zbdd
        for gate in _pending(self._tree, top, lambda g: (g, k) in memo):
            kids = [memo[(c, k)] if (c, k) in memo else self._cut_leaf(c, k) for c in gate.children]
            memo[(gate.id, k)] = _gate_family(z, gate, kids, k)
        return memo[(top, k)]

    def _cut_leaf(self, node: str, k: int | None) -> int:
        if node in self._tree.houses:
            return BASE if self._tree.houses[node] else EMPTY
        if k == 0:
            return EMPTY
        return self._zbdd.singleton(self._var[node])

    # -- BDD ----------------------------------------------------------------------------------------------------

    def _function(self, top: str, seconds: float) -> int:
        """Return the BDD of ``top``; raises BudgetExceededError (memo left consistent) past the budget."""
        kind = self._tree.kind_of(top)
        if kind != "gate":
            return self._bdd_leaf(top)
        memo = self._bdd_memo
        added: list[str] = []
        try:
            with self._bdd.budget(nodes=self._node_limit, seconds=seconds) as mark:
                for gate in _pending(self._tree, top, memo.__contains__):
                    kids = [memo[c] if c in memo else self._bdd_leaf(c) for c in gate.children]
                    memo[gate.id] = _gate_function(self._bdd, gate, kids)
                    added.append(gate.id)
        except BudgetExceededError:
            for gid in added:
                del memo[gid]
            self._minsol.forget(mark)
            raise
        return memo[top]

    def _bdd_leaf(self, node: str) -> int:
        if node in self._tree.houses:
            return TRUE if self._tree.houses[node] else FALSE
        return self._bdd.variable(self._var[node])

    # -- probability --------------------------------------------------------------------------------------------

    def probability(self, top: str, *, budget_seconds: float = 10.0) -> Probability:
        """Return P(top fails): exact from the BDD, else bounds (``exact=False``) computed within about as long again.

        Raises FaultTreeError for an unknown id.
        """
        try:
            value = self._bdd.probability(self._function(top, budget_seconds))
        except BudgetExceededError:
            return self._estimate(top, budget_seconds)
        return Probability(value, True, value, value, "bdd")

    def _estimate(self, top: str, seconds: float) -> Probability:
        deadline = time.monotonic() + seconds
        bounds = self._cut_set_bounds(top, deadline)
        lower, upper, value = bounds if bounds is not None else (0.0, 1.0, math.nan)
        if bounds is not None and upper <= max(lower * 1.05, lower + 1e-12):
            return Probability(value, False, lower, upper, "mcub")
        sampled = _monte_carlo(self._tree, top, deadline)
        if sampled is None:
            if bounds is None:
                return Probability(0.5, False, 0.0, 1.0, "mcub")
            return Probability(value, False, lower, upper, "mcub")
        estimate, low, high = sampled
        low, high = max(low, lower), min(high, upper)
        return Probability(min(max(estimate, low), high), False, min(low, high), high, "monte-carlo")

    def _cut_set_bounds(self, top: str, deadline: float) -> tuple[float, float, float] | None:
        """Return ``(lower, upper, min-cut upper bound)`` from the largest order limit affordable, or None.

        The lower bound is the exact probability of a set of cut sets sharing no event; the upper bound adds to
        the MCUB of the sets found the probability that more events fail than the order limit allows.
        """
        family, order = self._affordable_family(top, deadline)
        if family is None:
            return None
        lower, mcub = _union_bounds(self._zbdd, family, self._p)
        tail = 0.0 if order is None else _more_than(order, [self._p[self._var[e]] for e in self._cone(top)])
        upper = min(1.0, mcub + tail)
        return lower, upper, min(mcub, upper)

    def _affordable_family(self, top: str, deadline: float) -> tuple[int | None, int | None]:
        best: tuple[int | None, int | None] = (None, None)
        for order in (None, *range(1, 64)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                with self._zbdd.budget(nodes=self._node_limit, seconds=remaining / 2):
                    family = self._cut_family(top, order)
            except BudgetExceededError:
                self._cut_memo = {key: f for key, f in self._cut_memo.items() if key[1] != order}
                if order is None:
                    continue
                break
            if self._zbdd.count(family) > _MCUB_SET_LIMIT:
                break
            best = (family, order)
            if order is None or self._zbdd.max_order(family) is None:
                break
        return best

    def _cone(self, top: str) -> set[str]:
        if top in self._tree.houses:
            return set()
        return self._tree.cone_events(top)

    # -- importance ---------------------------------------------------------------------------------------------

    def importance(self, top: str, *, budget_seconds: float = 10.0) -> dict[str, Importance]:
        """Return the Birnbaum and Fussell-Vesely importance of every basic event in ``top``'s cone.

        Exact from the BDD; past the budget, the rare-event approximation on the cut sets of order ≤ 3.
        Raises FaultTreeError for an unknown id.
        """
        cone = sorted(self._cone(top), key=self._var.__getitem__)
        try:
            f = self._function(top, budget_seconds)
        except BudgetExceededError:
            slopes, total = self._rare_event_slopes(top)
        else:
            total = self._bdd.probability(f)
            slopes = self._bdd.birnbaum(f)
        result = {}
        for name in cone:
            v = self._var[name]
            birnbaum = slopes.get(v, 0.0)
            fv = self._p[v] * birnbaum / total if total > 0 else 0.0
            result[name] = Importance(birnbaum, fv)
        return result

    def _rare_event_slopes(self, top: str) -> tuple[dict[int, float], float]:
        family = self._cut_family(top, 3)
        return self._zbdd.rare_event_slopes(family, self._p), self._zbdd.rare_event(family, self._p)


def _variable_order(tree: FaultTree) -> list[str]:
    """Return the basic events in depth-first, left-to-right order of first appearance from the root gates.

    Roots are the gates no gate refers to, in declaration order; events under no gate come last. Depth-first
    order keeps the events of a sub-tree together, which keeps BDDs small, and is deterministic.
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


def _pending(tree: FaultTree, top: str, done: object) -> list[Gate]:
    """Return the gates under ``top`` (itself included) for which ``done(gate_id)`` is false, children first.

    Stops at finished gates, so asking about many tops that share sub-trees costs each sub-tree once.
    """
    is_done = done if callable(done) else (lambda _: False)
    gates = tree.gates
    if is_done(top):
        return []
    result: list[Gate] = []
    seen = {top}
    stack = [(top, iter(gates[top].children))]
    while stack:
        gid, children = stack[-1]
        for child in children:
            if child in gates and child not in seen and not is_done(child):
                seen.add(child)
                stack.append((child, iter(gates[child].children)))
                break
        else:
            stack.pop()
            result.append(gates[gid])
    return result


def _gate_function(bdd: Bdd, gate: Gate, kids: list[int]) -> int:
    """Return the BDD of ``gate`` given its children's BDDs."""
    if gate.kind is GateKind.OR:
        return bdd.disjunction(kids)
    if gate.kind is GateKind.AND:
        return bdd.conjunction(kids)
    return bdd.at_least(gate.k, kids)


def _gate_family(z: Zbdd, gate: Gate, kids: list[int], k: int | None) -> int:
    """Return the minimal cut sets (order ≤ k) of ``gate`` given its children's (minimal, truncated) families."""
    if gate.kind is GateKind.OR:
        family = EMPTY
        for kid in kids:
            family = z.union(family, kid)
        return z.minimal(family)
    if gate.kind is GateKind.AND:
        family = BASE
        for kid in sorted(kids, key=z.size):
            family = z.and_minimal(family, kid, k)
        return family
    # at_least(j, kids[i:]) from the last child back: row[j] = kid·row[j-1] ∪ row[j]
    row = [BASE] + [EMPTY] * gate.k
    n = len(kids)
    for i in range(n - 1, -1, -1):
        for j in range(min(gate.k, n - i), 0, -1):
            row[j] = z.minimal(z.union(z.product(kids[i], row[j - 1], k), row[j]))
    return row[gate.k]


def _union_bounds(z: Zbdd, family: int, p: Sequence[float]) -> tuple[float, float]:
    """Return (a lower bound, the min-cut upper bound) of P(some set of ``family`` fails entirely).

    Lower: the exact probability that one of a greedy choice of pairwise disjoint sets fails (independent).
    Upper: 1 − Π(1 − P(set)), valid for the minimal cut sets of a coherent tree (Esary-Proschan).
    """
    scored = sorted(((math.prod(p[v] for v in s), s) for s in z.iter_sets(family)), reverse=True)
    survive_all, survive_disjoint = 1.0, 1.0
    used: set[int] = set()
    for prob, variables in scored:
        survive_all *= 1.0 - prob
        if used.isdisjoint(variables):
            used.update(variables)
            survive_disjoint *= 1.0 - prob
    return 1.0 - survive_disjoint, 1.0 - survive_all


def _more_than(order: int, probabilities: Sequence[float]) -> float:
    """Return P(more than ``order`` of independent events with these probabilities occur)."""
    # dist[j] = P(exactly j occurred so far), j ≤ order; everything above is "too many".
    dist = [1.0] + [0.0] * order
    for p in probabilities:
        for j in range(order, 0, -1):
            dist[j] = dist[j] * (1.0 - p) + dist[j - 1] * p
        dist[0] *= 1.0 - p
    return max(0.0, 1.0 - math.fsum(dist))


def _monte_carlo(tree: FaultTree, top: str, deadline: float) -> tuple[float, float, float] | None:
    """Return (estimate, 95 % Wilson interval) of P(top) from bit-parallel sampling until ``deadline``.

    Returns None if not even one batch fits in the time left.
    """
    rng = random.Random(0x5EED)
    batch, failures, samples = 1 << 14, 0, 0
    while time.monotonic() < deadline:
        values = _simulate(tree, top, batch, rng)
        failures += values.bit_count()
        samples += batch
    if samples == 0:
        return None
    return failures / samples, *_wilson(failures, samples)


def _simulate(tree: FaultTree, top: str, bits: int, rng: random.Random) -> int:
    """Return a ``bits``-wide integer whose bit i says whether ``top`` failed in random sample i."""
    mask = (1 << bits) - 1
    values: dict[str, int] = {}
    for name, failed in tree.houses.items():
        values[name] = mask if failed else 0
    for name in _cone_of(tree, top):
        values[name] = _bernoulli_bits(tree.events[name], bits, rng)
    for gate in tree.topological_gates([top]):
        kids = [values[c] for c in gate.children]
        if gate.kind is GateKind.OR:
            values[gate.id] = _fold(kids, int.__or__, 0)
        elif gate.kind is GateKind.AND:
            values[gate.id] = _fold(kids, int.__and__, mask)
        else:
            counters = [0] * gate.k  # counters[j]: "at least j+1 children failed" per sample
            for kid in kids:
                for j in range(gate.k - 1, 0, -1):
                    counters[j] |= counters[j - 1] & kid
                counters[0] |= kid
            values[gate.id] = counters[-1]
    return values[top]


def _cone_of(tree: FaultTree, top: str) -> set[str]:
    return {top} if top in tree.events else set() if top in tree.houses else tree.cone_events(top)


def _fold(values: list[int], op: object, unit: int) -> int:
    result = unit
    for value in values:
        result = op(result, value)  # type: ignore[operator]
    return result


def _bernoulli_bits(p: float, bits: int, rng: random.Random) -> int:
    """Return ``bits`` independent Bernoulli(p) bits as an integer (p rounded to 2^-precision)."""
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
    """Return the Wilson score interval for a binomial proportion (95 % by default)."""
    phat = successes / n
    denominator = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
