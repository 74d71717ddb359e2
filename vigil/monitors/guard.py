"""The frame every check runs in: a hard timeout, latency measured, and no exception let out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from vigil.monitors.errors import describe_exception, first_line
from vigil.monitors.result import CheckResult, Outcome
from vigil.monitors.texts import seconds_text

__all__ = ["GuardedSpec", "Progress", "Verdict", "guarded", "internal_error"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a probe found; the guard adds the monitor id, start time and latency."""

    outcome: Outcome
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Progress:
    """Where a probe is, so that a timeout can say what it interrupted ("while waiting for the answer")."""

    step: str = ""


class GuardedSpec(Protocol):
    """The part of a monitor config the guard needs."""

    @property
    def monitor_id(self) -> str: ...

    @property
    def timeout(self) -> float: ...

    def latency_limit(self) -> float | None: ...


def internal_error(exc: BaseException) -> str:
    """Return the reason for a failure in Vigil's own code: ``"internal error: KeyError: 'x'"``."""
    message = first_line(exc)
    return f"internal error: {type(exc).__name__}: {message}" if message else f"internal error: {type(exc).__name__}"


async def guarded(spec: GuardedSpec, probe: Callable[[Progress], Awaitable[Verdict]]) -> CheckResult:
    """Run ``probe`` within ``spec.timeout`` and return its result; never raises (cancellation aside).

    A timeout, a network error or a bug in the probe becomes a down result whose reason says which; a probe
    that returns something other than a :class:`Verdict` is a bug too. A good result slower than the monitor's
    latency limit becomes degraded.
    """
    started_at = datetime.now(UTC)
    start = time.monotonic()
    try:
        monitor_id, timeout = spec.monitor_id, float(spec.timeout)
    except Exception as exc:
        return CheckResult("?", started_at, 0.0, Outcome.DOWN, internal_error(exc))
    progress = Progress()
    # asyncio.timeout() by hand: a timer that cancels this task, told apart from a cancellation from outside.
    # The same semantics for a third of the cost (asyncio's looks the running loop up three times, and on
    # Python 3.11 each look is a getpid() system call); this runs for every check.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task(loop)  # None only outside a task, where nothing could be cancelled anyway
    cancelling = task.cancelling() if task is not None else 0
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()  # type: ignore[union-attr]

    timer = loop.call_at(loop.time() + timeout, expire) if task is not None else None
    try:
        verdict = _checked(await probe(progress))
    except asyncio.CancelledError:
        if not expired or task is None or task.uncancel() > cancelling:
            raise  # cancelled from outside (shutdown, the scheduler's hang sweep), or from outside as well
        verdict = Verdict(Outcome.DOWN, _failure_reason(TimeoutError(), timeout, progress))
    except Exception as exc:
        verdict = Verdict(Outcome.DOWN, _failure_reason(exc, timeout, progress))
    finally:
        if timer is not None:
            timer.cancel()
    latency = time.monotonic() - start
    try:
        verdict = _limit_latency(verdict, latency, spec.latency_limit())
    except Exception as exc:
        verdict = Verdict(Outcome.DOWN, internal_error(exc))
    return CheckResult(monitor_id, started_at, latency, verdict.outcome, verdict.reason, verdict.details)


def _failure_reason(exc: Exception, timeout: float, progress: Progress) -> str:
    reason = describe_exception(exc, timeout=timeout) or internal_error(exc)
    if reason.startswith("timeout") and progress.step:
        return f"{reason} {progress.step}"
    return reason


def _checked(verdict: object) -> Verdict:
    # A probe is our code, but a wrong return value must still become a readable down result, not a crash later.
    if not isinstance(verdict, Verdict):
        return Verdict(Outcome.DOWN, f"internal error: check returned {type(verdict).__name__}, not a verdict")
    if not isinstance(verdict.outcome, Outcome) or not isinstance(verdict.reason, str):
        return Verdict(Outcome.DOWN, f"internal error: check returned a malformed verdict {verdict!r:.200}")
    if not isinstance(verdict.details, dict):
        return Verdict(verdict.outcome, verdict.reason)
    return verdict


def _limit_latency(verdict: Verdict, latency: float, limit: float | None) -> Verdict:
    if limit is None or verdict.outcome is not Outcome.UP or latency <= limit:
        return verdict
    reason = f"slow: {seconds_text(latency)} (degraded above {seconds_text(limit)}); {verdict.reason}"
    return Verdict(Outcome.DEGRADED, reason, verdict.details)
