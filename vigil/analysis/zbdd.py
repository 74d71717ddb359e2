"""Zero-suppressed BDDs: compact families of sets (here: sets of basic-event indices, i.e. cut sets).

A :class:`Zbdd` manager owns every node; a family is an ``int`` node id. ``EMPTY`` (0) is the family with no
set, ``BASE`` (1) the family holding only the empty set. A node ``(v, lo, hi)`` stands for ``lo ∪ {s ∪ {v} : s ∈
hi}``; variables are integers and smaller ones sit nearer the root. Nodes are never freed, so results stay valid
for the manager's lifetime and operations are memoised across calls.

Operations recurse once per variable on a path; :func:`recursion_room` raises Python's recursion limit for the
duration of a call (Python 3.11+ does not use the C stack for Python-to-Python calls, so this is safe).

Exceptions::

    RuntimeError
    └── BudgetExceededError    a node or time budget set with ``Zbdd.budget`` / ``Bdd.budget`` ran out
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence, Set
from contextlib import contextmanager

from vigil.analysis.diagrams import BudgetExceededError, _Budget, recursion_room

__all__ = ["BASE", "EMPTY", "TERMINAL_VAR", "BudgetExceededError", "Zbdd", "recursion_room"]

EMPTY = 0
BASE = 1
# The terminals' "variable": greater than every real one, so terminals compare as the deepest level.
TERMINAL_VAR = 1 << 60
# "No order limit" inside product/truncate; compared with set sizes, so it must exceed any of them.
_UNBOUNDED = 1 << 40


class Zbdd:
    """A ZBDD manager: build, combine, count and enumerate families of sets of integer variables."""

    def __init__(self) -> None:
        # Parallel arrays indexed by node id; terminals 0 and 1 first. minc/maxc are the smallest and largest
        # set sizes in the family (inf / -1 for EMPTY): they make truncation and subsumption prune early.
        self._var: list[int] = [TERMINAL_VAR, TERMINAL_VAR]
        self._lo: list[int] = [EMPTY, BASE]
        self._hi: list[int] = [EMPTY, BASE]
        self._minc: list[float] = [math.inf, 0]
        self._maxc: list[int] = [-1, 0]
        # Keys pack (v, lo, hi) into one int: as fast as a tuple, smaller, and it keeps the dict out of the
        # cyclic garbage collector's scans (a dict of ints is untracked), which matters with millions of nodes.
        self._unique: dict[int, int] = {}
        self._budget = _Budget()
        self._depth = 0  # the largest variable seen + 1: bounds the recursion depth of every operation
        self._counts: list[int] = [0, 1]
        self._orders: dict[int, tuple[int, ...]] = {EMPTY: (), BASE: (1,)}
        # The operation caches (filled by the builders below) only save time: trim_caches may empty them.
        self._caches: list[dict[int, int]] = []
        self._minimal_cache: dict[int, int] = {}
        self._mk = self._make_node_constructor()
        self._union = _make_union(self)
        self._without, self._minimal = _make_subsumption(self)
        self._truncate = _make_truncate(self)
        self._product = _make_product(self)
        self._at_least = _make_threshold(self)

    # -- construction -------------------------------------------------------------------------------------------

    def _make_node_constructor(self) -> Callable[[int, int, int], int]:
        var, lo, hi, minc, maxc = self._var, self._lo, self._hi, self._minc, self._maxc
        unique, budget = self._unique, self._budget

        def mk(v: int, low: int, high: int) -> int:
            if high == EMPTY:  # zero-suppression: a variable that no set contains is not a node
                return low
            key = v << 64 | low << 32 | high
            node = unique.get(key)
            if node is None:
                node = len(var)
                if node >= budget.node_cap:
                    raise BudgetExceededError(f"ZBDD node budget exhausted at {node} nodes", nodes=True)
                if not node & 1023 and time.monotonic() > budget.deadline:
                    raise BudgetExceededError("ZBDD time budget exhausted", nodes=False)
                var.append(v)
                lo.append(low)
                hi.append(high)
                small, large = minc[high] + 1, maxc[high] + 1
                minc.append(small if small < minc[low] else minc[low])
                maxc.append(large if large > maxc[low] else maxc[low])
                unique[key] = node
            return node

        return mk

    def node(self, v: int, low: int, high: int) -> int:
        """Return the family ``low ∪ {s ∪ {v} : s ∈ high}``; ``v`` must be smaller than the variables below."""
        self._depth = max(self._depth, v + 1)
        return self._mk(v, low, high)

    def singleton(self, v: int) -> int:
        """Return the family ``{{v}}``."""
        return self.node(v, EMPTY, BASE)

    def set_of(self, variables: Sequence[int]) -> int:
        """Return the family holding the single set ``variables``."""
        node = BASE
        for v in sorted(set(variables), reverse=True):
            node = self.node(v, EMPTY, node)
        return node

    def singletons(self, variables: Iterable[int]) -> int:
        """Return the family ``{{v} : v ∈ variables}``."""
        node = EMPTY
        for v in sorted(set(variables), reverse=True):
            node = self.node(v, node, BASE)
        return node

    # -- operations ---------------------------------------------------------------------------------------------

    def avoiding(self, a: int, variables: Set[int]) -> int:
        """Return the sets of ``a`` that contain none of ``variables``."""
        if not variables or a <= BASE:
            return a
        last = max(variables)
        var, lo, hi, mk = self._var, self._lo, self._hi, self._mk
        memo: dict[int, int] = {}

        def avoid(n: int) -> int:
            if n <= BASE or var[n] > last:
                return n
            r = memo.get(n)
            if r is None:
                r = avoid(lo[n]) if var[n] in variables else mk(var[n], avoid(lo[n]), avoid(hi[n]))
                memo[n] = r
            return r

        with recursion_room(2 * self._depth):
            return avoid(a)

    def known_minimal(self, a: int) -> int:
        """Record that family ``a`` is minimal (the caller knows), so ``minimal`` stops at it; return ``a``.

        Every node of a minimal family is minimal too: a set inside another one below a node would give two
        nested sets of the whole family.
        """
        cache, lo, hi = self._minimal_cache, self._lo, self._hi
        stack = [a]
        while stack:
            n = stack.pop()
            if n > BASE and n not in cache:
                cache[n] = n
                stack.append(lo[n])
                stack.append(hi[n])
        return a

    def union(self, a: int, b: int) -> int:
        """Return ``a ∪ b`` (not minimised)."""
        with recursion_room(2 * self._depth):
            return self._union(a, b)

    def product(self, a: int, b: int, limit: int | None = None) -> int:
        """Return ``{x ∪ y : x ∈ a, y ∈ b}`` keeping only sets of at most ``limit`` elements (not minimised)."""
        with recursion_room(4 * self._depth):
            return self._product(a, b, _UNBOUNDED if limit is None else limit)

    def minimal(self, a: int) -> int:
        """Return the sets of ``a`` that have no proper subset in ``a``."""
        with recursion_room(4 * self._depth):
            return self._minimal(a)

    def without(self, a: int, b: int) -> int:
        """Return the sets of ``a`` that are not supersets of (or equal to) any set of ``b``."""
        with recursion_room(4 * self._depth):
            return self._without(a, b)

    def truncate(self, a: int, limit: int) -> int:
        """Return the sets of ``a`` with at most ``limit`` elements."""
        with recursion_room(2 * self._depth):
            return self._truncate(a, limit)

    def or_minimal(self, a: int, b: int, limit: int | None = None) -> int:
        """Return the minimal sets of ``a ∪ b`` of at most ``limit`` elements (``a``, ``b`` minimal)."""
        with recursion_room(4 * self._depth):
            both = self._union(a, b)
            if limit is not None:
                both = self._truncate(both, limit)
            return self._minimal(both)

    def and_minimal(self, a: int, b: int, limit: int | None = None, *, disjoint: bool = False) -> int:
        """Return the minimal sets of ``a × b`` of at most ``limit`` elements.

        With ``disjoint`` (the caller knows ``a`` and ``b`` are minimal and share no variable) the product is
        already minimal and is not checked again.
        """
        with recursion_room(4 * self._depth):
            product = self._product(a, b, _UNBOUNDED if limit is None else limit)
            return self.known_minimal(product) if disjoint else self._minimal(product)

    def at_least(self, need: int, families: Iterable[int], limit: int) -> int:
        """Return the minimal sets of at most ``limit`` elements that hold a set of ``need`` of ``families``.

        These are the minimal cut sets of an AT-LEAST gate (an AND when ``need`` is their number) from its
        children's, found in one recursion over all of them at once: multiplying them two by two built large
        products that the order limit then threw away (a 6-member AND made hundreds of sets to keep 34).
        """
        kids = []
        for family in families:
            if self._minc[family] == 0:
                need -= 1  # it holds the empty set: it has failed already
            elif family != EMPTY:
                kids.append(family)
        with recursion_room(4 * self._depth):
            return self._at_least(need, tuple(sorted(kids)), limit, {})

    # -- budget -------------------------------------------------------------------------------------------------

    def trim_caches(self, entries: int) -> None:
        """Empty the operation caches if they hold more than ``entries`` results (they only save time).

        The record of which nodes are already minimal is kept unless it alone is over the limit: rebuilding it
        means re-checking whole families.
        """
        if sum(map(len, self._caches)) + len(self._minimal_cache) > entries:
            for cache in self._caches:
                cache.clear()
            if len(self._minimal_cache) > entries:
                self._minimal_cache.clear()

    @contextmanager
    def budget(self, *, nodes: int | None = None, seconds: float | None = None) -> Iterator[None]:
        """Limit the nodes created and the time spent inside the block; raises BudgetExceededError when exceeded.

        On BudgetExceededError the manager stays usable: the nodes created inside the block are kept.
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

    @property
    def node_count(self) -> int:
        """Return the number of nodes the manager holds (terminals included)."""
        return len(self._var)

    def variable(self, a: int) -> int:
        """Return the top variable of a non-terminal node."""
        return self._var[a]

    def children(self, a: int) -> tuple[int, int]:
        """Return ``(lo, hi)`` of a non-terminal node."""
        return self._lo[a], self._hi[a]

    def min_order(self, a: int) -> int | None:
        """Return the size of the smallest set of ``a``, None if ``a`` is EMPTY."""
        return None if a == EMPTY else int(self._minc[a])

    def max_order(self, a: int) -> int | None:
        """Return the size of the largest set of ``a``, None if ``a`` is EMPTY."""
        return None if a == EMPTY else self._maxc[a]

    def size(self, a: int) -> int:
        """Return the number of non-terminal nodes reachable from ``a``."""
        return len(self._nodes(a))

    def support(self, a: int) -> set[int]:
        """Return the variables that occur in some set of ``a``."""
        var = self._var
        return {var[n] for n in self._nodes(a)}

    def _nodes(self, a: int) -> set[int]:
        seen: set[int] = set()
        stack = [a]
        lo, hi = self._lo, self._hi
        while stack:
            n = stack.pop()
            if n > BASE and n not in seen:
                seen.add(n)
                stack.append(lo[n])
                stack.append(hi[n])
        return seen

    def count(self, a: int) -> int:
        """Return the number of sets in ``a`` (exact, arbitrary precision)."""
        counts, lo, hi = self._counts, self._lo, self._hi
        # Ids are topological, so one forward sweep over the nodes created since the last call fills the table.
        for n in range(len(counts), len(lo)):
            counts.append(counts[lo[n]] + counts[hi[n]])
        return counts[a]

    def count_by_order(self, a: int) -> dict[int, int]:
        """Return ``{size: number of sets of that size}`` for the sets of ``a`` (sizes with no set omitted)."""
        memo, lo, hi = self._orders, self._lo, self._hi
        for n in self._postorder(a, memo):
            low, high = memo[lo[n]], memo[hi[n]]
            # The sets with the node's variable are one larger: shift ``high`` by one and add ``low``.
            if len(low) > len(high):
                memo[n] = (low[0], *map(int.__add__, low[1 : len(high) + 1], high), *low[len(high) + 1 :])
            else:
                shifted = (0, *high)
                memo[n] = (*map(int.__add__, low, shifted), *shifted[len(low) :])
        return {size: number for size, number in enumerate(memo[a]) if number}

    def _postorder(self, a: int, done: Container[int]) -> list[int]:
        """Return the nodes under ``a`` missing from ``done``, children before parents (ids are topological)."""
        todo: set[int] = set()
        stack = [a]
        lo, hi = self._lo, self._hi
        while stack:
            n = stack.pop()
            if n not in done and n not in todo:
                todo.add(n)
                stack.append(lo[n])
                stack.append(hi[n])
        return sorted(todo)  # a child is always created before its parents, so it has a smaller id

    def iter_sets(self, a: int) -> Iterator[tuple[int, ...]]:
        """Yield the sets of ``a`` lazily as tuples of variables in increasing order."""
        var, lo, hi = self._var, self._lo, self._hi
        stack: list[tuple[int, tuple[int, ...]]] = [(a, ())]
        while stack:
            n, path = stack.pop()
            if n <= BASE:
                if n == BASE:
                    yield path
                continue
            stack.append((lo[n], path))
            stack.append((hi[n], (*path, var[n])))

    def heaviest(self, a: int, weight: Sequence[float], limit: int) -> list[tuple[tuple[int, ...], float]]:
        """Return at least the ``limit`` sets of ``a`` with the largest products of ``weight[v]`` (0 ≤ w ≤ 1).

        Best-first search: a node's best completion bounds every set through it. Sets whose product ties
        the last one kept are all returned, so the caller can break ties deterministically.
        """
        if a == EMPTY or limit <= 0:
            return []
        best = self._best_products(a, weight)
        var, lo, hi = self._var, self._lo, self._hi
        found: list[tuple[tuple[int, ...], float]] = []
        heap: list[tuple[float, int, int, float, tuple[int, ...]]] = [(-best[a], 0, a, 1.0, ())]
        serial = 1
        while heap:
            bound, _, n, prod, path = heapq.heappop(heap)
            if len(found) >= limit and -bound < found[limit - 1][1] * (1 - 1e-9):
                break
            if n == BASE:
                found.append((path, prod))
                continue
            for child, p, sub in ((lo[n], prod, path), (hi[n], prod * weight[var[n]], (*path, var[n]))):
                if child != EMPTY:
                    heapq.heappush(heap, (-p * best[child], serial, child, p, sub))
                    serial += 1
        return found

    def rare_event(self, a: int, weight: Sequence[float]) -> float:
        """Return Σ over the sets of ``a`` of the product of ``weight[v]`` (the rare-event approximation)."""
        total: dict[int, float] = {EMPTY: 0.0, BASE: 1.0}
        var, lo, hi = self._var, self._lo, self._hi
        for n in self._postorder(a, total):
            total[n] = total[lo[n]] + weight[var[n]] * total[hi[n]]
        return total[a]

    def rare_event_slopes(self, a: int, weight: Sequence[float]) -> dict[int, float]:
        """Return ``{v: ∂ rare_event(a) / ∂ weight[v]}`` for the variables of ``a``, in one sweep."""
        total: dict[int, float] = {EMPTY: 0.0, BASE: 1.0}
        var, lo, hi = self._var, self._lo, self._hi
        nodes = self._postorder(a, total)
        for n in nodes:
            total[n] = total[lo[n]] + weight[var[n]] * total[hi[n]]
        reach = dict.fromkeys(nodes, 0.0)  # Σ over root-to-node paths of the product of the weights taken
        if a > BASE:
            reach[a] = 1.0
        slope: dict[int, float] = {}
        for n in reversed(nodes):
            v, r = var[n], reach[n]
            slope[v] = slope.get(v, 0.0) + r * total[hi[n]]
            if lo[n] > BASE:
                reach[lo[n]] += r
            if hi[n] > BASE:
                reach[hi[n]] += r * weight[v]
        return slope

    def _best_products(self, a: int, weight: Sequence[float]) -> dict[int, float]:
        best: dict[int, float] = {EMPTY: -1.0, BASE: 1.0}
        var, lo, hi = self._var, self._lo, self._hi
        for n in self._postorder(a, best):
            best[n] = max(best[lo[n]], weight[var[n]] * best[hi[n]])
        return best


def _make_union(z: Zbdd) -> Callable[[int, int], int]:
    """Return the memoised union of ``z`` as a fast closure."""
    var, lo, hi, mk = z._var, z._lo, z._hi, z._mk
    cache: dict[int, int] = {}
    z._caches.append(cache)

    def union(a: int, b: int) -> int:
        if a == b or b == EMPTY:
            return a
        if a == EMPTY:
            return b
        if a > b:
            a, b = b, a
        key = a << 32 | b
        r = cache.get(key)
        if r is None:
            va, vb = var[a], var[b]
            if va < vb:
                r = mk(va, union(lo[a], b), hi[a])
            elif vb < va:
                r = mk(vb, union(a, lo[b]), hi[b])
            else:
                r = mk(va, union(lo[a], lo[b]), union(hi[a], hi[b]))
            cache[key] = r
        return r

    return union


def _make_subsumption(z: Zbdd) -> tuple[Callable[[int, int], int], Callable[[int], int]]:
    """Return the memoised ``without`` (subsumption) and ``minimal`` operations of ``z`` as fast closures."""
    var, lo, hi, minc, maxc, mk = z._var, z._lo, z._hi, z._minc, z._maxc, z._mk
    cache: dict[int, int] = {}
    z._caches.append(cache)
    minimal_cache = z._minimal_cache

    def without(a: int, b: int) -> int:
        # Sets of a that contain no set of b. A set of b can only be inside sets at least as large.
        if a == EMPTY or b == EMPTY or minc[b] > maxc[a]:
            return a
        if a == b or minc[b] == 0:
            return EMPTY
        if a == BASE:
            return BASE  # b holds no empty set (checked above), so nothing is inside the empty set
        key = a << 32 | b
        r = cache.get(key)
        if r is None:
            va, vb = var[a], var[b]
            if va < vb:
                r = mk(va, without(lo[a], b), without(hi[a], b))
            elif vb < va:
                r = without(a, lo[b])  # b's sets holding vb cannot lie inside a's sets, which lack vb
            else:
                low_b = lo[b]
                r = mk(va, without(lo[a], low_b), without(without(hi[a], hi[b]), low_b))
            cache[key] = r
        return r

    def minimal(a: int) -> int:
        # A set with v is minimal unless a set without v, or a smaller set with v, lies inside it.
        if a <= BASE:
            return a
        r = minimal_cache.get(a)
        if r is None:
            low = minimal(lo[a])
            r = mk(var[a], low, without(minimal(hi[a]), low))
            minimal_cache[a] = r
            minimal_cache[r] = r
        return r

    return without, minimal


def _make_truncate(z: Zbdd) -> Callable[[int, int], int]:
    """Return the memoised truncation (sets of at most k elements) of ``z`` as a fast closure."""
    var, lo, hi, minc, maxc, mk = z._var, z._lo, z._hi, z._minc, z._maxc, z._mk
    cache: dict[int, int] = {}
    z._caches.append(cache)

    def truncate(a: int, k: int) -> int:
        if maxc[a] <= k:
            return a
        if minc[a] > k:
            return EMPTY
        key = a << 42 | k
        r = cache.get(key)
        if r is None:
            r = mk(var[a], truncate(lo[a], k), truncate(hi[a], k - 1))
            cache[key] = r
        return r

    return truncate


def _make_product(z: Zbdd) -> Callable[[int, int, int], int]:
    """Return the memoised order-limited product of ``z`` as a fast closure (needs union and truncate)."""
    var, lo, hi, minc, maxc, mk, union, truncate = z._var, z._lo, z._hi, z._minc, z._maxc, z._mk, z._union, z._truncate
    cache: dict[int, int] = {}
    z._caches.append(cache)

    def product(a: int, b: int, k: int) -> int:
        if a == EMPTY or b == EMPTY:
            return EMPTY
        if maxc[a] + maxc[b] <= k:
            k = _UNBOUNDED  # no result can exceed the limit: share the cache with unlimited calls
        elif minc[a] > k or minc[b] > k:
            return EMPTY
        if a == BASE or b == BASE:
            other = b if a == BASE else a
            return other if k == _UNBOUNDED else truncate(other, k)
        if a > b:
            a, b = b, a
        key = (a << 32 | b) << 42 | k
        r = cache.get(key)
        if r is None:
            va, vb = var[a], var[b]
            if va < vb:
                r = mk(va, product(lo[a], b, k), product(hi[a], b, k - 1))
            elif vb < va:
                r = mk(vb, product(a, lo[b], k), product(a, hi[b], k - 1))
            else:
                # (v·A1 + A0)(v·B1 + B0) = v·(A1(B1 + B0) + A0·B1) + A0·B0
                high = union(product(hi[a], union(hi[b], lo[b]), k - 1), product(lo[a], hi[b], k - 1))
                r = mk(va, product(lo[a], lo[b], k), high)
            cache[key] = r
        return r

    return product


def _make_threshold(z: Zbdd) -> Callable[[int, tuple[int, ...], int, dict[tuple[int, tuple[int, ...], int], int]], int]:
    """Return the recursion of ``Zbdd.at_least`` as a fast closure (memoised per call, in ``memo``)."""
    var, lo, hi, minc, mk, union, without = z._var, z._lo, z._hi, z._minc, z._mk, z._union, z._without

    def at_least(need: int, kids: tuple[int, ...], k: int, memo: dict[tuple[int, tuple[int, ...], int], int]) -> int:
        # kids: sorted, none EMPTY and none holding the empty set (their sets are still to be hit).
        if need <= 0:
            return BASE
        if len(kids) < need or k <= 0 or sorted([minc[x] for x in kids])[need - 1] > k:
            return EMPTY  # each of ``need`` kids needs one of its sets inside: at least its smallest one
        key = (need, kids, k)
        r = memo.get(key)
        if r is None:
            if k == 1:  # the variables that are a set of ``need`` kids on their own
                counts: dict[int, int] = {}
                for x in kids:
                    while x > BASE:
                        if minc[hi[x]] == 0:
                            counts[var[x]] = counts.get(var[x], 0) + 1
                        x = lo[x]
                r = EMPTY
                for v in sorted((v for v, c in counts.items() if c >= need), reverse=True):
                    r = mk(v, r, BASE)
            else:
                # Split on the smallest variable v: sets without v hit the kids' sets without v; sets with v
                # hit, with k - 1 more elements, the kids' sets once v is taken out (hi ∪ lo).
                v = min([var[x] for x in kids])
                low_kids, high_kids, high_need = [], [], need
                for x in kids:
                    if var[x] == v:
                        if lo[x] != EMPTY:
                            low_kids.append(lo[x])
                        taken = union(hi[x], lo[x])
                        if minc[taken] == 0:
                            high_need -= 1
                        else:
                            high_kids.append(taken)
                    else:
                        low_kids.append(x)
                        high_kids.append(x)
                low = at_least(need, tuple(sorted(low_kids)), k, memo)
                high = at_least(high_need, tuple(sorted(high_kids)), k - 1, memo)
                # A set with v is minimal unless a set without v lies inside it.
                r = mk(v, low, without(high, low))
            memo[key] = r
        return r

    return at_least
