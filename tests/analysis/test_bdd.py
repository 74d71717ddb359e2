"""The BDD manager against truth tables of random monotone formulas."""

from __future__ import annotations

import itertools
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.analysis.bdd import FALSE, TRUE, Bdd, BudgetExceededError

N = 6
P = [0.5, 0.1, 0.0, 1.0, 0.3, 0.999]

Formula = Any  # ("var", i) | ("and" | "or", [formulas]) | ("atleast", k, [formulas])


def formulas() -> st.SearchStrategy[Formula]:
    leaves = st.builds(lambda i: ("var", i), st.integers(0, N - 1))

    def extend(children: st.SearchStrategy[Formula]) -> st.SearchStrategy[Formula]:
        lists = st.lists(children, min_size=1, max_size=4)
        return st.one_of(
            st.builds(lambda kids: ("and", kids), lists),
            st.builds(lambda kids: ("or", kids), lists),
            lists.flatmap(lambda kids: st.builds(lambda k: ("atleast", k, kids), st.integers(0, len(kids) + 1))),
        )

    return st.recursive(leaves, extend, max_leaves=12)


def evaluate(formula: Formula, values: tuple[bool, ...]) -> bool:
    kind = formula[0]
    if kind == "var":
        return values[formula[1]]
    if kind == "and":
        return all(evaluate(f, values) for f in formula[1])
    if kind == "or":
        return any(evaluate(f, values) for f in formula[1])
    return sum(evaluate(f, values) for f in formula[2]) >= formula[1]


def build(bdd: Bdd, formula: Formula) -> int:
    kind = formula[0]
    if kind == "var":
        return bdd.variable(formula[1])
    if kind == "and":
        return bdd.conjunction([build(bdd, f) for f in formula[1]])
    if kind == "or":
        return bdd.disjunction([build(bdd, f) for f in formula[1]])
    return bdd.at_least(formula[1], [build(bdd, f) for f in formula[2]])


def truth_probability(formula: Formula, p: list[float]) -> float:
    total = []
    for values in itertools.product((False, True), repeat=N):
        if evaluate(formula, values):
            total.append(math.prod(p[i] if on else 1 - p[i] for i, on in enumerate(values)))
    return math.fsum(total)


@settings(max_examples=300, deadline=None)
@given(formulas())
def test_functions_match_truth_tables(formula: Formula) -> None:
    bdd = Bdd(P)
    f = build(bdd, formula)
    assert bdd.probability(f) == pytest.approx(truth_probability(formula, P), abs=1e-12)
    # Canonical: the same function built another way is the same node.
    assert f == build(bdd, ("or", [formula, ("and", [formula, ("var", 0)])]))
    support = {v for v in range(N) if _depends_on(formula, v)}
    assert bdd.support(f) == support


@settings(max_examples=200, deadline=None)
@given(formulas())
def test_birnbaum_and_conditioning_match_truth_tables(formula: Formula) -> None:
    bdd = Bdd(P)
    f = build(bdd, formula)
    slopes = bdd.birnbaum(f)
    for v in range(N):
        failed = truth_probability(formula, [1.0 if i == v else p for i, p in enumerate(P)])
        works = truth_probability(formula, [0.0 if i == v else p for i, p in enumerate(P)])
        assert slopes.get(v, 0.0) == pytest.approx(failed - works, abs=1e-12)
        assert bdd.probability_given(f, {v: 0.0}) == pytest.approx(works, abs=1e-12)
        assert bdd.probability_given(f, {v: 1.0}) == pytest.approx(failed, abs=1e-12)


def _depends_on(formula: Formula, v: int) -> bool:
    for values in itertools.product((False, True), repeat=N):
        flipped = tuple(not x if i == v else x for i, x in enumerate(values))
        if evaluate(formula, values) != evaluate(formula, flipped):
            return True
    return False


def test_constants_and_small_cases() -> None:
    bdd = Bdd([0.2, 0.3])
    a, b = bdd.variable(0), bdd.variable(1)
    assert bdd.conjunction([]) == TRUE and bdd.disjunction([]) == FALSE
    assert bdd.at_least(0, [a, b]) == TRUE and bdd.at_least(3, [a, b]) == FALSE
    assert bdd.and_(a, FALSE) == FALSE and bdd.or_(a, TRUE) == TRUE
    assert bdd.at_least(2, [a, b]) == bdd.and_(a, b)
    assert bdd.any_of([1, 0, 1]) == bdd.or_(a, b)
    assert bdd.probability(bdd.or_(a, b)) == pytest.approx(1 - 0.8 * 0.7)
    assert bdd.size(bdd.or_(a, b)) == 2
    assert bdd.node(a) == (0, FALSE, TRUE)


def test_node_budget_raises() -> None:
    bdd = Bdd([0.1] * 40)
    with pytest.raises(BudgetExceededError), bdd.budget(nodes=50):
        # x0·x20 ∨ x1·x21 ∨ … is exponential in this order: it cannot fit in 50 nodes.
        bdd.disjunction([bdd.and_(bdd.variable(i), bdd.variable(i + 20)) for i in range(20)])
    assert bdd.probability(bdd.variable(3)) == pytest.approx(0.1)


def test_time_budget_raises() -> None:
    bdd = Bdd([0.1] * 60)
    with pytest.raises(BudgetExceededError), bdd.budget(seconds=0.0):
        bdd.disjunction([bdd.and_(bdd.variable(i), bdd.variable(i + 30)) for i in range(30)])


def test_deep_functions_do_not_hit_the_recursion_limit() -> None:
    n = 20_000
    bdd = Bdd([0.001] * n)
    limit = sys.getrecursionlimit()
    # Interleaved variables: every apply step walks down both 10,000-node chains.
    both = bdd.and_(bdd.any_of(range(0, n, 2)), bdd.any_of(range(1, n, 2)))
    assert bdd.probability(both) == pytest.approx((1 - 0.999 ** (n // 2)) ** 2, rel=1e-9)
    assert len(bdd.birnbaum(both)) == n
    assert sys.getrecursionlimit() == limit


@settings(max_examples=200, deadline=None)
@given(st.lists(formulas(), min_size=1, max_size=5), st.integers(-1, 6))
def test_threshold_is_the_same_diagram_as_pairwise_at_least(operands: list[Formula], k: int) -> None:
    # Canonical, so the joint recursion must give the very node the pairwise construction gives.
    bdd = Bdd(P)
    roots = [build(bdd, f) for f in operands]
    assert bdd.threshold(k, roots) == bdd.at_least(k, roots)
    assert bdd.threshold(1, [*roots, FALSE]) == bdd.disjunction(roots)
    assert bdd.threshold(len(roots) + 1, [*roots, TRUE]) == bdd.conjunction(roots)
