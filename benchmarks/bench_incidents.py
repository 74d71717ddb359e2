"""Incidents under a hypervisor failure (issue 4's speed requirement).

"A failure of one hypervisor under 2,000 VMs with 10,000 monitors must produce one incident within one check
interval plus 1 s, and the notification fan-out to 10,000 subscribers must not delay checks."

The model (written by hand, as in bench_checks): one hypervisor ``hv``; 2,000 VMs ``vm0..vm1999`` with
``runs_on: hv``; four services per VM (``vmN-s0..s3``, ``runs_on: vmN``). Monitors, all HTTP checks of one
local aiohttp target at the same interval (30 s by default) with ``failures_before_down: 1``:

- ``hv``: GET /hv (1 monitor);
- each VM: GET /vm/N (2,000 monitors, its agent);
- each service: GET /svc/N/K (8,000, except the last service of the last VM, left unwatched: 7,999),

so 10,000 monitors and 10,001 components. The target answers 200 until the benchmark POSTs /control/hv/down;
from then on every path answers 503 (a dead hypervisor takes its VMs and their services with it).

Vigil's real Runtime (config, scheduler, aiohttp checks, states through the model, SQLite WAL, the state
writer, the incident worker, the notification dispatcher) runs under uvloop in a child process pinned to core 0;
the target and this parent share core 1. The child says when its first round and the writes that follow have
settled (the incident worker has consumed the outbox); the parent flips hv down and polls the incidents tables
(a separate SQLite reader, every 100 ms) until every component is attributed to an incident or a bound passes,
then lets at least one whole interval (plus a margin) go by so that every monitor has failed once. The child
records each check's lateness (actual minus planned start) with its time, the incident worker's rounds and the
state recomputations.

Part 2, the fan-out: ``--subscribers N`` inserts N confirmed webhook subscribers to all components (each at its
own URL of a counting receiver in the target process) before the flip; the parent then also follows the
``notification_deliveries`` rows and the webhooks received (distinct ``X-Vigil-Delivery`` ids, repeats, the
times of the first and the last), and reports the fan-out's duration (first to last delivery received), its
rate, the checks' lateness from the first delivery to the last, and the runtime's writer thread meanwhile (how
long the dispatcher's transactions ran on it, how long the engine's writes waited behind them). ``--hv-alone``
makes only hv's path fail (its VMs still answer): one small incident, so the fan-out is measured without the
storm; with ``--flip-at first`` the fan-out starts about a second after the flip (the short variant, ~3 min:
the last command below). Usage::

    .venv/bin/python benchmarks/bench_incidents.py                        # part 1, flip as it comes, ~3 min
    .venv/bin/python benchmarks/bench_incidents.py --flip-at first --profile --watch 100
    .venv/bin/python benchmarks/bench_incidents.py --flip-at first --subscribers 10000 --watch 70
    .venv/bin/python benchmarks/bench_incidents.py --hv-alone --subscribers 10000 --watch 60
    .venv/bin/python benchmarks/bench_incidents.py --hv-alone --flip-at first --subscribers 10000 --watch 75
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.util
import io
import json
import os
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, target_server

VMS = 2000
SERVICES_PER_VM = 4

TARGET = """
import sys, time
from aiohttp import web
state = {"down": "up", "hooks": 0, "first": None, "last": None}
seen = set()
async def hook(request):
    await request.read()
    now = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process of the machine
    state["hooks"] += 1
    state["first"] = state["first"] or now
    state["last"] = now
    seen.add(request.headers.get("X-Vigil-Delivery"))
    return web.Response(text="ok")
async def count(request):
    return web.json_response({**state, "unique": len(seen)})
async def check(request):
    down = state["down"] == "down" or (state["down"] == "alone" and request.path == "/hv")
    return web.Response(status=503 if down else 200, text="down" if down else "ok")
async def control(request):
    state["down"] = request.match_info["what"]
    return web.Response(text="ok")
app = web.Application()
app.router.add_route("POST", "/control/hv/{what}", control)
app.router.add_route("POST", "/hook/{n}", hook)
app.router.add_route("GET", "/control/hooks", count)
app.router.add_route("GET", "/{tail:.*}", check)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, backlog=4096)
"""


def flip(port: int, what: str) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/control/hv/{what}", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def hooks_received(port: int) -> dict[str, Any]:
    """The receiver's count: ``hooks`` (requests), ``unique`` (distinct delivery ids), ``first`` and ``last``
    (monotonic times of the first and the last request)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/control/hooks", timeout=5) as response:
        return dict(json.loads(response.read()))


def writer_probe(executor: Any) -> list[tuple[float, float, float, bool, str]]:
    """Time every job of the runtime's writer thread: (submitted, started, ended, the dispatcher's job), in
    monotonic seconds. How long the engine's writes wait behind the dispatcher's transactions is the point."""
    jobs: list[tuple[float, float, float, bool, str]] = []
    if executor is None:
        return jobs
    submit = executor.submit

    def timed_submit(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        submitted = time.monotonic()
        notify = str(getattr(fn, "__module__", "")).startswith("vigil.notify")

        def job() -> Any:
            started = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                jobs.append((submitted, started, time.monotonic(), notify, getattr(fn, "__qualname__", "?")))

        return submit(job)

    executor.submit = timed_submit
    return jobs


def add_subscribers(database: Any, count: int, port: int) -> None:
    """``count`` confirmed webhook subscribers to all components, each at its own URL of the counting receiver
    (inserted in bulk: subscribing them one by one through the API is not what is measured)."""
    import secrets

    from sqlalchemy import insert

    from vigil.db import session_scope
    from vigil.notify.models import Subscriber, SubscriberKind, SubscriberStatus

    now = datetime.now(UTC)
    rows = [
        {
            "kind": SubscriberKind.WEBHOOK,
            "address": f"http://127.0.0.1:{port}/hook/{n}",
            "secret": secrets.token_urlsafe(24),
            "status": SubscriberStatus.CONFIRMED,
            "all_components": True,
            "confirm_token": f"bench-confirm-{n}-{secrets.token_urlsafe(8)}",
            "unsubscribe_token": f"bench-unsubscribe-{n}-{secrets.token_urlsafe(8)}",
            "created_at": now,
            "confirmed_at": now,
        }
        for n in range(count)
    ]
    with session_scope(database) as session:
        for start in range(0, len(rows), 1000):
            session.execute(insert(Subscriber), rows[start : start + 1000])


def write_config(path: Path, interval: int, port: int) -> int:
    """Write the model; return the number of monitors."""
    base = f"http://127.0.0.1:{port}"
    opts = f"interval: {interval}s, timeout: 5s, failures_before_down: 1"
    lines = ["version: 1", "components:", "  - id: hv", "    kind: hypervisor", "    monitors:"]
    lines.append(f"      - {{id: http, type: http, url: '{base}/hv', {opts}}}")
    monitors = 1
    for v in range(VMS):
        lines += [f"  - id: vm{v}", "    kind: vm", "    runs_on: hv", "    monitors:"]
        lines.append(f"      - {{id: agent, type: http, url: '{base}/vm/{v}', {opts}}}")
        monitors += 1
        for s in range(SERVICES_PER_VM):
            lines += [f"  - id: vm{v}-s{s}", "    kind: service", f"    runs_on: vm{v}"]
            if v == VMS - 1 and s == SERVICES_PER_VM - 1:
                continue  # unwatched: 10,000 monitors in all, and one service whose state is the model's
            lines += ["    monitors:", f"      - {{id: http, type: http, url: '{base}/svc/{v}/{s}', {opts}}}"]
            monitors += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return monitors


# -- the child: Vigil's runtime -------------------------------------------------------------------------------
async def child(args: argparse.Namespace) -> None:
    from sqlalchemy import func, select

    from vigil.config import Settings
    from vigil.db import session_scope
    from vigil.engine.runtime import Runtime
    from vigil.incidents.models import OutboxCursor
    from vigil.incidents.worker import CONSUMER
    from vigil.monitors.models import StateChange

    workdir = Path(args.workdir)
    config = workdir / "bench.yaml"
    monitors = write_config(config, args.interval, args.port)
    settings = Settings(
        environment="development",
        database_url=f"sqlite:///{workdir / 'vigil.db'}",
        startup_spread=args.spread,
        pid_file=str(workdir / "vigil.pid"),
    )
    runtime = Runtime(settings=settings, paths=[config])

    # Instrumentation: every check's lateness with its time; the worker's rounds; the recomputations.
    checks: list[tuple[float, float, bool]] = []  # (monotonic finish, lateness, failed)
    hv_checks: list[tuple[float, bool]] = []
    on_result = runtime.scheduler._on_result

    def record(job: Any, result: Any, lateness: float) -> None:
        failed = result.outcome.value != "up"
        checks.append((time.monotonic(), lateness, failed))
        if job.spec.component_id == "hv":
            hv_checks.append((time.monotonic(), failed))
        on_result(job, result, lateness)

    runtime.scheduler._on_result = record
    writer_jobs = writer_probe(runtime._writer)
    rounds: list[tuple[float, float, int]] = []  # (monotonic start, seconds, rows): one per outbox batch
    step = runtime.incidents.step  # the worker runs one batch per job on the writer thread

    profile = cProfile.Profile() if args.profile else None
    profile_from = float("inf")  # the worker's rounds are profiled from the flip on

    def timed_round() -> int:
        started = time.monotonic()
        if profile is not None and started > profile_from:
            profile.enable()
            try:
                count = step()
            finally:
                profile.disable()
        else:
            count = step()
        rounds.append((started, time.monotonic() - started, count))
        return count

    runtime.incidents.step = timed_round  # type: ignore[method-assign]
    recomputes: list[tuple[float, float]] = []
    recompute = runtime._recompute

    def timed_recompute() -> None:
        started = time.monotonic()
        recompute()
        recomputes.append((started, time.monotonic() - started))

    runtime._recompute = timed_recompute  # type: ignore[method-assign]

    def caught_up() -> bool:
        with session_scope(runtime.database) as session:
            last = session.scalar(select(func.max(StateChange.id))) or 0
            cursor = session.get(OutboxCursor, CONSUMER)
            return cursor is not None and cursor.last_id >= last

    started = time.monotonic()
    await runtime.start()
    limit = started + args.interval + args.spread + 120
    while time.monotonic() < limit and not all(t.last_reason is not None for t in runtime._trackers.values()):
        await asyncio.sleep(0.1)
    first_round = time.monotonic() - started
    while time.monotonic() < limit and (
        runtime.states.pending or runtime._recompute_handle is not None or not await asyncio.to_thread(caught_up)
    ):
        await asyncio.sleep(0.2)
    if args.subscribers:
        await asyncio.get_running_loop().run_in_executor(
            runtime._writer, add_subscribers, runtime.database, args.subscribers, args.port
        )
    settled = time.monotonic() - started
    # Where hv's check falls after the flip: "any" (as it comes), "first" (0.5 s before hv's next check: the
    # best case, hv fails before its VMs), "last" (just after hv's check: its VMs and services fail for a whole
    # interval before hv does).
    hv_key = next(key for key, config in runtime.monitors.items() if config.component_id == "hv")
    due = runtime.scheduler.next_due(hv_key)
    if args.flip_at != "any" and due is not None:
        wait = due - time.monotonic() + (-0.5 if args.flip_at == "first" else 0.5)
        await asyncio.sleep(wait if wait > 0 else wait + args.interval)
    profile_from = time.monotonic()
    print(json.dumps({"ready": True, "first_round": first_round, "settled": settled}), flush=True)
    # The parent flips hv down now and writes "stop" when it has seen enough.
    loop = asyncio.get_running_loop()
    flip_line = await loop.run_in_executor(None, sys.stdin.readline)
    flipped = time.monotonic() - float(json.loads(flip_line)["ago"])
    stop_line = await loop.run_in_executor(None, sys.stdin.readline)
    ended = time.monotonic()
    window = json.loads(stop_line).get("fan_out") if stop_line.startswith("{") else None

    def quantiles(values: list[float]) -> dict[str, float | None]:
        ordered = sorted(values)

        def q(p: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else None

        return {"n": len(ordered), "p50": q(0.5), "p99": q(0.99), "max": ordered[-1] if ordered else None}

    event = [(t - flipped, late, failed) for t, late, failed in checks if flipped <= t <= ended]
    # The steady state before the flip: at most 30 s, and never the start-up (first round, settling), which a
    # "--flip-at any" run would otherwise count here.
    before = [late for t, late, _ in checks if max(flipped - 30, started + settled) <= t < flipped]
    worker = [(s - flipped, d, n) for s, d, n in rounds if s >= flipped - 1.0]
    busy = [(s, s + d) for s, d, n in worker if n]
    during_work = [late for t, late, _ in event if any(a <= t <= b for a, b in busy)]
    result = {
        "monitors": monitors,
        "components": len(runtime.model.components) if runtime.model else 0,
        "first_round_seconds": first_round,
        "hv_first_failed": next((t - flipped for t, failed in hv_checks if failed and t >= flipped), None),
        "settled_seconds": settled,
        "event_seconds": ended - flipped,
        "checks_in_event": len(event),
        "failed_in_event": sum(1 for _, _, failed in event if failed),
        "lateness_before": quantiles(before),
        "lateness_event": quantiles([late for _, late, _ in event]),
        "lateness_during_worker_rounds": quantiles(during_work),
        "worker_rounds": [(round(s, 2), round(d, 3), n) for s, d, n in worker if n],
        "recomputes": [(round(s - flipped, 2), round(d, 3)) for s, d in recomputes if s >= flipped],
        "lateness_by_second": _by_second(event),
        "writes_pending_at_end": {"results": runtime.results.pending, "state_changes": runtime.states.pending},
    }
    stats = getattr(runtime.notify, "stats", None)  # the batching dispatcher's own account (absent before it)
    if stats is not None:
        result["dispatcher"] = {
            "transactions": stats.transactions,
            "claimed": stats.claimed,
            "recorded": stats.recorded,
            "db_seconds": stats.db_seconds,
            "transaction_seconds": quantiles(stats.durations),
        }
    if window:  # from the first webhook received to the last (monotonic, the receiver's clock is the same)
        a, b = window
        result["lateness_fan_out"] = quantiles([late for t, late, _ in checks if a <= t <= b])
        ours = [(s, e, name) for _, s, e, notify, name in writer_jobs if notify and a <= s <= b]
        result["writer_dispatcher_jobs"] = {
            **quantiles([e - s for s, e, _ in ours]),
            "busy_seconds": sum(e - s for s, e, _ in ours),
            "by_job": {
                name: quantiles([e - s for s, e, n in ours if n == name]) for name in sorted({n for *_, n in ours})
            },
        }
        result["writer_engine_wait_fan_out"] = quantiles(
            [s - q for q, s, _, notify, _ in writer_jobs if not notify and a <= q <= b]
        )
        result["writer_engine_wait_before"] = quantiles(
            [s - q for q, s, _, notify, _ in writer_jobs if not notify and flipped - 30 <= q < flipped]
        )
    print(json.dumps(result), flush=True)
    if profile is not None:
        stream = io.StringIO()
        pstats.Stats(profile, stream=stream).sort_stats("cumulative").print_stats(40)
        print(stream.getvalue(), file=sys.stderr, flush=True)
    # The measurement is over: stop without the worker's last catch-up, and give up on the writers' backlog
    # after a while (behind after a storm, they can take minutes; the database is thrown away).
    runtime.incidents.run_once = lambda: 0  # type: ignore[method-assign]
    runtime.incidents.step = lambda: 0  # type: ignore[method-assign]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runtime.stop(), timeout=30)


def _by_second(event: list[tuple[float, float, bool]]) -> list[tuple[int, int, float]]:
    """(second after the flip, checks, worst lateness) for each second with a check."""
    buckets: dict[int, list[float]] = {}
    for t, late, _ in event:
        buckets.setdefault(int(t), []).append(late)
    return [(s, len(v), round(max(v), 3)) for s, v in sorted(buckets.items())]


# -- the parent: the failure and the stopwatch ----------------------------------------------------------------
def snapshot(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        incidents = conn.execute(
            "SELECT id, probable_cause, detected_at, title, merged_into FROM incidents ORDER BY id"
        ).fetchall()
        counts = dict(conn.execute("SELECT incident_id, count(*) FROM incident_components GROUP BY incident_id"))
        attributed = conn.execute("SELECT count(DISTINCT component_id) FROM incident_components").fetchone()[0]
        try:
            deliveries = dict(conn.execute("SELECT status, count(*) FROM notification_deliveries GROUP BY status"))
        except sqlite3.OperationalError:
            deliveries = {}
    return {
        "incidents": [
            {"id": i, "cause": cause, "detected_at": at, "title": title, "components": counts.get(i, 0), "merged": m}
            for i, cause, at, title, m in incidents
        ],
        "attributed": attributed,
        "deliveries": deliveries,
    }


def wall(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        at = datetime.fromisoformat(value)
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    return None


def run(args: argparse.Namespace, port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-incidents-") as workdir:
        db = Path(workdir) / "vigil.db"
        command = [
            sys.executable,
            __file__,
            "--child",
            f"--interval={args.interval}",
            f"--spread={args.spread}",
            f"--port={port}",
            f"--workdir={workdir}",
            f"--flip-at={args.flip_at}",
            f"--subscribers={args.subscribers}",
            *(["--profile"] if args.profile else []),
        ]
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            command = ["taskset", "-c", "0", *command]
        child_process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert child_process.stdin is not None and child_process.stdout is not None
        try:
            ready = json.loads(child_process.stdout.readline())
            components = 1 + VMS * (1 + SERVICES_PER_VM)
            load = os.getloadavg()
            flip(port, "alone" if args.hv_alone else "down")
            t0, w0 = time.monotonic(), time.time()
            child_process.stdin.write(json.dumps({"ago": time.monotonic() - t0}) + "\n")
            child_process.stdin.flush()
            first: dict[str, Any] | None = None
            all_attributed = hv_complete = None
            timeline = []
            fan_out: list[tuple[float, int, dict[str, int]]] = []  # (seconds, webhooks received, deliveries)
            hooks: dict[str, Any] = {"hooks": 0, "unique": 0}
            # Bounded: two intervals and a margin; and at least one interval plus 5 s, so every monitor has
            # failed once and any extra incident the storm opens is counted.
            deadline = t0 + (args.watch or 2 * args.interval + 30)
            while time.monotonic() < deadline:
                time.sleep(0.1)
                try:
                    snap = snapshot(db)
                except sqlite3.OperationalError:
                    continue
                now = time.monotonic() - t0
                if snap["incidents"] and first is None:
                    first = {"seconds": now, **snap}
                if snap["attributed"] >= components and all_attributed is None:
                    all_attributed = now
                hv = [i for i in snap["incidents"] if i["cause"] == "hv"]
                if hv and (args.hv_alone or hv[0]["components"] >= components) and hv_complete is None:
                    hv_complete = now
                if not timeline or (len(snap["incidents"]), snap["attributed"]) != timeline[-1][1:3]:
                    timeline.append((round(now, 2), len(snap["incidents"]), snap["attributed"]))
                if args.subscribers and (not fan_out or now - fan_out[-1][0] >= 1):
                    hooks = hooks_received(port)
                    fan_out.append((round(now, 2), hooks["unique"], snap["deliveries"]))
                if hv_complete is not None and now > args.interval + 5 and hooks["unique"] >= args.subscribers:
                    break
            final = snapshot(db)
            load_end = os.getloadavg()
            if args.subscribers:
                hooks = hooks_received(port)
            window = [hooks["first"], hooks["last"]] if hooks.get("first") else None
            child_process.stdin.write(json.dumps({"fan_out": window}) + "\n")
            child_process.stdin.flush()
            result = json.loads(child_process.stdout.readline())
            with contextlib.suppress(subprocess.TimeoutExpired):
                child_process.wait(timeout=60)
        finally:
            if child_process.poll() is None:
                child_process.kill()
                child_process.wait(timeout=10)
        flip(port, "up")
        detected = None
        if first is not None:
            at = wall(first["incidents"][0]["detected_at"])
            detected = None if at is None else at - w0
        return {
            "ready": ready,
            "load_at_flip": load,
            "load_at_end": load_end,
            "hooks": hooks,
            "first_incident_seen": first and first["seconds"],
            "first_incident_detected_at": detected,
            "first_incident": first and first["incidents"][0],
            "incidents_when_first_seen": first and len(first["incidents"]),
            "all_attributed_seconds": all_attributed,
            "hv_incident_complete_seconds": hv_complete,
            "final": final,
            "timeline": timeline,
            "fan_out": fan_out,
            "child": result,
        }


def fmt(value: float | None, unit: str = " s", digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=int, default=30)
    parser.add_argument("--spread", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", default="")
    parser.add_argument("--flip-at", choices=["any", "first", "last"], default="any", help="hv's check after the flip")
    parser.add_argument("--watch", type=float, default=0, help="seconds to watch at most (default 2 intervals + 30)")
    parser.add_argument("--subscribers", type=int, default=0, help="confirmed webhook subscribers (part 2)")
    parser.add_argument(
        "--hv-alone", action="store_true", help="only hv's path fails (one small incident: the fan-out on its own)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the incident worker's rounds (stderr)")
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(child(args))
        return
    fan_out = importlib.util.find_spec("vigil.notify.subscribers") is not None
    print(f"Machine: {machine()}\n")
    with target_server(TARGET, core=1) as port:
        r = run(args, port)
    print(json.dumps(r, indent=1), file=sys.stderr)
    c = r["child"]
    final = r["final"]
    hv = [i for i in final["incidents"] if i["cause"] == "hv"]
    target = args.interval + 1
    seen = r["first_incident_seen"]
    print(f"hv's check after the flip: {args.flip_at}; hv's first failed check {fmt(c['hv_first_failed'])}")
    print(f"{c['monitors']:,} monitors, {c['components']:,} components, all at {args.interval} s")
    print(f"first round {c['first_round_seconds']:.1f} s, settled {c['settled_seconds']:.1f} s after start")
    print(
        f"load average at the flip: {' '.join(f'{x:.2f}' for x in r['load_at_flip'])}; "
        f"at the end: {' '.join(f'{x:.2f}' for x in r['load_at_end'])}"
    )
    met = "met" if seen is not None and seen <= target else "missed"
    print(
        f"first incident row seen {fmt(seen)} after the flip (detected_at {fmt(r['first_incident_detected_at'])}), "
        f"probable cause {r['first_incident'] and r['first_incident']['cause']}, "
        f"{r['first_incident'] and r['first_incident']['components']} components; target ≤ {target} s: {met}"
    )
    print(f"incidents when the first was seen: {r['incidents_when_first_seen']}; at the end: {len(final['incidents'])}")
    # Incidents merged into another (automatically, when a deeper cause explains them) are no longer open.
    standing = [i for i in final["incidents"] if i["merged"] is None]
    causes = ", ".join(str(i["cause"]) for i in standing[:5])
    print(f"incidents not merged into another at the end: {len(standing)} ({causes})")
    print(f"incidents with probable cause hv: {len(hv)}, components listed: {hv[0]['components'] if hv else 0}")
    print(
        f"every component attributed to some incident: {fmt(r['all_attributed_seconds'])}; "
        f"all in hv's incident: {fmt(r['hv_incident_complete_seconds'])}"
    )
    for name in ("lateness_before", "lateness_event", "lateness_during_worker_rounds"):
        q = c[name]
        print(
            f"{name}: n={q['n']} p50 {fmt(q['p50'] and q['p50'] * 1000, ' ms', 1)} "
            f"p99 {fmt(q['p99'] and q['p99'] * 1000, ' ms', 1)} max {fmt(q['max'] and q['max'] * 1000, ' ms', 1)}"
        )
    print(f"worker rounds with rows (s after flip, seconds, rows): {c['worker_rounds']}")
    busy = [(s, d, n) for s, d, n in c["worker_rounds"] if s >= 0]
    if busy:
        rows, seconds = sum(n for _, _, n in busy), sum(d for _, d, _ in busy)
        span = busy[-1][0] + busy[-1][1] - busy[0][0]
        print(
            f"worker after the flip: {rows:,} outbox rows in {len(busy)} batches, {seconds:.2f} s of work "
            f"({rows / seconds if seconds else 0:,.0f} rows/s working; {rows / span if span else 0:,.0f} rows/s "
            f"over {span:.1f} s); slowest batch {max(d for _, d, _ in busy):.3f} s"
        )
    if args.subscribers and r["fan_out"]:
        start = next(((t, n) for t, n, d in r["fan_out"] if sum(d.values())), None)
        end_t, _, end_d = r["fan_out"][-1]
        h = r["hooks"]
        print(f"fan-out: {args.subscribers:,} subscribers; deliveries queued first seen at {start and start[0]} s")
        print(
            f"webhooks received by {end_t:.0f} s after the flip: {h['unique']:,} deliveries "
            f"({h['hooks'] - h['unique']} repeated); deliveries by status: {end_d}"
        )
        if h.get("first") and h["last"] > h["first"]:
            span = h["last"] - h["first"]
            done = "all" if h["unique"] >= args.subscribers else "NOT all"
            print(
                f"fan-out duration (first to last delivery received): {span:.1f} s ({done} delivered), "
                f"{h['unique'] / span:.1f} deliveries/s"
            )
        if "dispatcher" in c:
            d, q = c["dispatcher"], c["dispatcher"]["transaction_seconds"]
            print(
                f"dispatcher: {d['transactions']} claim/record transactions ({d['claimed']} claimed, "
                f"{d['recorded']} recorded), each p50 {fmt(q['p50'] and q['p50'] * 1000, ' ms', 1)} "
                f"p99 {fmt(q['p99'] and q['p99'] * 1000, ' ms', 1)} max {fmt(q['max'] and q['max'] * 1000, ' ms', 1)}"
            )
        for name in (
            "lateness_fan_out",
            "writer_dispatcher_jobs",
            "writer_engine_wait_fan_out",
            "writer_engine_wait_before",
        ):
            q = c.get(name)
            if q:
                extra = f", busy {q['busy_seconds']:.2f} s" if "busy_seconds" in q else ""
                for job, jq in q.get("by_job", {}).items():
                    extra += f"; {job.split('.')[-1] if '<' not in job else 'claim/record'}: n={jq['n']} "
                    extra += f"p50 {fmt(jq['p50'] and jq['p50'] * 1000, ' ms', 1)} "
                    extra += f"max {fmt(jq['max'] and jq['max'] * 1000, ' ms', 1)}"
                print(
                    f"{name}: n={q['n']} p50 {fmt(q['p50'] and q['p50'] * 1000, ' ms', 1)} "
                    f"p99 {fmt(q['p99'] and q['p99'] * 1000, ' ms', 1)} "
                    f"max {fmt(q['max'] and q['max'] * 1000, ' ms', 1)}{extra}"
                )
    elif not fan_out:
        print("Part 2 (fan-out to subscribers): pending (no subscribers in vigil.notify)")


if __name__ == "__main__":
    main()
