"""Reduced ordered BDDs of coherent (monotone) Boolean functions, with exact probability and importance.

A :class:`Bdd` manager owns every node; a function is an ``int`` node id: ``FALSE`` (0), ``TRUE`` (1), or a node
``(v, lo, hi)`` meaning "if variable v then hi else lo". Variables are integers, smaller ones nearer the root; a
child is always created before its parents, so node ids are a topological order (probabilities are computed by
one forward sweep, without recursion). Without negation there is no need for complement edges.

Work is limited with :meth:`Bdd.budget` (created nodes, seconds); running out raises
:class:`~vigil.analysis.zbdd.BudgetExceededError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from vigil.analysis.diagrams import BudgetExceededError, _Budget, recursion_room
from vigil.analysis.zbdd import TERMINAL_VAR

__all__ = ["FALSE", "TRUE", "Bdd", "BudgetExceededError"]

FALSE = 0
TRUE = 1


class Bdd:
    """A BDD manager over variables ``0..n-1`` whose failure probabilities are ``probabilities[v]``."""

    def __init__(self, probabilities: Sequence[float]) -> None:
        self._p = list(probabilities)
        self._var: list[int] = [TERMINAL_VAR, TERMINAL_VAR]
        self._lo: list[int] = [FALSE, TRUE]
        self._hi: list[int] = [FALSE, TRUE]
        self._unique: dict[int, int] = {}  # (v, lo, hi) packed in one int, as in zbdd
        self._prob: list[float] = [0.0, 1.0]
        self._reachable_cache: dict[int, list[int]] = {}
        self._budget = _Budget()
        # Apply recurses at most twice per variable level (once per operand).
        self._depth = 2 * len(self._p) + 10
        self._mk = self._make_node_constructor()
        self._and, self._or = self._make_apply()
        self._threshold = _make_threshold(self)

    def _make_node_constructor(self) -> Callable[[int, int, int], int]:
        var, lo, hi, unique, budget = self._var, self._lo, self._hi, self._unique, self._budget

        def mk(v: int, low: int, high: int) -> int:
            if low == high:
                return low
            key = v << 64 | low << 32 | high
            node = unique.get(key)
            if node is None:
                node = len(var)
                if node >= budget.node_cap:
                    raise BudgetExceededError(f"BDD node budget exhausted at {node} nodes", nodes=True)
                if not node & 1023 and time.monotonic() > budget.deadline:
                    raise BudgetExceededError("BDD time budget exhausted", nodes=False)
                var.append(v)
                lo.append(low)
                hi.append(high)
                unique[key] = node
            return node

        return mk

    def _make_apply(self) -> tuple[Callable[[int, int], int], Callable[[int, int], int]]:
        return _make_operator(self, absorbing=FALSE, neutral=TRUE), _make_operator(self, absorbing=TRUE, neutral=FALSE)

    # -- construction -------------------------------------------------------------------------------------------

    def variable(self, v: int) -> int:
        """Return the function "variable ``v`` is true" (fails)."""
        return self._mk(v, FALSE, TRUE)

    def any_of(self, variables: Iterable[int]) -> int:
        """Return the OR of ``variables`` (a chain of nodes, built directly)."""
        node = FALSE
        for v in sorted(set(variables), reverse=True):
            node = self._mk(v, node, TRUE)
        return node

    def and_(self, a: int, b: int) -> int:
        """Return ``a ∧ b``."""
        with recursion_room(self._depth):
            return self._and(a, b)

    def or_(self, a: int, b: int) -> int:
        """Return ``a ∨ b``."""
        with recursion_room(self._depth):
            return self._or(a, b)

    def conjunction(self, operands: Sequence[int]) -> int:
        """Return the AND of ``operands`` (TRUE when empty), combining them pairwise to keep operands small."""
        return self._balanced(list(operands), self._and, TRUE)

    def disjunction(self, operands: Sequence[int]) -> int:
        """Return the OR of ``operands`` (FALSE when empty)."""
        return self._balanced(list(operands), self._or, FALSE)

    def at_least(self, k: int, operands: Sequence[int]) -> int:
        """Return "at least ``k`` of ``operands`` are true" (TRUE for k ≤ 0, FALSE for k > len)."""
        n = len(operands)
        if k <= 0:
            return TRUE
        if k > n:
            return FALSE
        if k == n:
            return self.conjunction(operands)
        with recursion_room(self._depth):
            # row[j] = "at least j of operands[i:]"; built from the last operand back, as in a k-of-n counter.
            row = [TRUE] + [FALSE] * k
            for i in range(n - 1, -1, -1):
                f = operands[i]
                for j in range(min(k, n - i), 0, -1):
                    row[j] = self._or(self._and(f, row[j - 1]), row[j])
            return row[k]

    def threshold(self, k: int, operands: Iterable[int]) -> int:
        """Return "at least ``k`` of ``operands`` are true": their OR for k = 1, their AND for k = len.

        One recursion over all the operands at once, which creates only nodes of the result's sub-functions;
        combining them pair by pair built intermediate diagrams three times the size of the results.
        """
        kids = []
        for f in operands:
            if f == TRUE:
                k -= 1
            elif f != FALSE:
                kids.append(f)
        with recursion_room(self._depth):
            return self._threshold(k, tuple(sorted(kids)))

    def _balanced(self, items: list[int], op: Callable[[int, int], int], unit: int) -> int:
        if len(items) <= 1:
            return items[0] if items else unit
        with recursion_room(self._depth):
            while len(items) > 1:
                merged = [op(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
                if len(items) % 2:
                    merged.append(items[-1])
                items = merged
            return items[0]

    # -- budget -------------------------------------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        """Return the number of nodes the manager holds (terminals included)."""
        return len(self._var)

    @contextmanager
    def budget(self, *, nodes: int | None = None, seconds: float | None = None) -> Iterator[None]:
        """Limit the nodes created and the time spent inside the block; raises BudgetExceededError past either.

        After BudgetExceededError the manager is consistent but holds a partial result: callers discard it.
        """
        saved = (self._budget.node_cap, self._budget.deadline)
        if nodes is not None:
            self._budget.node_cap = min(saved[0], len(self._var) + nodes)
        if seconds is not None:
            self._budget.deadline = min(saved[1], time.monotonic() + seconds)
        try:
            yield
        finally:
            self._budget.node_cap, self._budget.deadline = saved

    # -- queries ------------------------------------------------------------------------------------------------

    def size(self, f: int) -> int:
        """Return the number of non-terminal nodes reachable from ``f``."""
        return len(self._reachable(f))

    def _reachable(self, f: int) -> list[int]:
        seen: set[int] = set()
        stack = [f]
        lo, hi = self._lo, self._hi
        while stack:
            n = stack.pop()
            if n > TRUE and n not in seen:
                seen.add(n)
                stack.append(lo[n])
                stack.append(hi[n])
        return sorted(seen)

    def support(self, f: int) -> set[int]:
        """Return the variables ``f`` depends on."""
        return {self._var[n] for n in self._reachable(f)}

    def probability(self, f: int) -> float:
        """Return P(f is true) with independent variables, by Shannon decomposition (memoised per node)."""
        prob, var, lo, hi, p = self._prob, self._var, self._lo, self._hi, self._p
        for n in range(len(prob), len(var)):
            pv = p[var[n]]
            prob.append(pv * prob[hi[n]] + (1.0 - pv) * prob[lo[n]])
        return prob[f]

    def probability_given(self, f: int, fixed: dict[int, float]) -> float:
        """Return P(f is true) with the probabilities of the variables in ``fixed`` replaced (e.g. 0: works)."""
        if not fixed:
            return self.probability(f)
        nodes = self._reachable_cache.get(f)
        if nodes is None:
            nodes = self._reachable_cache[f] = self._reachable(f)
        var, lo, hi, p = self._var, self._lo, self._hi, self._p
        prob: dict[int, float] = {0: 0.0, 1: 1.0}
        for n in nodes:  # children first
            v = var[n]
            pv = fixed[v] if v in fixed else p[v]
            prob[n] = pv * prob[hi[n]] + (1.0 - pv) * prob[lo[n]]
        return prob[f]

    def birnbaum(self, f: int) -> dict[int, float]:
        """Return ``{v: P(f | v) - P(f | not v)}`` for every variable in the support of ``f``.

        One backward sweep: P(f) is affine in p_v with slope Σ reach(u)·(P(hi u) − P(lo u)) over the nodes u
        labelled v, where reach(u) is the probability of the paths from the root to u.
        """
        self.probability(f)
        prob, var, lo, hi, p = self._prob, self._var, self._lo, self._hi, self._p
        nodes = self._reachable(f)
        reach = dict.fromkeys(nodes, 0.0)
        if f > TRUE:
            reach[f] = 1.0
        slope: dict[int, float] = {}
        for n in reversed(nodes):  # parents (larger ids) before children
            r = reach[n]
            v, low, high = var[n], lo[n], hi[n]
            slope[v] = slope.get(v, 0.0) + r * (prob[high] - prob[low])
            if high > TRUE:
                reach[high] += r * p[v]
            if low > TRUE:
                reach[low] += r * (1.0 - p[v])
        return slope

    def node(self, f: int) -> tuple[int, int, int]:
        """Return ``(variable, lo, hi)`` of a non-terminal node."""
        return self._var[f], self._lo[f], self._hi[f]


def _make_operator(bdd: Bdd, *, absorbing: int, neutral: int) -> Callable[[int, int], int]:
    """Return memoised AND (absorbing FALSE, neutral TRUE) or OR (the reverse) on ``bdd`` as a fast closure."""
    var, lo, hi, mk = bdd._var, bdd._lo, bdd._hi, bdd._mk
    cache: dict[int, int] = {}

    def apply(a: int, b: int) -> int:
        if a == b or b == neutral:
            return a
        if a == neutral:
            return b
        if a == absorbing or b == absorbing:
            return absorbing
        if a > b:
            a, b = b, a
        key = a << 32 | b
        r = cache.get(key)
        if r is None:
            va, vb = var[a], var[b]
            if va < vb:
                r = mk(va, apply(lo[a], b), apply(hi[a], b))
            elif vb < va:
                r = mk(vb, apply(a, lo[b]), apply(a, hi[b]))
            else:
                r = mk(va, apply(lo[a], lo[b]), apply(hi[a], hi[b]))
            cache[key] = r
        return r

    return apply


def _make_threshold(bdd: Bdd) -> Callable[[int, tuple[int, ...]], int]:
    """Return the memoised recursion of ``Bdd.threshold`` on ``bdd`` as a fast closure."""
    var, lo, hi, mk, and_, or_ = bdd._var, bdd._lo, bdd._hi, bdd._mk, bdd._and, bdd._or
    memo: dict[tuple[int, tuple[int, ...]], int] = {}

    def threshold(k: int, kids: tuple[int, ...]) -> int:
        # kids: sorted, no constants among them.
        if k <= 0:
            return TRUE
        n = len(kids)
        if n < k:
            return FALSE
        if n == 1:
            return kids[0]
        if n == 2:  # the binary operations are cheaper, and their caches are shared with and_/or_
            return or_(kids[0], kids[1]) if k == 1 else and_(kids[0], kids[1])
        key = (k, kids)
        r = memo.get(key)
        if r is None:
            v = min([var[x] for x in kids])
            low_kids, high_kids, low_k, high_k = [], [], k, k
            for x in kids:
                if var[x] == v:
                    low, high = lo[x], hi[x]
                    if low == TRUE:
                        low_k -= 1
                    elif low != FALSE:
                        low_kids.append(low)
                    if high == TRUE:
                        high_k -= 1
                    elif high != FALSE:
                        high_kids.append(high)
                else:
                    low_kids.append(x)
                    high_kids.append(x)
            low_kids.sort()
            high_kids.sort()
            r = mk(v, threshold(low_k, tuple(low_kids)), threshold(high_k, tuple(high_kids)))
            memo[key] = r
        return r

    return threshold
