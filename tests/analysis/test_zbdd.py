"""The ZBDD manager against plain Python sets of frozensets."""

from __future__ import annotations

import itertools
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.analysis.zbdd import BASE, EMPTY, BudgetExceededError, Zbdd, recursion_room

Family = set[frozenset[int]]

FAMILIES = st.sets(st.frozensets(st.integers(0, 7), max_size=5), max_size=12)


def build(z: Zbdd, family: Family) -> int:
    node = EMPTY
    for members in family:
        node = z.union(node, z.set_of(sorted(members)))
    return node


def read(z: Zbdd, node: int) -> Family:
    listed = [frozenset(s) for s in z.iter_sets(node)]
    assert len(listed) == len(set(listed)), "a set was enumerated twice"
    for s in z.iter_sets(node):
        assert list(s) == sorted(s), "sets must come out in increasing variable order"
    return set(listed)


def minimal(family: Family) -> Family:
    return {s for s in family if not any(t < s for t in family)}


@settings(max_examples=200, deadline=None)
@given(FAMILIES, FAMILIES, st.one_of(st.none(), st.integers(0, 6)))
def test_operations_match_sets(a: Family, b: Family, limit: int | None) -> None:
    z = Zbdd()
    x, y = build(z, a), build(z, b)
    assert read(z, x) == a
    assert read(z, z.union(x, y)) == a | b
    product = {s | t for s in a for t in b if limit is None or len(s | t) <= limit}
    assert read(z, z.product(x, y, limit)) == product
    assert read(z, z.minimal(x)) == minimal(a)
    assert read(z, z.without(x, y)) == {s for s in a if not any(t <= s for t in b)}
    if limit is not None:
        assert read(z, z.truncate(x, limit)) == {s for s in a if len(s) <= limit}
    assert read(z, z.or_minimal(z.minimal(x), z.minimal(y), limit)) == {
        s for s in minimal(a | b) if limit is None or len(s) <= limit
    }
    assert read(z, z.and_minimal(x, y, limit)) == minimal(product)
    avoided = {1, 4, 6}
    assert read(z, z.avoiding(x, avoided)) == {s for s in a if not s & avoided}


@settings(max_examples=200, deadline=None)
@given(FAMILIES)
def test_counting_and_measures(a: Family) -> None:
    z = Zbdd()
    x = build(z, a)
    assert z.count(x) == len(a)
    orders: dict[int, int] = {}
    for s in a:
        orders[len(s)] = orders.get(len(s), 0) + 1
    assert z.count_by_order(x) == orders
    assert z.min_order(x) == (min(map(len, a)) if a else None)
    assert z.max_order(x) == (max(map(len, a)) if a else None)
    weight = [0.5, 0.1, 0.9, 1.0, 0.0, 0.25, 0.3, 0.7]
    prod = {s: math.prod(weight[v] for v in s) for s in a}
    assert z.rare_event(x, weight) == pytest.approx(sum(prod.values()), abs=1e-12)
    slopes = z.rare_event_slopes(x, weight)
    for v in range(8):
        expected = sum(math.prod(weight[u] for u in s if u != v) for s in a if v in s)
        assert slopes.get(v, 0.0) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(FAMILIES, st.integers(1, 5))
def test_heaviest_returns_the_most_probable_sets(a: Family, limit: int) -> None:
    z = Zbdd()
    x = build(z, a)
    weight = [0.5, 0.1, 0.9, 1.0, 0.0, 0.25, 0.3, 0.7]
    found = z.heaviest(x, weight, limit)
    assert len(found) >= min(limit, len(a))
    assert len({s for s, _ in found}) == len(found)
    best = sorted((math.prod(weight[v] for v in s) for s in a), reverse=True)
    kept = sorted((p for _, p in found), reverse=True)
    assert kept[: min(limit, len(a))] == pytest.approx(best[:limit], abs=1e-15)
    for variables, product in found:
        assert frozenset(variables) in a
        assert product == pytest.approx(math.prod(weight[v] for v in variables), abs=1e-15)


def test_terminals_and_singletons() -> None:
    z = Zbdd()
    assert read(z, EMPTY) == set()
    assert read(z, BASE) == {frozenset()}
    assert read(z, z.singletons([3, 1, 3])) == {frozenset({1}), frozenset({3})}
    assert read(z, z.singleton(2)) == {frozenset({2})}
    assert z.count(BASE) == 1 and z.count(EMPTY) == 0
    assert z.count_by_order(BASE) == {0: 1}
    # The empty set is inside every set, so it removes everything; it survives only against itself absent.
    assert z.minimal(z.union(BASE, z.singleton(1))) == BASE
    assert z.without(z.singleton(1), BASE) == EMPTY


def test_nodes_are_shared() -> None:
    z = Zbdd()
    first = z.set_of([1, 2, 3])
    before = z.node_count
    assert z.set_of([3, 2, 1]) == first
    assert z.node_count == before
    assert z.size(first) == 3


def test_node_budget_raises_and_leaves_the_manager_usable() -> None:
    z = Zbdd()
    with pytest.raises(BudgetExceededError), z.budget(nodes=10):
        z.singletons(range(100))
    assert read(z, z.singletons([1, 2])) == {frozenset({1}), frozenset({2})}


def test_time_budget_raises() -> None:
    z = Zbdd()
    chain = z.singletons(range(3000))
    with pytest.raises(BudgetExceededError), z.budget(seconds=0.0):
        z.product(chain, chain)  # millions of pairs: it must stop at the first check


def test_deep_diagrams_do_not_hit_the_recursion_limit() -> None:
    z = Zbdd()
    n = 20_000
    limit = sys.getrecursionlimit()
    chain = z.singletons(range(n))
    other = z.singletons(range(1, n, 2))
    assert z.count(z.union(chain, other)) == n
    assert z.count(z.minimal(z.union(chain, z.set_of(range(n))))) == n
    assert z.count(z.without(chain, other)) == n // 2
    assert sys.getrecursionlimit() == limit, "the recursion limit must be restored"


def test_recursion_room_nests_and_restores() -> None:
    limit = sys.getrecursionlimit()
    with recursion_room(50_000):
        raised = sys.getrecursionlimit()
        assert raised >= 50_000
        with recursion_room(10_000):
            assert sys.getrecursionlimit() == raised
    assert sys.getrecursionlimit() == limit


@settings(max_examples=300, deadline=None)
@given(st.lists(FAMILIES, min_size=1, max_size=5), st.integers(-1, 6), st.integers(0, 5))
def test_at_least_matches_sets(families: list[Family], need: int, limit: int) -> None:
    z = Zbdd()
    nodes = [z.minimal(build(z, f)) for f in families]
    minimal_families = [minimal(f) for f in families]
    # Every way to take one set from each of ``need`` families, unioned: the sets that hold a set of each.
    unions: Family = set()
    for chosen in itertools.combinations(minimal_families, max(need, 0)):
        for parts in itertools.product(*chosen):
            unions.add(frozenset().union(*parts))
    expected = {s for s in minimal(unions) if len(s) <= limit}
    assert read(z, z.at_least(need, nodes, limit)) == expected
