"""The analysis engine against brute force on random small trees, plus edge cases, fallbacks and scale."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analysis import bruteforce
from tests.analysis.synthetic import infrastructure
from vigil.analysis import engine, forms
from vigil.analysis.bdd import Bdd
from vigil.analysis.engine import Analyzer, CutSets
from vigil.analysis.faulttree import FaultTree, FaultTreeError, GateKind
from vigil.analysis.zbdd import BASE, EMPTY, Zbdd

PROBABILITIES = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.1, 1e-3]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)
SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def trees(draw: st.DrawFn, max_events: int = 10) -> tuple[FaultTree, str]:
    """Draw a random coherent tree (shared sub-gates, k-of-n gates, house events) and a top node."""
    tree = FaultTree()
    for i in range(draw(st.integers(1, max_events))):
        tree.add_event(f"e{i}", draw(PROBABILITIES))
    for i in range(draw(st.integers(0, 2))):
        tree.add_house(f"h{i}", draw(st.booleans()))
    nodes = [*tree.events, *tree.houses]
    for i in range(draw(st.integers(1, 7))):
        children = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=5))
        kind = draw(st.sampled_from(list(GateKind)))
        k = draw(st.integers(1, len(children))) if kind is GateKind.ATLEAST else 0
        tree.add_gate(f"g{i}", kind, children, k)
        nodes.append(f"g{i}")
    top = draw(st.one_of(st.just(nodes[-1]), st.sampled_from(nodes)))
    return tree, top


# Internal strategies the engine chooses between; each must give the same answers.
STRATEGIES = [
    {"_MAX_SHARED": engine._MAX_SHARED},  # the defaults
    {"_MAX_SHARED": -1},  # always one joint BDD per component, never cases on shared events
    {"_MAX_SHARED": 12, "_FLATTEN_LIMIT": 1},  # cases on every shared event; ORs kept as nested groups
]


@contextlib.contextmanager
def _patched(strategy: dict) -> Iterator[None]:
    """Set the engine's tuning constants, wherever (engine or forms) each one lives."""
    with contextlib.ExitStack() as stack:
        for name, value in strategy.items():
            module = forms if hasattr(forms, name) else engine
            stack.enter_context(mock.patch.object(module, name, value))
        yield


def as_set(cut_sets: CutSets) -> set[frozenset[str]]:
    listed = list(cut_sets)
    assert len(listed) == len(set(listed)), "a cut set was enumerated twice"
    return set(listed)


def orders_of(sets: set[frozenset[str]]) -> dict[int, int]:
    orders: dict[int, int] = {}
    for members in sets:
        orders[len(members)] = orders.get(len(members), 0) + 1
    return dict(sorted(orders.items()))


@SLOW
@given(trees(), st.sampled_from([None, 0, 1, 2, 3]), st.sampled_from(STRATEGIES))
def test_cut_sets_equal_brute_force(case: tuple[FaultTree, str], max_order: int | None, strategy: dict) -> None:
    tree, top = case
    expected = bruteforce.minimal_cut_sets(tree, top, max_order)
    with _patched(strategy):
        result = Analyzer(tree).cut_sets(top, max_order=max_order)
    assert as_set(result) == expected
    assert result.count == len(result) == len(expected)
    assert result.order_distribution == orders_of(expected)
    assert list(result.order_distribution) == sorted(result.order_distribution)
    assert result.max_order == max_order


@SLOW
@given(trees(), st.sampled_from(STRATEGIES))
def test_probability_and_importance_equal_brute_force(case: tuple[FaultTree, str], strategy: dict) -> None:
    tree, top = case
    with _patched(strategy):
        analyzer = Analyzer(tree)
        result = analyzer.probability(top)
        importance = analyzer.importance(top)
    expected = bruteforce.probability(tree, top)
    assert result.exact and result.method == "bdd"
    assert abs(result.value - expected) <= 1e-12
    assert result.lower == result.value == result.upper
    assert set(importance) == set(bruteforce.cone(tree, top))
    for event, measure in importance.items():
        works = bruteforce.conditional_probability(tree, top, event, failed=False)
        broken = bruteforce.conditional_probability(tree, top, event, failed=True)
        assert abs(measure.birnbaum - (broken - works)) <= 1e-12
        fussell_vesely = (expected - works) / expected if expected > 0 else 0.0
        assert abs(measure.fussell_vesely - fussell_vesely) <= 1e-9 * max(1.0, abs(fussell_vesely))


@SLOW
@given(trees(), st.sampled_from([None, 2]), st.integers(1, 6))
def test_ranked_orders_by_probability_then_ids(case: tuple[FaultTree, str], order: int | None, limit: int) -> None:
    tree, top = case
    expected = sorted(
        (-math.prod(sorted(tree.events[e] for e in s)), sorted(s))
        for s in bruteforce.minimal_cut_sets(tree, top, order)
    )
    everything = [(frozenset(ids), -negative) for negative, ids in expected]
    cut_sets = Analyzer(tree).cut_sets(top, max_order=order)
    assert cut_sets.ranked() == everything
    assert cut_sets.ranked(limit) == everything[:limit]
    assert cut_sets.ranked(0) == []


@settings(max_examples=60, deadline=None)
@given(trees(max_events=8), st.sampled_from([None, 2]))
def test_answers_do_not_depend_on_what_was_asked_before(case: tuple[FaultTree, str], order: int | None) -> None:
    tree, top = case
    warm = Analyzer(tree)
    for gate in tree.gates:  # memoise every sub-tree first, in declaration order
        warm.cut_sets(gate, max_order=order)
        warm.probability(gate)
    fresh = Analyzer(tree)
    assert as_set(warm.cut_sets(top, max_order=order)) == as_set(fresh.cut_sets(top, max_order=order))
    assert warm.probability(top).value == pytest.approx(fresh.probability(top).value, abs=1e-15)


# -- edge cases ----------------------------------------------------------------------------------------------------


def small_tree() -> FaultTree:
    tree = FaultTree()
    for name, p in [("a", 0.1), ("b", 0.2), ("c", 0.2), ("z", 0.0), ("one", 1.0)]:
        tree.add_event(name, p)
    tree.add_house("on", True)
    tree.add_house("off", False)
    tree.add_gate("pair", GateKind.AND, ["b", "c"])
    tree.add_gate("top", GateKind.OR, ["a", "pair", "off"])
    tree.add_gate("broken", GateKind.OR, ["a", "on"])
    tree.add_gate("never", GateKind.AND, ["a", "off"])
    tree.add_gate("certain", GateKind.AND, ["one", "z"])
    return tree


def test_unknown_ids_raise_fault_tree_error() -> None:
    analyzer = Analyzer(small_tree())
    for ask in (analyzer.cut_sets, analyzer.probability, analyzer.importance):
        with pytest.raises(FaultTreeError):
            ask("nope")
    with pytest.raises(ValueError, match="max_order"):
        analyzer.cut_sets("top", max_order=-1)


def test_malformed_trees_are_refused() -> None:
    tree = FaultTree()
    tree.add_gate("loop", GateKind.OR, ["loop2"])
    tree.add_gate("loop2", GateKind.OR, ["loop"])
    with pytest.raises(FaultTreeError):
        Analyzer(tree)


def test_constant_and_leaf_tops() -> None:
    analyzer = Analyzer(small_tree())
    assert as_set(analyzer.cut_sets("broken")) == {frozenset()}
    assert analyzer.cut_sets("broken").order_distribution == {0: 1}
    assert analyzer.probability("broken").value == 1.0
    assert as_set(analyzer.cut_sets("never")) == set()
    assert analyzer.probability("never").value == 0.0
    assert as_set(analyzer.cut_sets("a")) == {frozenset({"a"})}
    assert analyzer.probability("a").value == 0.1
    assert analyzer.importance("a")["a"].birnbaum == 1.0
    assert analyzer.probability("on").value == 1.0 and analyzer.importance("on") == {}
    assert as_set(analyzer.cut_sets("off")) == set()


def test_certain_and_impossible_events_stay_in_cut_sets() -> None:
    analyzer = Analyzer(small_tree())
    assert as_set(analyzer.cut_sets("certain")) == {frozenset({"one", "z"})}
    assert analyzer.probability("certain").value == 0.0
    assert analyzer.cut_sets("top", max_order=0).count == 0
    assert as_set(analyzer.cut_sets("top", max_order=1)) == {frozenset({"a"})}
    assert analyzer.cut_sets("top").ranked(1) == [(frozenset({"a"}), 0.1)]
    # b·c and ... tie at 0.04 with nothing else; a set's probability is the product of its events'.
    assert analyzer.cut_sets("top").ranked() == [(frozenset({"a"}), 0.1), (frozenset({"b", "c"}), 0.2 * 0.2)]


# -- budget fallback -----------------------------------------------------------------------------------------------


def test_over_budget_probability_is_bounded_by_cut_sets() -> None:
    infra = infrastructure(400, seed=5)
    exact = Analyzer(infra.tree)
    starved = Analyzer(infra.tree, node_limit=3)
    inexact = 0
    for service in infra.services:
        truth = exact.probability(service)
        estimate = starved.probability(service, budget_seconds=0.2)
        assert truth.exact
        assert estimate.lower <= truth.value * (1 + 1e-12) and truth.value <= estimate.upper * (1 + 1e-12)
        assert estimate.lower <= estimate.value <= estimate.upper
        if not estimate.exact:
            inexact += 1
            assert estimate.method == "mcub"
            assert estimate.upper <= 1.06 * estimate.lower + 1e-12
    assert inexact > 10, "a 3-node budget must send the services with redundancy to the fallback"


def test_over_budget_with_loose_bounds_uses_monte_carlo() -> None:
    # Two-out-of-three voting over likely failures: the cut-set bounds are loose, sampling is not.
    tree = FaultTree()
    for i in range(9):
        tree.add_event(f"e{i}", 0.3)
    for i in range(3):
        tree.add_gate(f"train{i}", GateKind.OR, [f"e{i}", f"e{i + 3}", f"e{(i + 1) % 3 + 6}"])
    tree.add_gate("top", GateKind.ATLEAST, ["train0", "train1", "train2"], 2)
    truth = bruteforce.probability(tree, "top")
    estimate = Analyzer(tree, node_limit=3).probability("top", budget_seconds=1.0)
    assert not estimate.exact and estimate.method == "monte-carlo"
    assert estimate.lower <= truth <= estimate.upper
    assert estimate.upper - estimate.lower < 0.05
    assert abs(estimate.value - truth) < 0.02


def test_over_budget_importance_falls_back_to_rare_event_approximation() -> None:
    tree = small_tree()
    result = Analyzer(tree, node_limit=1).importance("top")
    # Rare-event: P ≈ 0.1 + 0.04; ∂/∂p_b = p_c.
    assert result["b"].birnbaum == pytest.approx(0.2)
    assert result["a"].fussell_vesely == pytest.approx(0.1 / 0.14)


# -- scale ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["or", "and", "alternating", "atleast"])
def test_ten_thousand_nested_gates(kind: str) -> None:
    n = 10_000
    tree = FaultTree()
    for i in range(n):
        tree.add_event(f"e{i}", 0.5)
    tree.add_event("x", 0.5)
    for i in range(n - 1, -1, -1):
        below = f"g{i + 1}" if i < n - 1 else "x"
        if kind == "atleast":
            tree.add_gate(f"g{i}", GateKind.ATLEAST, [f"e{i}", below, "x"], 2)
            continue
        gate_kind = GateKind.OR if kind == "or" or (kind == "alternating" and i % 2 == 0) else GateKind.AND
        tree.add_gate(f"g{i}", gate_kind, [f"e{i}", below])
    analyzer = Analyzer(tree)
    cut_sets = analyzer.cut_sets("g0", max_order=None)
    probability = analyzer.probability("g0")
    expected = {
        "or": (n + 1, 1 - 0.5 ** (n + 1)),
        "and": (1, 0.0),
        "alternating": (n // 2 + 1, 2 / 3),
        "atleast": (1, 0.5),
    }[kind]
    assert cut_sets.count == expected[0]
    assert probability.exact and probability.value == pytest.approx(expected[1], abs=1e-9)
    assert len(analyzer.importance("g0")) == n + 1


def _direct(tree: FaultTree, top: str, k: int) -> tuple[set[frozenset[str]], float]:
    """Cut sets and probability of ``top`` straight from the tree (no forms): an independent reference."""
    order: dict[str, int] = {}
    for gate in tree.topological_gates([top]):
        for child in gate.children:
            if child in tree.events:
                order.setdefault(child, len(order))
    z, bdd = Zbdd(), Bdd([tree.events[e] for e in order])
    families: dict[str, int] = {}
    functions: dict[str, int] = {}
    for gate in tree.topological_gates([top]):
        kids = [families.get(c) or z.singleton(order[c]) for c in gate.children]
        bits = [functions.get(c) or bdd.variable(order[c]) for c in gate.children]
        if gate.kind is GateKind.OR:
            family = EMPTY
            for kid in kids:
                family = z.or_minimal(family, kid, k)
            families[gate.id], functions[gate.id] = family, bdd.disjunction(bits)
        elif gate.kind is GateKind.AND:
            family = BASE
            for kid in kids:
                family = z.and_minimal(family, kid, k)
            families[gate.id], functions[gate.id] = family, bdd.conjunction(bits)
        else:
            row = [BASE] + [EMPTY] * gate.k
            for i in range(len(kids) - 1, -1, -1):
                for j in range(min(gate.k, len(kids) - i), 0, -1):
                    row[j] = z.or_minimal(z.and_minimal(kids[i], row[j - 1], k), row[j], k)
            families[gate.id], functions[gate.id] = row[gate.k], bdd.at_least(gate.k, bits)
    names = {v: e for e, v in order.items()}
    sets = {frozenset(names[v] for v in s) for s in z.iter_sets(families[top])}
    return sets, bdd.probability(functions[top])


def test_infrastructure_answers_match_a_direct_computation() -> None:
    infra = infrastructure(1500, seed=11)
    analyzer = Analyzer(infra.tree)
    for service in random.Random(2).sample(infra.services, 60):
        for k in (2, 3):
            expected_sets, expected_p = _direct(infra.tree, service, k)
            assert as_set(analyzer.cut_sets(service, max_order=k)) == expected_sets
        assert analyzer.probability(service).value == pytest.approx(expected_p, rel=1e-12, abs=1e-300)


@pytest.mark.slow
def test_every_service_of_a_ten_thousand_component_fleet() -> None:
    # Speed is measured in benchmarks/bench_analysis.py; here: a whole fleet stays exact and complete.
    infra = infrastructure(10_000)
    analyzer = Analyzer(infra.tree)
    total = sum(analyzer.cut_sets(service, max_order=3).count for service in infra.services)
    probabilities = [analyzer.probability(service) for service in infra.services]
    assert all(p.exact for p in probabilities)
    assert total > len(infra.services)
