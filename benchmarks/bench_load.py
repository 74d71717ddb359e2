"""Benchmark: load and validate generated models of 1k, 10k and 100k components (target: 100k under 5 s).

``load_model`` parses the YAML (keeping line numbers), validates every entry against the schema, checks
references and cycles, and builds the Model. The YAML parse alone is timed too, to show where the time goes;
``--profile`` prints the functions that take the most time (cProfile) for the largest size.

    python benchmarks/bench_load.py [--components 100000] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, fmt_time, header, model_file, table, verdict

from vigil.model.loader import load_model
from vigil.model.yamlio import load_yaml

TARGETS = {100_000: 5.0}  # seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--components", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size, the fastest counts (1 for >= 100k)")
    parser.add_argument("--profile", action="store_true", help="profile the largest size with cProfile")
    args = parser.parse_args(argv)

    header("Load and validate a model (vigil.model.loader.load_model)")
    rows = []
    for size in args.components:
        path = model_file(size, args.seed)
        text = path.read_text(encoding="utf-8")
        repeat = 1 if size >= 100_000 else args.repeat
        _, parse = best_of(lambda text=text: load_yaml(text), repeat)  # type: ignore[misc]
        model, total = best_of(lambda path=path: load_model([path]), repeat)  # type: ignore[misc]
        target = TARGETS.get(size)
        rows.append(
            [
                f"{size:,}",
                f"{len(model.components):,} + {len(model.domains):,}",
                f"{path.stat().st_size / 1e6:.1f} MB",
                fmt_time(parse),
                fmt_time(total - parse),
                fmt_time(total),
                f"{total / len(model.components) * 1e6:.0f} µs",
                f"< {target:.0f} s" if target else "",
                verdict(total, target),
            ]
        )
        del model
    print(
        table(
            [
                "size",
                "components + domains",
                "YAML",
                "YAML parse",
                "validate + build",
                "load_model total",
                "per component",
                "target",
                "",
            ],
            rows,
        )
    )
    if args.profile:
        path = model_file(max(args.components), args.seed)
        profiler = cProfile.Profile()
        profiler.runcall(load_model, [path])
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(15)
        print(f"\nProfile of load_model on {path.name} (cProfile adds overhead):\n")
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
