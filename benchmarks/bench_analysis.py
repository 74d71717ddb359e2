"""Benchmark: resilience analysis of every service of generated models.

(a) single points of failure and order-2 cut sets of every critical component of a 10k model (target < 1 s);
(b) minimal cut sets (order <= 3) and exact availability of every service (``vigil.analysis.report
    .select_services``: services, critical components and components with an SLO) of a 10k model (target < 2 s)
    and of a 100k model (target < 60 s).

The model -> fault tree build and the Analyzer set-up are timed apart from the analysis; targets are judged on the
whole (build + analysis). (b) runs twice: as a plain loop over the Analyzer, and inside ``vigil.gcpause.gc_paused``
as ``analyze_model`` runs it (the cyclic garbage collector otherwise walks the growing ZBDD/BDD tables over and
over). Each part stops after ``--time-limit`` seconds and reports how far it got. ``--report`` also times
``analyze_model`` end to end (cut sets, probability, SPOF explanations; no importance), twice: as it runs by
default (probabilities and SPOF explanations in a forked second process when the model is large enough, see
``vigil.analysis.parallel``) and in one process (``VIGIL_ANALYSIS_PROCESSES=off``), with the CPU time of this
process and of its children.

    python benchmarks/bench_analysis.py [--components 10000 100000] [--time-limit 600] [--report]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt_time, header, model_file, table, timed, verdict

from vigil.analysis import parallel
from vigil.analysis.build import ModelTree, build_fault_tree
from vigil.analysis.engine import Analyzer
from vigil.analysis.report import analyze_model, select_services
from vigil.gcpause import gc_paused
from vigil.model.loader import load_model
from vigil.model.types import Model, Tier

TARGET_SPOF = {10_000: 1.0}
TARGET_ALL = {10_000: 2.0, 100_000: 60.0}


@dataclass(slots=True)
class Run:
    """One analysis pass over a list of tops, stopped at the time limit."""

    tops: int
    done: int = 0
    cut_sets: int = 0
    orders: Counter[int] = field(default_factory=Counter)
    spofs: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    cut_time: float = 0.0
    probability_time: float = 0.0
    slowest: tuple[float, str] = (0.0, "")

    @property
    def seconds(self) -> float:
        return self.cut_time + self.probability_time

    @property
    def finished(self) -> bool:
        return self.done == self.tops


def analyse(
    mtree: ModelTree, analyzer: Analyzer, ids: list[str], *, order: int, probability: bool, limit: float
) -> Run:
    run = Run(len(ids))
    for node_id in ids:
        top = mtree.gate(node_id)
        started = time.perf_counter()
        cuts = analyzer.cut_sets(top, max_order=order)
        count, distribution = cuts.count, cuts.order_distribution
        spent = time.perf_counter() - started
        run.cut_time += spent
        run.cut_sets += count
        run.orders.update(distribution)
        run.spofs += distribution.get(1, 0) - 1  # the service's own failure is an order-1 cut set, not a SPOF
        if probability:
            started = time.perf_counter()
            result = analyzer.probability(top)
            took = time.perf_counter() - started
            run.probability_time += took
            spent += took
            run.methods[result.method if not result.exact else "exact"] += 1
        run.slowest = max(run.slowest, (spent, node_id))
        run.done += 1
        if run.seconds > limit:
            break
    return run


def prepare(model: Model) -> tuple[ModelTree, Analyzer, float, float]:
    mtree, build = timed(lambda: build_fault_tree(model))
    analyzer, setup = timed(lambda: Analyzer(mtree.tree))
    return mtree, analyzer, build, setup


def describe(run: Run) -> str:
    orders = " / ".join(f"{run.orders.get(o, 0):,}" for o in range(1, max(run.orders, default=1) + 1))
    return f"{run.cut_sets:,} ({orders})"


def report_row(model: Model, size_note: str, tops: int, args: argparse.Namespace, setting: str) -> list[str]:
    """Time ``analyze_model`` with ``VIGIL_ANALYSIS_PROCESSES=setting``; a row of the table."""
    saved = os.environ.get(parallel.ENV)
    os.environ[parallel.ENV] = setting
    gc.collect()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()

    def stop(done: int, total: int) -> None:
        if time.perf_counter() - started > args.time_limit:
            raise TimeoutError(done)

    try:
        report = analyze_model(model, max_order=args.max_order, importance=False, progress=stop)
        seconds: float | None = time.perf_counter() - started
        done = len(report.services)
    except TimeoutError as exc:
        seconds, done = None, int(exc.args[0])
    finally:
        if saved is None:
            os.environ.pop(parallel.ENV, None)
        else:
            os.environ[parallel.ENV] = saved
    own_after, children_after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own_after.ru_utime + own_after.ru_stime - own.ru_utime - own.ru_stime
    child_cpu = children_after.ru_utime + children_after.ru_stime - children.ru_utime - children.ru_stime
    target = TARGET_ALL.get(size_of(size_note))
    how = "one process" if setting == "off" else "default"
    return [
        size_note,
        f"analyze_model(max_order={args.max_order}, importance=False), {how}",
        f"{done:,}/{tops:,}",
        "(included)",
        "-",
        "-",
        fmt_time(seconds) if seconds is not None else f"> {args.time_limit:.0f} s",
        f"CPU: this process {fmt_time(cpu)}, second process {fmt_time(child_cpu) if child_cpu > 1e-3 else 'none'}",
        f"< {target:.0f} s" if target else "",
        verdict(seconds, target),
    ]


def size_of(size_note: str) -> int:
    return int(size_note.split(" ")[0].replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-order", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per part before it is stopped")
    parser.add_argument("--report", action="store_true", help="also time analyze_model end to end")
    args = parser.parse_args(argv)

    header("Resilience analysis of every service (vigil.analysis.engine.Analyzer)")
    rows = []
    notes = []
    for size in args.components:
        model = load_model([model_file(size, args.seed)])
        critical = [c.id for c in model.components.values() if c.tier is Tier.CRITICAL]
        services = select_services(model)

        # (a) SPOFs and order-2 cut sets of the critical components, on a fresh Analyzer (nothing memoised).
        mtree, analyzer, build, setup = prepare(model)
        tree = mtree.tree
        size_note = f"{size:,} ({len(tree.events):,} events, {len(tree.gates):,} gates)"
        run = analyse(mtree, analyzer, critical, order=2, probability=False, limit=args.time_limit)
        total = build + setup + run.seconds
        target = TARGET_SPOF.get(size)
        rows.append(
            [
                size_note,
                "(a) SPOFs + order <= 2, critical",
                f"{run.done:,}/{run.tops:,}",
                fmt_time(build + setup),
                fmt_time(run.cut_time),
                "-",
                fmt_time(total),
                f"{describe(run)}; {run.spofs:,} SPOFs",
                f"< {target:.0f} s" if target else "",
                verdict(total if run.finished else None, target),
            ]
        )
        del analyzer, mtree

        # (b) cut sets (order <= 3) and availability of every service, on a fresh Analyzer each time.
        for paused in (False, True):
            gc.collect()
            with gc_paused() if paused else contextlib.nullcontext():
                mtree, analyzer, build, setup = prepare(model)
                run = analyse(mtree, analyzer, services, order=args.max_order, probability=True, limit=args.time_limit)
            total = build + setup + run.seconds
            target = TARGET_ALL.get(size)
            methods = ", ".join(f"{n:,} {m}" for m, n in run.methods.most_common())
            rows.append(
                [
                    size_note,
                    f"(b) cut sets (order <= {args.max_order}) + availability, every service"
                    + (", GC paused" if paused else ""),
                    f"{run.done:,}/{run.tops:,}",
                    fmt_time(build + setup),
                    fmt_time(run.cut_time),
                    fmt_time(run.probability_time),
                    fmt_time(total),
                    f"{describe(run)}; P: {methods}",
                    f"< {target:.0f} s" if target else "",
                    verdict(total if run.finished else None, target),
                ]
            )
            what = "(b, GC paused)" if paused else "(b)"
            notes.append(f"{size:,}: slowest service in {what}: {run.slowest[1]} ({fmt_time(run.slowest[0])})")
            if not run.finished:
                limit = f"{args.time_limit:.0f} s"
                notes.append(f"{size:,}: {what} stopped at the time limit ({limit}) after {run.done:,} services")
            del analyzer, mtree

        if args.report:
            for setting in ("auto", "off"):
                rows.append(report_row(model, size_note, len(services), args, setting))
        del model
    print(
        table(
            [
                "model (components)",
                "analysis",
                "tops",
                "build + setup",
                "cut sets",
                "probability",
                "total",
                "cut sets found (order 1 / 2 / 3)",
                "target",
                "",
            ],
            rows,
        )
    )
    print()
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
