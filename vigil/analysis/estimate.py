"""Fallback estimates when an exact BDD is out of budget: bounds from cut sets, and Monte-Carlo."""

from __future__ import annotations

import itertools
import math
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vigil.analysis.faulttree import FaultTree, Gate, GateKind

if TYPE_CHECKING:
    from vigil.analysis.engine import CutSets

_BONFERRONI_SETS = 256


def cut_set_bounds(cut_sets: CutSets, p: Sequence[float], cone: Sequence[float]) -> tuple[float, float, float]:
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


def monte_carlo(tree: FaultTree, top: str, deadline: float) -> tuple[float, float, float] | None:
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
