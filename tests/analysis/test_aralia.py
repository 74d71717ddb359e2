"""Vigil's engine on the Aralia benchmark fault trees (Open-PSA MEF files in ``shared/mef``).

The references are SCRAM 0.16.2's answers, as listed in shared/mef/README.md — except isp9607, whose distribution
the README truncates after order 13 (SCRAM prints ``... 7800 13704 9960 1344``, which sums to 150,436). SCRAM
prints probabilities with 6 significant digits, so probabilities are also checked at 1e-9 relative against an
independent BDD (:class:`tests.analysis.scram.ReferenceBdd`). The ``scram`` tests re-run SCRAM itself.

The models are found in ``$VIGIL_SHARED_DIR/mef``, by default ``<checkout>/../shared/mef``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from tests.analysis.scram import (
    MEF_MODELS,
    SCRAM,
    Algorithm,
    ReferenceBdd,
    run_scram,
    same_to_printed_digits,
    scram_available,
)
from vigil.analysis.engine import Analyzer
from vigil.analysis.mef import MefModel, load_mef

MODELS = MEF_MODELS

pytestmark = pytest.mark.skipif(
    not (MODELS / "README.md").is_file(),
    reason=f"the Aralia models are not in {MODELS} (set VIGIL_SHARED_DIR to the directory holding mef/)",
)
needs_scram = pytest.mark.skipif(
    not scram_available(), reason=f"SCRAM is not installed at {SCRAM} (apt-get install scram)"
)


@dataclass(frozen=True, slots=True)
class Reference:
    model: str
    limit: int | None  # maximum cut-set order; None = all
    count: int
    distribution: tuple[int, ...]  # number of minimal cut sets of order 1, 2, ...
    probability: float  # exact P(top) as SCRAM's BDD prints it (6 significant digits)

    @property
    def id(self) -> str:
        return f"{self.model.removesuffix('.xml')}-{'all' if self.limit is None else f'order{self.limit}'}"

    def orders(self) -> dict[int, int]:
        return {order: n for order, n in enumerate(self.distribution, 1) if n}


REFERENCES = [
    Reference("baobab1.xml", None, 46_188, (0, 1, 1, 70, 400, 2212, 14748, 8460, 10624, 6600, 3072), 1.01708e-4),
    Reference("baobab1.xml", 4, 72, (0, 1, 1, 70), 1.01708e-4),
    Reference("baobab2.xml", None, 4_805, (0, 6, 121, 268, 630, 3780), 7.13018e-4),
    Reference("chinese.xml", None, 392, (0, 12, 0, 24, 188, 168), 1.17058e-3),
    Reference("das9202.xml", None, 27_778, (1, 1, 16, 112, 448, 1536, 3648, 5632, 7168, 5120, 4096), 1.01154e-2),
    Reference(
        "isp9607.xml",
        None,
        150_436,
        (0, 0, 0, 100, 24, 744, 5232, 19992, 33336, 36288, 18816, 3096, 7800, 13704, 9960, 1344),
        9.4951e-7,
    ),
    Reference("edf9203.xml", 4, 1_873_598, (37, 8331, 318810, 1546420), 0.599589),
]
# Measured on 2 cores: all of baobab1's cut sets take the engine 5-15 s; SCRAM's reports of isp9607 (66 MB) and
# edf9203 (400 MB) take 7 s and 20 s to read. edf9203's 1.9 M sets are not compared one by one.
SLOW_CUT_SETS = {"baobab1-all"}
BIG_REPORTS = {"isp9607-all", "edf9203-order4"}


def cases(slow: set[str], leave_out: frozenset[str] | set[str] = frozenset()) -> list[object]:
    return [
        pytest.param(r, id=r.id, marks=[pytest.mark.slow] if r.id in slow else [])
        for r in REFERENCES
        if r.id not in leave_out
    ]


@functools.cache
def model(name: str) -> MefModel:
    loaded = load_mef(MODELS / name)
    assert loaded.tops == ["r1"]
    return loaded


@functools.cache
def exact_probability(name: str) -> float:
    return ReferenceBdd(model(name).tree, "r1").probability()


def test_the_references_are_consistent() -> None:
    for reference in REFERENCES:
        assert sum(reference.distribution) == reference.count, reference.id


@pytest.mark.parametrize("reference", cases(SLOW_CUT_SETS))
def test_minimal_cut_sets_match_scram(reference: Reference) -> None:
    cut_sets = Analyzer(model(reference.model).tree).cut_sets("r1", max_order=reference.limit)
    assert cut_sets.count == reference.count
    assert cut_sets.order_distribution == reference.orders()


SMALL_BDD = sorted({r.model for r in REFERENCES} - {"edf9203.xml"})


@pytest.mark.parametrize("name", SMALL_BDD)
def test_probability_is_exact_to_1e9(name: str) -> None:
    probability = Analyzer(model(name).tree).probability("r1")
    reference = next(r for r in REFERENCES if r.model == name)
    assert probability.exact and probability.method == "bdd"
    assert probability.value == pytest.approx(exact_probability(name), rel=1e-9)
    assert same_to_printed_digits(probability.value, reference.probability)


@pytest.mark.slow
def test_edf9203_probability() -> None:
    """edf9203's BDD has 2.6 M nodes (variables in depth-first order): exact to 1e-9 if the engine affords it.

    An estimate (the engine's fallback beyond its budget) xfails, but must still be consistent with the exact value.
    """
    probability = Analyzer(model("edf9203.xml").tree).probability("r1")
    exact = exact_probability("edf9203.xml")
    assert same_to_printed_digits(exact, 0.599589)
    if probability.exact:
        assert probability.value == pytest.approx(exact, rel=1e-9)
        return
    assert probability.lower <= probability.value <= probability.upper
    if probability.method == "monte-carlo":  # a 95 % interval: widened twofold it misses once in ~10,000 runs
        assert abs(probability.value - exact) <= probability.upper - probability.lower
    else:
        assert probability.lower * (1 - 1e-12) <= exact <= probability.upper * (1 + 1e-12)
    pytest.xfail(f"engine: edf9203 not exact ({probability.method}), off by {probability.value / exact - 1:.1e}")


@pytest.mark.scram
@needs_scram
@pytest.mark.parametrize("reference", cases(BIG_REPORTS))
def test_scram_still_gives_the_references(reference: Reference) -> None:
    """SCRAM's BDD and ZBDD agree with the table (two algorithms, as its preprocessing has known bugs)."""
    algorithms: tuple[Algorithm, ...] = ("bdd",) if reference.id in BIG_REPORTS else ("bdd", "zbdd")
    for algorithm in algorithms:
        (result,) = run_scram(MODELS / reference.model, algorithm=algorithm, limit_order=reference.limit).values()
        assert (result.products, result.distribution) == (reference.count, reference.orders()), algorithm
        if algorithm == "bdd":
            assert result.probability == reference.probability


@pytest.mark.scram
@needs_scram
@pytest.mark.parametrize("reference", cases(SLOW_CUT_SETS | BIG_REPORTS, leave_out={"edf9203-order4"}))
def test_the_cut_sets_are_scrams(reference: Reference) -> None:
    """Not only the counts: the very same sets (the Aralia names are valid MEF names, so ids are names)."""
    (result,) = run_scram(MODELS / reference.model, limit_order=reference.limit, cut_sets=True).values()
    assert result.cut_sets is not None
    engine = Analyzer(model(reference.model).tree).cut_sets("r1", max_order=reference.limit)
    assert set(engine) == set(result.cut_sets)
