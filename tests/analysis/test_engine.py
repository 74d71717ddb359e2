"""The analysis engine against brute force on random small trees, plus its edge cases and fallbacks."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analysis import bruteforce
from vigil.analysis.engine import Analyzer, CutSets, Importance, Probability
from vigil.analysis.faulttree import FaultTree, FaultTreeError, GateKind

PROBABILITIES = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.1, 1e-3]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


@st.composite
def trees(draw: st.DrawFn, max_events: int = 10) -> tuple[FaultTree, str]:
    """Draw a random coherent tree (shared sub-gates, k-of-n gates, house events) and a top node."""
    tree = FaultTree()
    n_events = draw(st.integers(1, max_events))
    for i in range(n_events):
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


def as_set(cut_sets: CutSets) -> set[frozenset[str]]:
    listed = list(cut_sets)
    assert len(listed) == len(set(listed)), "a cut set was enumerated twice"
    return set(listed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.sampled_from([None, 0, 1, 2, 3]))
def test_cut_sets_equal_brute_force(case: tuple[FaultTree, str], max_order: int | None) -> None:
    tree, top = case
    expected = bruteforce.minimal_cut_sets(tree, top, max_order)
    result = Analyzer(tree).cut_sets(top, max_order=max_order)
    assert as_set(result) == expected
    assert result.count == len(expected)
    orders: dict[int, int] = {}
    for cut in expected:
        orders[len(cut)] = orders.get(len(cut), 0) + 1
    assert result.order_distribution == orders
    assert result.max_order == max_order


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees())
def test_probability_and_importance_equal_brute_force(case: tuple[FaultTree, str]) -> None:
    tree, top = case
    analyzer = Analyzer(tree)
    result = analyzer.probability(top)
    expected = bruteforce.probability(tree, top)
    assert result.exact and result.method == "bdd"
    assert abs(result.value - expected) <= 1e-12
    assert result.lower == result.value == result.upper
    importance = analyzer.importance(top)
    assert set(importance) == set(bruteforce.cone(tree, top))
    for event, measure in importance.items():
        works = bruteforce.conditional_probability(tree, top, event, failed=False)
        broken = bruteforce.conditional_probability(tree, top, event, failed=True)
        assert abs(measure.birnbaum - (broken - works)) <= 1e-12
        fussell_vesely = (expected - works) / expected if expected > 0 else 0.0
        assert abs(measure.fussell_vesely - fussell_vesely) <= 1e-9


@settings(max_examples=100, deadline=None)
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
