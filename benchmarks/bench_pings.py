"""Benchmark: durable heartbeat pings per second through the real HTTP server (target: 2,000/s).

Starts uvicorn (one worker; uvloop and httptools when installed) serving Vigil's web app in a subprocess, on
127.0.0.1, with a minimal real backend: the database (a SQLite WAL file in a temporary directory, and/or a fresh
PostgreSQL schema) holding ``--monitors`` heartbeat monitors, and the real PingCommitter, so each 200 is a ping
committed before its response. Then drives ``GET /ping/<token>`` (random tokens) for ``--seconds`` with
``--connections`` concurrent clients: ``wrk`` when installed (``apt-get install wrk``), aiohttp otherwise.
Prints pings acknowledged per second, p50/p99 latency, the transactions the server committed (read from its
/metrics), and the machine.

    python benchmarks/bench_pings.py [--db sqlite|postgresql|both] [--postgres-url URL] [--monitors 1000]
                                     [--seconds 10] [--connections 64] [--client auto|wrk|aiohttp]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine, table

TARGET = 2000.0  # durable pings per second
STARTUP_TIMEOUT = 30.0
DEFAULT_POSTGRES = os.environ.get("VIGIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Run:
    database: str
    client: str
    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    transactions: int
    committed: int

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


# -- the server (a subprocess: `bench_pings.py --serve URL PORT`) ----------------------------------------------


class _BenchBackend:
    """The web app's Backend with nothing but the database and the ping committer (no checks running)."""

    def __init__(self, url: str) -> None:
        from prometheus_client import CollectorRegistry, Gauge

        from vigil.db import make_engine
        from vigil.monitors.pings import PingCommitter

        self.database = make_engine(url, pool_size=4)
        self.registry = CollectorRegistry()
        self.pings = PingCommitter(self.database)
        committer = self.pings
        Gauge("bench_pings_committed", "Pings committed.", registry=self.registry).set_function(
            lambda: committer.committed
        )
        Gauge("bench_transactions", "Ping transactions committed.", registry=self.registry).set_function(
            lambda: committer.transactions
        )

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    async def start(self) -> None:
        await self.pings.start()

    async def stop(self) -> None:
        await self.pings.stop()
        self.database.dispose()


def serve(url: str, port: int) -> None:
    import uvicorn

    from vigil.web.app import create_app

    options: dict[str, Any] = {}
    for module, option, value in (("uvloop", "loop", "uvloop"), ("httptools", "http", "httptools")):
        try:
            __import__(module)
            options[option] = value
        except ImportError:
            pass
    app = create_app(_BenchBackend(url))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, workers=1, **options)


# -- the database ------------------------------------------------------------------------------------------------


def _seed(url: str, monitors: int) -> None:
    from sqlalchemy import insert

    from vigil.db import Base, make_engine
    from vigil.monitors.models import Component, Monitor

    engine = make_engine(url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(insert(Component), [{"id": "jobs", "name": "Jobs", "kind": "service"}])
            rows = [
                {"id": f"jobs/job-{i}", "component_id": "jobs", "type": "heartbeat", "heartbeat_token": _token(i)}
                for i in range(monitors)
            ]
            connection.execute(insert(Monitor), rows)
    finally:
        engine.dispose()


def _token(i: int) -> str:
    return f"bench-token-{i:06d}"


@contextmanager
def database(kind: str, postgres_url: str, monitors: int) -> Iterator[str]:
    """Yield the URL of a fresh database of ``kind`` seeded with ``monitors`` heartbeat monitors."""
    from sqlalchemy import text

    from vigil.db import make_engine, normalize_url

    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
        try:
            url = f"sqlite:///{folder / 'vigil.db'}"
            _seed(url, monitors)
            yield url
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    schema = f"vigil_bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        base = normalize_url(postgres_url)
        url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
        _seed(url, monitors)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def server(url: str) -> Iterator[str]:
    """Run the app in a subprocess; yield its base URL once it answers /healthz; stop it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, __file__, "--serve", url, str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {STARTUP_TIMEOUT:.0f} s")


def _server_counts(base: str) -> tuple[int, int]:
    import httpx

    text = httpx.get(f"{base}/metrics", timeout=5).text
    values = {m[1]: float(m[2]) for m in re.finditer(r"^(bench_\w+) ([0-9.e+]+)$", text, re.MULTILINE)}
    return int(values.get("bench_transactions", 0)), int(values.get("bench_pings_committed", 0))


# -- the clients ---------------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
local tokens = {}
for i = 0, %(monitors)d - 1 do tokens[#tokens + 1] = string.format("/ping/bench-token-%%06d", i) end
math.randomseed(os.time())
request = function() return wrk.format("GET", tokens[math.random(#tokens)]) end
"""


def drive_wrk(base: str, monitors: int, seconds: float, connections: int) -> tuple[int, int, float, float, float]:
    """Return (ok, errors, seconds, p50 ms, p99 ms) from one wrk run."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % {"monitors": monitors})
    try:
        command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:.0f}s", "--latency", "-s", script.name]
        output = subprocess.run([*command, base], capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    total = int(re.search(r"(\d+) requests in ([0-9.]+)(\w+)", output).group(1))  # type: ignore[union-attr]
    elapsed = _wrk_seconds(re.search(r"requests in ([0-9.]+)(\w+)", output))  # type: ignore[arg-type]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    p50 = _wrk_ms(re.search(r"^\s+50%\s+([0-9.]+)(\w+)", output, re.MULTILINE))  # type: ignore[arg-type]
    p99 = _wrk_ms(re.search(r"^\s+99%\s+([0-9.]+)(\w+)", output, re.MULTILINE))  # type: ignore[arg-type]
    return total - (int(bad.group(1)) if bad else 0), errors, elapsed, p50, p99


def _wrk_seconds(match: re.Match[str]) -> float:
    value, unit = float(match.group(1)), match.group(2)
    return value * {"s": 1.0, "ms": 1e-3, "m": 60.0}[unit]


def _wrk_ms(match: re.Match[str]) -> float:
    value, unit = float(match.group(1)), match.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]


async def _drive_aiohttp(
    base: str, monitors: int, seconds: float, connections: int
) -> tuple[int, int, float, float, float]:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    async with session.get(f"/ping/{_token(random.randrange(monitors))}") as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1

        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    return len(latencies), errors, elapsed, p50, p99


def measure(kind: str, args: argparse.Namespace) -> Run:
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "aiohttp"
    with database(kind, args.postgres_url, args.monitors) as url, server(url) as base:
        if client == "wrk":
            ok, errors, seconds, p50, p99 = drive_wrk(base, args.monitors, args.seconds, args.connections)
        else:
            ok, errors, seconds, p50, p99 = asyncio.run(
                _drive_aiohttp(base, args.monitors, args.seconds, args.connections)
            )
        transactions, committed = _server_counts(base)
    return Run(kind, client, ok, errors, seconds, p50, p99, transactions, committed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="PostgreSQL to use [VIGIL_TEST_POSTGRES_URL]")
    parser.add_argument("--monitors", type=int, default=1000, help="heartbeat monitors pinged at random")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to drive each server")
    parser.add_argument("--connections", type=int, default=64, help="concurrent clients")
    parser.add_argument("--client", choices=["auto", "wrk", "aiohttp"], default="auto")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    print(f"# Heartbeat ingestion: {machine()}")
    print(f"# {args.monitors} monitors, {args.connections} connections, {args.seconds:.0f} s per database\n")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    runs = [measure(kind, args) for kind in kinds]
    rows = [
        [
            run.database,
            run.client,
            f"{run.rate:,.0f}",
            f"{run.p50_ms:.1f} ms",
            f"{run.p99_ms:.1f} ms",
            f"{run.committed:,}",
            f"{run.transactions:,}",
            f"{run.committed / max(run.transactions, 1):.0f}",
            str(run.errors),
            "ok" if run.rate >= TARGET and run.errors == 0 else "MISS",
        ]
        for run in runs
    ]
    headers = ["database", "client", "pings/s", "p50", "p99", "committed", "transactions", "pings/txn", "errors"]
    print(table([*headers, f"≥ {TARGET:,.0f}/s"], rows))
    return 0 if all(run.rate >= TARGET and run.errors == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
