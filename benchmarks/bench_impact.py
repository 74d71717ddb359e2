"""Benchmark: blast radius of one failure in a 100k-component model (target: under 100 ms each).

Fails, one at a time: the busiest hypervisor, a rack, a whole site, a provider maintenance group and the
popular services (DNS, authentication, the main database). The reverse-dependency index the propagation
walks (``Model.dependants``) is built once per model, on first use; that one-off cost is shown separately.

    python benchmarks/bench_impact.py [--components 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, fmt_time, header, model_file, table, timed, verdict

from vigil.analysis.impact import blast_radius
from vigil.model.loader import load_model
from vigil.model.types import DomainKind, Model

TARGET = 0.1  # seconds per blast radius


def scenarios(model: Model) -> list[tuple[str, str]]:
    """Return (label, id) of the failures to time."""
    hosts = Counter(c.runs_on for c in model.components.values() if c.runs_on is not None)
    hypervisor = max((c.id for c in model.components.values() if c.kind == "hypervisor"), key=lambda h: (hosts[h], h))
    by_kind: dict[DomainKind, list[str]] = {}
    for domain in model.domains.values():
        by_kind.setdefault(domain.kind, []).append(domain.id)
    picks = [
        ("hypervisor (busiest)", hypervisor),
        ("rack", by_kind[DomainKind.RACK][0]),
        ("site", by_kind[DomainKind.SITE][0]),
        ("maintenance group", by_kind[DomainKind.MAINTENANCE_GROUP][0]),
        ("popular service", "dns"),
        ("popular service", "auth"),
        ("popular database", "db-main"),
    ]
    return [(label, node) for label, node in picks if node in model.components or node in model.domains]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="runs per failure, the fastest counts")
    args = parser.parse_args(argv)

    header(f"Blast radius of one failure (vigil.analysis.impact.blast_radius), {args.components:,} components")
    model = load_model([model_file(args.components, args.seed)])
    _, index_time = timed(lambda: model.dependants)
    print(f"Reverse-dependency index (Model.dependants, built once per model): {fmt_time(index_time)}\n")
    rows = []
    for label, node in scenarios(model):
        impact, seconds = best_of(lambda node=node: blast_radius(model, failed=[node]), args.repeat)  # type: ignore[misc]
        rows.append(
            [
                label,
                node,
                f"{len(impact.down):,}",
                f"{len(impact.degraded):,}",
                f"{len(impact.exposed):,}",
                fmt_time(seconds),
                f"< {TARGET * 1000:.0f} ms",
                verdict(seconds, TARGET),
            ]
        )
    print(table(["failure", "id", "down", "degraded", "exposed", "time", "target", ""], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
