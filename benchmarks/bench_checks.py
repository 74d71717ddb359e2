"""The check engine's costs, in the units Uptime Kuma's figures use (issue 3).

Runs Vigil's real runtime (config loading, scheduler, HTTP checks, trackers, states, results written to a
SQLite WAL database) in this process against a local aiohttp target in another process (so that only Vigil's
CPU is counted), and reports:

- CPU-seconds per 1,000 HTTP checks with results stored: 1,000 monitors at 20 s and at 5 s;
- sustained checks per second on one core: monitors at 1 s until the process uses a whole core;
- scheduling lateness p50/p99 (actual minus planned start) and memory per monitor, with 10,000 monitors at 60 s;
- time from start until every monitor has been checked once (10,000 monitors at 60 s).

Each scenario runs in a fresh child process (for a clean memory baseline). Usage::

    .venv/bin/python benchmarks/bench_checks.py            # everything, about 6 minutes
    .venv/bin/python benchmarks/bench_checks.py --quick    # shorter runs, for a smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, target_server

TARGET = """
import sys
from aiohttp import web
async def ok(request):
    return web.Response(text="ok")
app = web.Application()
app.router.add_route("GET", "/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, backlog=4096)
"""


def sleeps() -> int:
    """Return how many times the threads of this process went to sleep (voluntary context switches), all threads."""
    total = 0
    for status in Path("/proc/self/task").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:  # a thread that ended meanwhile
            continue
        total += int(text.split("voluntary_ctxt_switches:")[1].split()[0])
    return total


def write_config(path: Path, monitors: int, interval: int, port: int) -> None:
    """One component per monitor, as each Kuma monitor stands alone; YAML written by hand to stay fast."""
    lines = ["version: 1", "components:"]
    timeout = "5s" if interval > 5 else f"{interval * 800}ms"  # a timeout must be shorter than the interval
    for i in range(monitors):
        lines.append(f"  - id: svc{i}")
        lines.append("    kind: service")
        lines.append("    monitors:")
        url = f"http://127.0.0.1:{port}/m{i}"
        lines.append(f"      - {{id: http, type: http, url: '{url}', interval: {interval}s, timeout: {timeout}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def child(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import func, select

    from vigil.config import Settings
    from vigil.db import session_scope
    from vigil.engine.runtime import Runtime
    from vigil.monitors.models import CheckResult

    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    workdir = Path(args.workdir)
    config = workdir / "bench.yaml"
    write_config(config, args.monitors, args.interval, args.port)
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{workdir / 'vigil.db'}",
        startup_spread=args.spread,
        pid_file=str(workdir / "vigil.pid"),
    )
    runtime = Runtime(settings=settings, paths=[config])
    started = time.perf_counter()
    await runtime.start()
    ready = time.perf_counter() - started
    # Time until every monitor has a result: the first round.
    first_round = None
    while time.perf_counter() - started < args.interval + args.spread + 60:
        if all(t.last_reason is not None for t in runtime._trackers.values()):
            first_round = time.perf_counter() - started
            break
        await asyncio.sleep(0.05)
    # The measured window starts after the first round and its writes (two state changes per monitor, from
    # unknown): steady state, at the monitors' own phases.
    while runtime.states.pending or runtime.results.pending > args.monitors:
        await asyncio.sleep(0.1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    times0, switches0, loop0 = process.cpu_times(), sleeps(), time.thread_time()
    checks0 = runtime.scheduler.stats.finished
    runtime.scheduler.stats.lateness.clear()
    await asyncio.sleep(args.duration)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    times1, switches1, loop1 = process.cpu_times(), sleeps(), time.thread_time()
    checks = runtime.scheduler.stats.finished - checks0
    lateness = sorted(runtime.scheduler.stats.lateness)
    gc.collect()
    rss_after = process.memory_info().rss
    failed = sum(n for (_, outcome), n in runtime._counts.counts.items() if outcome.value != "up")
    await runtime.stop()
    with session_scope(runtime.database) as session:
        stored = session.scalar(select(func.count()).select_from(CheckResult))

    def q(p: float) -> float | None:
        return lateness[min(len(lateness) - 1, int(p * len(lateness)))] if lateness else None

    return {
        "monitors": args.monitors,
        "interval": args.interval,
        "duration": wall1 - wall0,
        "checks": checks,
        "failed_checks": failed,
        "stored": stored,
        "cpu_seconds": cpu1 - cpu0,
        "cpu_per_1000": (cpu1 - cpu0) / checks * 1000 if checks else None,
        # Where it went: user and kernel time, and how often a thread of the process went to sleep (each sleep
        # is a later wake-up, the dear part of an idle process's work).
        "user_per_1000": (times1.user - times0.user) / checks * 1000 if checks else None,
        "system_per_1000": (times1.system - times0.system) / checks * 1000 if checks else None,
        "loop_thread_per_1000": (loop1 - loop0) / checks * 1000 if checks else None,  # the rest: writer threads
        "sleeps_per_check": (switches1 - switches0) / checks if checks else None,
        "checks_per_second": checks / (wall1 - wall0),
        "core_share": (cpu1 - cpu0) / (wall1 - wall0),
        "batch_window": runtime.scheduler.batch_window,
        "lateness_p50": q(0.50),
        "lateness_p99": q(0.99),
        "ready_seconds": ready,
        "first_round_seconds": first_round,
        "rss_before_mib": rss_before / 2**20,
        "rss_after_mib": rss_after / 2**20,
        "kib_per_monitor": (rss_after - rss_before) / 1024 / args.monitors,
    }


def run_child(monitors: int, interval: int, duration: float, spread: float, port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as workdir:
        command = [
            sys.executable,
            __file__,
            "--child",
            f"--monitors={monitors}",
            f"--interval={interval}",
            f"--duration={duration}",
            f"--spread={spread}",
            f"--port={port}",
            f"--workdir={workdir}",
        ]
        # The child on one core, the target on the other: "on one core" is then literally true.
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            command = ["taskset", "-c", "0", *command]
        output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=duration + 600)
        return dict(json.loads(output.stdout.strip().splitlines()[-1]))


def fmt(value: float | None, unit: str = "", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--monitors", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--spread", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", default="")
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test, not a measurement)")
    parser.add_argument("--only", type=int, action="append", help="run only scenario N (1-4); repeatable")
    args = parser.parse_args()
    if args.child:
        import uvloop

        print(json.dumps(uvloop.run(child(args))))
        return
    quick = args.quick
    scenarios = [
        ("1,000 monitors at 20 s", 1000, 20, 30 if quick else 120),
        ("1,000 monitors at 5 s", 1000, 5, 20 if quick else 60),
        ("3,000 monitors at 1 s (saturation)", 3000, 1, 10 if quick else 30),
        ("10,000 monitors at 60 s", 10_000, 60, 30 if quick else 120),
        # Only with --only 5: memory per additional monitor once the fixed costs (SQLite's page caches, pools)
        # have stopped growing, from the slope between the last two scenarios run (e.g. --only 4 --only 5).
        ("20,000 monitors at 60 s", 20_000, 60, 30 if quick else 60),
    ]
    scenarios = [scenarios[n - 1] for n in args.only] if args.only else scenarios[:4]
    print(f"Machine: {machine()}\n")
    rows = []
    with target_server(TARGET) as port:
        for name, monitors, interval, duration in scenarios:
            result = run_child(monitors, interval, duration, args.spread, port)
            rows.append((name, result))
            print(f"{name}: {json.dumps(result)}", file=sys.stderr)
    print(
        "| scenario | checks | failed | stored | CPU-s per 1,000 checks | checks/s | share of a core "
        "| lateness p50 / p99 | first round done | memory per monitor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['checks']} | {r['failed_checks']} | {r['stored']} | {fmt(r['cpu_per_1000'], '', 3)} "
            f"| {r['checks_per_second']:.0f} | {r['core_share']:.0%} "
            f"| {fmt(r['lateness_p50'] and r['lateness_p50'] * 1000, ' ms', 1)} / "
            f"{fmt(r['lateness_p99'] and r['lateness_p99'] * 1000, ' ms', 1)} "
            f"| {fmt(r['first_round_seconds'], ' s', 1)} | {r['kib_per_monitor']:.2f} KiB |"
        )
    # Per additional monitor: RSS slopes between runs of increasing size (the saturation run aside: its queues
    # and in-flight checks are not a monitor's cost).
    steady = sorted((r for _, r in rows if r["interval"] >= 5), key=lambda r: r["monitors"])
    for small, large in itertools.pairwise(steady):
        if large["monitors"] == small["monitors"]:
            continue
        slope = (large["rss_after_mib"] - small["rss_after_mib"]) * 1024 / (large["monitors"] - small["monitors"])
        print(
            f"\nMemory per additional monitor (RSS after the run, {small['monitors']:,} → {large['monitors']:,} "
            f"monitors): {slope:.2f} KiB; process RSS with {large['monitors']:,} monitors: "
            f"{large['rss_after_mib']:.0f} MiB."
        )


if __name__ == "__main__":
    main()
