"""Benchmark: Vigil vs SCRAM 0.16.2 on the Aralia fault trees of ``shared/mef`` (Open-PSA MEF files).

The cases and reference answers are read from the README table next to the models (model, order limit, number of
minimal cut sets, order distribution, P(top) from SCRAM's BDD). Each case is timed in Vigil (``load_mef``, then
``Analyzer.cut_sets`` and ``Analyzer.probability``) and in SCRAM (``--bdd``, the order limit given, probability on,
timeout per run), and both answers are checked against the reference and each other (cut sets as sets of sets when
there are at most ``--compare-sets`` of them).

    python benchmarks/bench_aralia.py [--mef-dir /work/shared/mef] [--timeout 120] [--no-scram]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scram
from _common import ROOT, fmt_time, header, table, timed

from vigil.analysis.engine import Analyzer
from vigil.analysis.mef import load_mef

DEFAULT_DIR = Path(os.environ.get("VIGIL_SHARED_DIR") or ROOT.parent / "shared") / "mef"


@dataclass(frozen=True, slots=True)
class Case:
    model: str
    limit: int | None
    count: int
    distribution: tuple[int, ...]  # order 1, 2, ...
    probability: float  # as SCRAM printed it (6 significant digits)


def read_cases(readme: Path) -> list[Case]:
    """Parse the reference table of the README (rows ``| x.xml | none | 46,188 | 0 1 1 ... | 1.01708e-4 |``)."""
    cases = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].endswith(".xml"):
            continue
        number = re.match(r"[0-9.eE+-]+", cells[4])
        if number is None:
            continue
        limit = None if cells[1] in ("none", "", "-") else int(cells[1])
        distribution = tuple(int(n) for n in re.findall(r"\d+", cells[3]))
        cases.append(Case(cells[0], limit, int(cells[2].replace(",", "")), distribution, float(number.group())))
    return cases


def distribution_matches(found: dict[int, int], case: Case) -> str:
    """Compare an order distribution with the README's.

    When the README's numbers do not add up to its count, its line was cut short (isp9607's ends in "1370" where
    SCRAM prints "13704 9960 1344"): then only the orders before the last number listed are compared.
    """
    ours = tuple(found.get(o, 0) for o in range(1, max(found, default=0) + 1))
    reference = case.distribution
    if ours == reference:
        return "yes"
    if sum(reference) != case.count:
        known = reference[:-1]
        if ours[: len(known)] == known:
            return f"yes for orders 1-{len(known)} (README line cut short)"
    return "NO"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mef-dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per SCRAM run")
    parser.add_argument("--repeat", type=int, default=3, help="Vigil runs per case (fresh Analyzer), fastest counts")
    parser.add_argument("--compare-sets", type=int, default=200_000, help="compare cut sets one by one up to this")
    parser.add_argument("--no-scram", action="store_true", help="time Vigil only")
    args = parser.parse_args(argv)

    header("Aralia fault trees: Vigil vs SCRAM 0.16.2 (--bdd)")
    readme = args.mef_dir / "README.md"
    if not readme.is_file():
        print(f"no {readme}: set --mef-dir or VIGIL_SHARED_DIR")
        return 1
    use_scram = not args.no_scram and _scram.available()
    if use_scram:
        print(f"SCRAM: {_scram.version()}; timeout {args.timeout:g} s per run\n")
    rows = []
    for case in read_cases(readme):
        path = args.mef_dir / case.model
        mef, load_time = timed(lambda path=path: load_mef(path))  # type: ignore[misc]
        top = mef.tops[0]
        best_cut = best_p = float("inf")
        for _ in range(max(1, args.repeat)):
            analyzer = Analyzer(mef.tree)
            started = time.perf_counter()
            cuts = analyzer.cut_sets(top, max_order=case.limit)
            count, distribution = cuts.count, cuts.order_distribution
            best_cut = min(best_cut, time.perf_counter() - started)
            started = time.perf_counter()
            probability = analyzer.probability(top)
            best_p = min(best_p, time.perf_counter() - started)
        vigil_time = load_time + best_cut + best_p
        p_ok = _scram.same_to_printed_digits(probability.value, case.probability)
        label = f"{case.model} ({len(mef.tree.events)} events)"
        limit = "none" if case.limit is None else str(case.limit)
        rows.append(
            [
                label,
                limit,
                "Vigil",
                fmt_time(load_time),
                fmt_time(best_cut),
                fmt_time(best_p),
                fmt_time(vigil_time),
                f"{count:,}" + ("" if count == case.count else f" (README {case.count:,})"),
                distribution_matches(distribution, case),
                f"{probability.value:.6g}" + ("" if probability.exact else f" ({probability.method})"),
                "same 6 digits" if p_ok else f"differs (README {case.probability:g})",
                "",
            ]
        )
        if not use_scram:
            continue
        keep = count <= args.compare_sets
        result = _scram.run(
            path, algorithm="bdd", limit_order=case.limit, probability=True, timeout=args.timeout, keep_sets=keep
        )
        if result.status != "ok":
            rows.append([label, limit, "SCRAM bdd", result.status, "", "", fmt_time(result.seconds)] + [""] * 5)
            continue
        same_sets = ""
        if keep and result.cut_sets is not None:
            same_sets = ", identical sets" if result.cut_sets == set(cuts) else ", DIFFERENT sets"
        scram_count = result.products or 0
        rows.append(
            [
                label,
                limit,
                "SCRAM bdd",
                "-",
                fmt_time(result.own_times.get("products")),
                fmt_time(result.own_times.get("probability")),
                f"{fmt_time(result.seconds)} ({result.peak_mb:,.0f} MB)",
                f"{scram_count:,}" + ("" if scram_count == case.count else f" (README {case.count:,})") + same_sets,
                distribution_matches(result.distribution, case),
                "-" if result.probability is None else f"{result.probability:.6g}",
                "same as README" if result.probability == case.probability else f"README {case.probability:g}",
                f"{result.seconds / vigil_time:.3g}",
            ]
        )
        del analyzer, cuts
    print(
        table(
            [
                "model",
                "order limit",
                "tool",
                "load",
                "cut sets",
                "probability",
                "total (wall)",
                "minimal cut sets",
                "distribution as README",
                "P(top)",
                "P check",
                "SCRAM / Vigil time",
            ],
            rows,
        )
    )
    print(
        "\nVigil: load_mef, then the fastest of the runs on a fresh Analyzer. SCRAM: its own <calculation-time> for "
        "products and probability; total is the wall time of the run (parse, analysis, writing the report)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
