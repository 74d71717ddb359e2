"""Run SCRAM 0.16.2 (``apt-get install scram``) with a timeout and a memory cap, and read its report.

Guards against SCRAM's traps: the order limit is always given (its default is a silent 20); every run has a
timeout (``--zbdd`` hangs on some generated models); the report is streamed (it can hold millions of products);
the address space is capped so that a runaway BDD cannot take the machine down. SCRAM prints probabilities with
``%g``: six significant digits, so agreement is judged to those digits.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SCRAM = os.environ.get("VIGIL_SCRAM") or shutil.which("scram") or "/usr/bin/scram"
NO_LIMIT = 1000  # --limit-order when every product is wanted
MEMORY_CAP = 12 * 1024**3  # bytes of address space SCRAM may use


@dataclass(slots=True)
class ScramRun:
    """The outcome of one SCRAM run on a file with one top event."""

    command: str
    status: str  # "ok", "timeout", "out of memory", "error"
    seconds: float
    peak_mb: float = 0.0
    products: int | None = None
    distribution: dict[int, int] = field(default_factory=dict)
    probability: float | None = None
    cut_sets: set[frozenset[str]] | None = None
    own_times: dict[str, float] = field(default_factory=dict)  # SCRAM's <calculation-time> figures
    message: str = ""


def available() -> bool:
    return Path(SCRAM).is_file() and os.access(SCRAM, os.X_OK)


def version() -> str:
    try:
        done = subprocess.run([SCRAM, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not available"
    return done.stdout.splitlines()[0].strip() if done.stdout else "unknown"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(
    model: Path,
    *,
    algorithm: str,
    limit_order: int | None,
    probability: bool,
    timeout: float,
    keep_sets: bool = False,
    names: Mapping[str, str] | None = None,
) -> ScramRun:
    """Run ``scram --<algorithm>`` on ``model``; ``names`` maps MEF names back to ids in the returned cut sets."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-scram-") as tmp:
        report = Path(tmp) / "report.xml"
        errors = Path(tmp) / "stderr.txt"
        command = [
            SCRAM,
            f"--{algorithm}",
            "--limit-order",
            str(NO_LIMIT if limit_order is None else limit_order),
            "--probability",
            "true" if probability else "false",
            "--no-indent",
            "-o",
            str(report),
            str(model),
        ]
        shown = " ".join(["scram", *command[1:-3], model.name])
        with errors.open("wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_limit_memory, start_new_session=True
            )
            status, usage = _wait(process.pid, started + timeout)
            seconds = time.perf_counter() - started
        process.returncode = status if status is not None else -9  # reaped by _wait, not by Popen
        peak = usage.ru_maxrss / 1024 if usage is not None else 0.0
        stderr = errors.read_text(errors="replace")
        if status is None:
            return ScramRun(shown, "timeout", seconds, peak, message=f"killed after {timeout:g} s")
        if status != 0:
            oom = "bad_alloc" in stderr or "memory" in stderr.lower()
            text = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {status}"
            return ScramRun(shown, "out of memory" if oom else "error", seconds, peak, message=text)
        result = ScramRun(shown, "ok", seconds, peak)
        _read_report(report, result, keep_sets, names or {})
        return result


def _wait(pid: int, deadline: float) -> tuple[int | None, resource.struct_rusage | None]:
    """Wait for ``pid`` until ``deadline``; return (exit status or None if killed, its resource usage)."""
    delay = 0.005
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage
        if time.perf_counter() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _, _, usage = os.wait4(pid, 0)
            return None, usage
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _read_report(path: Path, result: ScramRun, keep_sets: bool, names: Mapping[str, str]) -> None:
    sets: set[frozenset[str]] = set()
    holder: ET.Element | None = None
    section = ""
    for event, element in ET.iterparse(path, events=("start", "end")):
        if event == "start":
            if element.tag == "sum-of-products":
                p = element.attrib.get("probability")
                result.products = int(element.attrib["products"])
                result.probability = float(p) if p is not None else None
                holder = element
            elif element.tag == "calculation-time":
                section = "time"
            continue
        if element.tag == "product" and holder is not None:
            literals = [literal.attrib["name"] for literal in element if literal.tag == "basic-event"]
            order = len(literals)
            result.distribution[order] = result.distribution.get(order, 0) + 1
            if keep_sets:
                sets.add(frozenset(names.get(n, n) for n in literals))
            holder.clear()  # reports can hold millions of products
        elif section == "time" and element.tag in ("products", "probability", "importance") and element.text:
            result.own_times[element.tag] = float(element.text)
        elif element.tag == "calculation-time":
            section = ""
    if keep_sets:
        result.cut_sets = sets


def same_to_printed_digits(value: float, printed: float, digits: int = 6) -> bool:
    """Whether ``value`` rounds to what SCRAM printed with ``%g`` (``digits`` significant digits)."""
    if printed == 0.0:
        return value == 0.0
    exponent = int(f"{abs(printed):e}".split("e")[1])
    return abs(value - printed) <= 0.5 * 10.0 ** (exponent - digits + 1) * (1 + 1e-9)
