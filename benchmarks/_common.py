"""Shared helpers of the benchmark scripts: the machine, cached generated models, timing and tables."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import generate, write

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"  # generated models and SCRAM inputs; ignored by git


def machine() -> str:
    """Return 'CPU model, N cores, Python x.y.z, load avg a b c' for the results header."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"


def model_file(components: int, seed: int = 1) -> Path:
    """Return the YAML file of a generated model, generating it on first use (cached in benchmarks/out/)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"model-{components}-seed{seed}.yaml"
    if not path.exists():
        started = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        write(generate(components, seed), tmp)
        tmp.replace(path)
        print(f"(generated {path.name} in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return path


def timed(func: Callable[[], T]) -> tuple[T, float]:
    """Run ``func`` once; return its result and the wall time in seconds."""
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started


def best_of(func: Callable[[], T], repeat: int) -> tuple[T, float]:
    """Run ``func`` ``repeat`` times; return the last result and the fastest wall time (least disturbed run)."""
    best = float("inf")
    result: Any = None
    for _ in range(max(1, repeat)):
        result, seconds = timed(func)
        best = min(best, seconds)
    return result, best


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def verdict(seconds: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if seconds is None:
        return "missed (did not finish)"
    return "met" if seconds <= target else "missed"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return a Markdown table (readable as text too)."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def header(title: str) -> None:
    print(f"## {title}\n")
    print(f"Machine: {machine()}\n")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def target_server(script: str, *, core: int | None = None) -> Iterator[int]:
    """Run ``script`` (Python source that serves HTTP on 127.0.0.1 at the port given as its argument) in its own
    process, pinned to ``core`` when the machine has more than one; yield the port once it accepts connections,
    and stop the process on exit. Its CPU is then not the measured process's."""
    port = free_port()
    command = [sys.executable, "-c", script, str(port)]
    if core is not None and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", str(core), *command]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the target server did not start")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
