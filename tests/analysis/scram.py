"""Run the SCRAM reference tool (0.16.2, ``apt-get install scram``) on an MEF file and read its report.

Traps this harness guards against:

* SCRAM silently limits the product order to 20: :func:`run_scram` always passes ``--limit-order`` (a large one
  when the caller wants no limit).
* Some runs hang (``--zbdd -l 2`` on generated models): every run has a timeout and raises :class:`ScramTimeoutError`.
* Reports are huge (1.9 M products, 400 MB for edf9203 at order 4): the report is streamed with ``iterparse`` and
  each product is dropped once counted.
* SCRAM prints probabilities with ``%g``: 6 significant digits. Compare with :func:`same_to_printed_digits`, not
  with a tighter relative tolerance.
* A top event that is constant TRUE is reported as one product with ``order="1"`` and no literal; here it is the
  empty cut set (order 0).
* SCRAM 0.16.2 (and its master branch) is wrong on ``atleast(2; x, x, y)``: it answers ``y`` instead of ``x``
  (``Gate::ProcessVoteGateDuplicateArg`` in src/pdag.cc erases the repeated argument instead of the other one).
  Repeats arise from a repeated argument behind a pass-through gate or from SCRAM's own simplification of
  one-argument gates and constants: do not compare such trees with SCRAM.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from vigil.analysis.faulttree import FaultTree, GateKind

__all__ = [
    "MEF_MODELS",
    "NO_LIMIT",
    "SCRAM",
    "Algorithm",
    "ReferenceBdd",
    "ScramError",
    "ScramResult",
    "ScramTimeoutError",
    "brute_force_cut_sets",
    "order_counts",
    "run_scram",
    "same_to_printed_digits",
    "scram_available",
]

SCRAM = Path(os.environ.get("VIGIL_SCRAM", "/usr/bin/scram"))
# The Aralia models and their README: $VIGIL_SHARED_DIR/mef, by default shared/ beside the checkout (CI's layout).
MEF_MODELS = Path(os.environ.get("VIGIL_SHARED_DIR") or Path(__file__).resolve().parents[3] / "shared") / "mef"
NO_LIMIT = 1000  # passed as --limit-order when the caller wants every product (SCRAM's default is 20)

Algorithm = Literal["bdd", "zbdd", "mocus"]


class ScramError(RuntimeError):
    """SCRAM refused the input or failed; the message holds its stderr."""


class ScramTimeoutError(ScramError):
    """SCRAM did not finish in time (it was killed)."""


@dataclass(slots=True)
class ScramResult:
    """One top event's sum of products as SCRAM reported it."""

    top: str
    products: int
    distribution: dict[int, int]  # order -> number of products, counted from the literals
    probability: float | None  # 6 significant digits; rare-event approximation unless the algorithm is bdd
    warning: str
    seconds: float  # wall time of the whole scram run
    cut_sets: list[frozenset[str]] | None = None
    # SCRAM's own header figures, kept to cross-check the streamed counts
    declared_distribution: list[int] = field(default_factory=list)


def scram_available() -> bool:
    return SCRAM.is_file() and os.access(SCRAM, os.X_OK)


def run_scram(
    model: Path,
    *,
    algorithm: Algorithm = "bdd",
    limit_order: int | None = None,
    probability: bool = True,
    cut_sets: bool = False,
    names: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    report: Path | None = None,
) -> dict[str, ScramResult]:
    """Analyse ``model`` with SCRAM; return each top gate's result keyed by the top's name.

    ``names`` maps MEF names back to Vigil ids (invert :func:`vigil.analysis.mef.mef_names`) so cut sets come back
    in Vigil's ids. ``report`` keeps the XML report at that path; by default it goes to a temporary directory.
    Raises ScramError if SCRAM fails, ScramTimeoutError if it runs longer than ``timeout`` seconds.
    """
    if not scram_available():
        raise ScramError(f"{SCRAM} is not installed (apt-get install scram)")
    with tempfile.TemporaryDirectory(prefix="vigil-scram-") as tmp:
        out = report or Path(tmp) / "report.xml"
        command = [
            str(SCRAM),
            f"--{algorithm}",
            "--limit-order",
            str(NO_LIMIT if limit_order is None else limit_order),
            "--probability",
            "true" if probability else "false",
            "--no-indent",
            "-o",
            str(out),
            str(model),
        ]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ScramTimeoutError(f"scram ran over {timeout:g} s: {' '.join(command)}") from None
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise ScramError(f"scram exited with {done.returncode}: {' '.join(command)}\n{done.stderr.strip()}")
        return _read_report(out, seconds, cut_sets, names or {})


def _read_report(path: Path, seconds: float, keep_sets: bool, names: Mapping[str, str]) -> dict[str, ScramResult]:
    results: dict[str, ScramResult] = {}
    current: ScramResult | None = None
    holder: ET.Element | None = None
    for event, element in ET.iterparse(path, events=("start", "end")):
        if event == "start":
            if element.tag == "sum-of-products":
                attrs = element.attrib
                p = attrs.get("probability")
                current = ScramResult(
                    top=attrs["name"],
                    products=int(attrs["products"]),
                    distribution={},
                    probability=float(p) if p is not None else None,
                    warning=attrs.get("warning", ""),
                    seconds=seconds,
                    cut_sets=[] if keep_sets else None,
                    declared_distribution=[int(n) for n in attrs.get("distribution", "").split()],
                )
                results[current.top] = current
                holder = element
            continue
        if element.tag == "product":
            assert current is not None and holder is not None
            literals = []
            for literal in element:
                if literal.tag != "basic-event":  # <not> (prime implicants) or <ccf-event>: not coherent cut sets
                    raise ScramError(f"{path}: unexpected <{literal.tag}> in a product of {current.top}")
                literals.append(literal.attrib["name"])
            current.distribution[len(literals)] = current.distribution.get(len(literals), 0) + 1
            if current.cut_sets is not None:
                current.cut_sets.append(frozenset(names.get(n, n) for n in literals))
            holder.clear()  # drop the product just read: reports can hold millions
        elif element.tag == "sum-of-products":
            assert current is not None
            counted = sum(current.distribution.values())
            if counted != current.products:
                raise ScramError(f"{path}: {current.top} declares {current.products} products, lists {counted}")
            declared = list(current.declared_distribution)
            while declared and not declared[-1]:
                declared.pop()
            listed = [
                current.distribution.get(order, 0) for order in range(1, max(current.distribution, default=0) + 1)
            ]
            if 0 not in current.distribution and listed != declared:  # (UNITY is declared as one set of order 1)
                raise ScramError(f"{path}: {current.top} declares orders {declared}, lists {listed}")
            current = holder = None
    return results


def same_to_printed_digits(value: float, printed: float, digits: int = 6) -> bool:
    """Whether ``value`` agrees with a number SCRAM printed with ``%g`` (``digits`` significant digits)."""
    if printed == 0.0:
        return value == 0.0
    return abs(value - printed) <= 0.5 * 10.0 ** (_exponent(printed) - digits + 1) * (1 + 1e-9)


def _exponent(x: float) -> int:
    mantissa = f"{abs(x):e}"
    return int(mantissa.split("e")[1])


def order_counts(cut_sets: list[frozenset[str]]) -> dict[int, int]:
    """Order distribution of a list of cut sets (order -> count)."""
    return dict(Counter(len(s) for s in cut_sets))


# -- independent references ---------------------------------------------------------------------------------------
# SCRAM prints 6 digits; these give exact answers to check Vigil's engine at 1e-9 without trusting either tool.


def _minimise(sets: set[frozenset[str]]) -> set[frozenset[str]]:
    ordered = sorted(sets, key=len)
    kept: list[frozenset[str]] = []
    for candidate in ordered:
        if not any(k <= candidate for k in kept):
            kept.append(candidate)
    return set(kept)


def brute_force_cut_sets(tree: FaultTree, top: str) -> set[frozenset[str]]:
    """Minimal cut sets by set algebra, bottom-up (small trees only: no order limit, quadratic minimisation)."""
    known: dict[str, set[frozenset[str]]] = {e: {frozenset([e])} for e in tree.events}
    known.update((h, {frozenset()} if failed else set()) for h, failed in tree.houses.items())
    for gate in tree.topological_gates([top]):
        # levels[j]: the ways j of the children seen so far fail (j capped at the threshold)
        need = {GateKind.OR: 1, GateKind.AND: len(gate.children)}.get(gate.kind, gate.k)
        nothing: frozenset[str] = frozenset()
        levels: list[set[frozenset[str]]] = [{nothing}] + [set() for _ in range(need)]
        for child in gate.children:
            for j in range(need, 0, -1):
                grown = {a | b for a in levels[j - 1] for b in known[child]}
                levels[j] = _minimise(levels[j] | grown)
        known[gate.id] = levels[need]
    return known[top]


class ReferenceBdd:
    """A plain reduced ordered BDD (variable order: first met depth-first from the top) for exact probabilities."""

    def __init__(self, tree: FaultTree, top: str) -> None:
        self.tree = tree
        self.order: dict[str, int] = {}
        self.nodes: list[tuple[int, int, int]] = [(1 << 30, 0, 0), (1 << 30, 1, 1)]  # 0 = FALSE, 1 = TRUE
        self.unique: dict[tuple[int, int, int], int] = {}
        self.memo: dict[tuple[str, int, int], int] = {}
        built: dict[str, int] = {}
        for gate in tree.topological_gates([top]):
            for child in gate.children:
                if child in tree.events and child not in self.order:
                    self.order[child] = len(self.order)
        for h, failed in tree.houses.items():
            built[h] = 1 if failed else 0
        for e, index in self.order.items():
            built[e] = self._node(index, 0, 1)
        for gate in tree.topological_gates([top]):
            kids = [built[c] for c in gate.children]
            need = {GateKind.OR: 1, GateKind.AND: len(kids)}.get(gate.kind, gate.k)
            levels = [1] + [0] * need  # levels[j]: "at least j of the children seen so far fail"
            for kid in kids:
                for j in range(need, 0, -1):
                    levels[j] = self._apply("or", levels[j], self._apply("and", levels[j - 1], kid))
            built[gate.id] = levels[need]
        self.root = built[top]

    def _node(self, var: int, low: int, high: int) -> int:
        if low == high:
            return low
        key = (var, low, high)
        found = self.unique.get(key)
        if found is None:
            found = self.unique[key] = len(self.nodes)
            self.nodes.append(key)
        return found

    def _apply(self, op: str, a: int, b: int) -> int:
        if a < 2 or b < 2 or a == b:
            absorbing, neutral = (0, 1) if op == "and" else (1, 0)
            if absorbing in (a, b):
                return absorbing
            if a == neutral:
                return b
            if b == neutral or a == b:
                return a
        key = (op, min(a, b), max(a, b))
        found = self.memo.get(key)
        if found is None:
            va, la, ha = self.nodes[a]
            vb, lb, hb = self.nodes[b]
            var = min(va, vb)
            low = self._apply(op, la if va == var else a, lb if vb == var else b)
            high = self._apply(op, ha if va == var else a, hb if vb == var else b)
            found = self.memo[key] = self._node(var, low, high)
        return found

    def probability(self) -> float:
        p_of = {index: self.tree.events[e] for e, index in self.order.items()}
        value: list[float] = [0.0, 1.0] + [0.0] * (len(self.nodes) - 2)
        for node in range(2, len(self.nodes)):  # children are always created before their parents
            var, low, high = self.nodes[node]
            value[node] = p_of[var] * value[high] + (1.0 - p_of[var]) * value[low]
        return value[self.root]
