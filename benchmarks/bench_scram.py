"""Benchmark: Vigil's engine against SCRAM 0.16.2 on one "all services" top event of generated models.

For each size, the model's fault tree gets one extra OR gate over the gate of every service (``select_services``),
whose cone is exported as Open-PSA MEF (``export_mef``) and analysed by SCRAM with MOCUS, ZBDD and BDD (order limit 3,
probability on: rare-event approximation for MOCUS/ZBDD, exact for BDD), each with a timeout, and by Vigil's
Analyzer on the same tree. Reported: times and their ratio, whether the minimal cut sets are identical (as sets of
sets, names mapped back to Vigil ids), and whether the probabilities agree (SCRAM prints 6 significant digits).
An algorithm that timed out at one size is not retried at larger sizes (``--no-skip`` to force).

    python benchmarks/bench_scram.py [--components 1000 3000 10000 30000] [--timeout 120]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _scram
from _common import OUT, fmt_time, header, model_file, table, timed

from vigil.analysis.build import build_fault_tree
from vigil.analysis.engine import Analyzer
from vigil.analysis.faulttree import FaultTree, GateKind
from vigil.analysis.mef import export_mef, mef_names
from vigil.analysis.report import select_services
from vigil.model.loader import load_model

TOP = "#all-services"
ALGORITHMS = ("mocus", "zbdd", "bdd")


def prepare(size: int, seed: int) -> tuple[FaultTree, int, Path, dict[str, str], float]:
    """Return the tree with the all-services top, the number of services, the MEF file, MEF name -> id, export time."""
    model = load_model([model_file(size, seed)])
    mtree = build_fault_tree(model)
    services = select_services(model)
    mtree.tree.add_gate(TOP, GateKind.OR, [mtree.gate(s) for s in services])
    text, export = timed(lambda: export_mef(mtree.tree, TOP, name="all-services"))
    path = OUT / f"scram-all-services-{size}-seed{seed}.xml"
    path.write_text(text, encoding="utf-8")
    names = {mef: node for node, mef in mef_names(mtree.tree, TOP).items()}
    return mtree.tree, len(services), path, names, export


def orders(distribution: dict[int, int]) -> str:
    return " / ".join(f"{distribution.get(o, 0):,}" for o in range(1, max(distribution, default=1) + 1))


def _ratio(scram: float, vigil: float, status: str) -> str:
    """SCRAM's time over Vigil's: > 1 means Vigil is faster; a timeout only gives a lower bound."""
    text = f"{scram / vigil:.3g}" if vigil > 0 else "-"
    return f"> {text}" if status == "timeout" else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, nargs="+", default=[1000, 3000, 10_000, 30_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-order", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per SCRAM run")
    parser.add_argument("--bdd-timeout", type=float, help="seconds for SCRAM's BDD runs (default: --timeout)")
    parser.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=ALGORITHMS)
    parser.add_argument("--no-skip", action="store_true", help="retry algorithms that timed out at a smaller size")
    args = parser.parse_args(argv)

    header("Vigil vs SCRAM on one 'all services' top event")
    if not _scram.available():
        print(f"SCRAM not found at {_scram.SCRAM} (apt-get install scram): nothing to compare.")
        return 1
    print(f"SCRAM: {_scram.version()}; timeout {args.timeout:g} s per run, memory cap {_scram.MEMORY_CAP >> 30} GB\n")
    rows = []
    stopped: dict[str, int] = {}
    for size in args.components:
        tree, services, path, names, export = prepare(size, args.seed)
        cone = tree.cone_events(TOP)
        label = f"{size:,} ({len(cone):,} events)"
        print(
            f"{size:,} components: {services:,} services, cone of the top {len(cone):,} basic events; "
            f"MEF {path.stat().st_size / 1e6:.1f} MB exported in {fmt_time(export)}",
            flush=True,
        )

        analyzer, setup = timed(lambda tree=tree: Analyzer(tree))  # type: ignore[misc]
        started = time.perf_counter()
        cuts = analyzer.cut_sets(TOP, max_order=args.max_order)
        count, distribution = cuts.count, cuts.order_distribution
        cut_time = setup + time.perf_counter() - started
        vigil_sets = set(cuts)
        probability, p_time = timed(lambda analyzer=analyzer: analyzer.probability(TOP))  # type: ignore[misc]
        vigil_time = cut_time + p_time
        p_text = f"{probability.value:.6g}"
        if not probability.exact:
            p_text += f" ({probability.method}, in [{probability.lower:.6g}, {probability.upper:.6g}])"
        rows.append(
            [
                label,
                "Vigil",
                "ok",
                fmt_time(cut_time),
                fmt_time(vigil_time),
                f"{count:,} ({orders(distribution)})",
                "",
                p_text,
                "",
                "",
            ]
        )
        for algorithm in args.algorithms:
            if algorithm in stopped and not args.no_skip:
                rows.append([label, f"SCRAM {algorithm}", f"skipped (timed out at {stopped[algorithm]:,})"] + [""] * 7)
                continue
            result = _scram.run(
                path,
                algorithm=algorithm,
                limit_order=args.max_order,
                probability=True,
                timeout=args.bdd_timeout if algorithm == "bdd" and args.bdd_timeout else args.timeout,
                keep_sets=True,
                names=names,
            )
            if result.status == "timeout":
                stopped.setdefault(algorithm, size)
            same = "" if result.cut_sets is None else ("identical" if result.cut_sets == vigil_sets else "DIFFERENT")
            if result.cut_sets is not None and result.cut_sets != vigil_sets:
                same += f" (+{len(result.cut_sets - vigil_sets)} / -{len(vigil_sets - result.cut_sets)})"
            agreement = ""
            if result.probability is not None:
                relative = abs(probability.value - result.probability) / result.probability
                if algorithm == "bdd":
                    digits = _scram.same_to_printed_digits(probability.value, result.probability)
                    agreement = f"{relative:.1e} rel ({'same 6 digits' if digits else 'differs'})"
                    if not probability.exact:
                        inside = probability.lower <= result.probability <= probability.upper
                        agreement += f"; {'inside' if inside else 'OUTSIDE'} Vigil's bounds"
                else:
                    agreement = f"{relative:.1e} rel (SCRAM rare-event)"
            own = ", ".join(f"{k} {fmt_time(v)}" for k, v in result.own_times.items())
            rows.append(
                [
                    label,
                    f"SCRAM {algorithm} -l {args.max_order}",
                    result.status + (f" ({result.message})" if result.message and result.status != "ok" else ""),
                    own or "-",
                    fmt_time(result.seconds) + f", {result.peak_mb:,.0f} MB",
                    "-" if result.products is None else f"{result.products:,} ({orders(result.distribution)})",
                    same,
                    "-" if result.probability is None else f"{result.probability:.6g}",
                    agreement,
                    _ratio(result.seconds, vigil_time if algorithm == "bdd" else cut_time, result.status),
                ]
            )
            print(f"  {result.command}: {result.status} in {fmt_time(result.seconds)}", flush=True)
        del analyzer, cuts, vigil_sets, tree
    print()
    print(
        table(
            [
                "model (cone)",
                "tool",
                "status",
                "cut sets time",
                "total time",
                f"minimal cut sets, order <= {args.max_order} (1 / 2 / 3)",
                "same sets as Vigil",
                "P(top)",
                "P vs Vigil",
                "SCRAM time / Vigil time",
            ],
            rows,
        )
    )
    print(
        "\nVigil times: Analyzer set-up + cut sets; total adds the probability. SCRAM times: its own report of "
        "<calculation-time>, and the wall time of the whole run (parsing, analysis, report) with its peak memory.\n"
        "Time ratio: SCRAM's wall time over Vigil's cut-set time (MOCUS, ZBDD: cut sets + a rare-event sum) or over "
        "Vigil's total (BDD: cut sets + exact probability); above 1, Vigil is faster."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
