"""A second process for the half of an analysis that only sends back small results (floats, ids).

``analyze_model`` computes the cut sets of every service in the calling process (they live in its ZBDD manager
and are handed out as diagrams) and, at the same time, the probabilities, SPOF explanations and importance in a
forked child, which sends them back as plain values. Forking shares the model and the fault tree with the child
for free (copy on write); the child builds its own copy of the engine's memo tables in the same order as the
parent would, so its results are the parent's to the last bit.

This is only an optimisation. It is used when it can pay (see :func:`wanted`) and never when the process has
other threads (forking then could copy a lock another thread holds) or cannot fork; anything that goes wrong in
the child (an exception, a crash, a result that cannot be pickled) makes :meth:`Background.results` return
None, and the caller computes the same results itself. ``VIGIL_ANALYSIS_PROCESSES`` overrides the choice:
``off`` (or ``1``) never forks, ``on`` (or ``2``) forks whenever possible, even for small models (tests).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

__all__ = ["ENV", "Background", "start", "wanted"]

T = TypeVar("T")
R = TypeVar("R")

ENV = "VIGIL_ANALYSIS_PROCESSES"
# Below these sizes the work sent away is not worth a fork (a few to tens of milliseconds).
_MIN_ITEMS = 50
_MIN_EVENTS = 3000


def _setting() -> str:
    value = os.environ.get(ENV, "auto").strip().lower()
    if value in ("off", "1", "0", "no", "false"):
        return "off"
    if value in ("on", "2", "yes", "true"):
        return "on"
    return "auto"


def wanted(items: int, events: int) -> bool:
    """Return whether to hand work on ``items`` tops of a tree of ``events`` basic events to a second process."""
    setting = _setting()
    if setting == "off" or not _can_fork():
        return False
    if setting == "on":
        return True
    # Forking a process that runs other threads could copy a lock one of them holds into the child.
    return (
        items >= _MIN_ITEMS and events >= _MIN_EVENTS and (os.cpu_count() or 1) >= 2 and threading.active_count() == 1
    )


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


class Background(Generic[R]):
    """Results being computed in a child process."""

    def __init__(self, process: Any, receiver: Connection) -> None:
        self._process = process
        self._receiver = receiver

    def results(self) -> list[R] | None:
        """Wait for the child; return its results in order, or None if it failed in any way."""
        try:
            status, payload = self._receiver.recv()
        except Exception:  # the child died (EOFError), or sent something unreadable
            return None
        finally:
            self.cancel()
        return payload if status == "ok" else None

    def cancel(self) -> None:
        """Stop the child if it still runs and release it (idempotent)."""
        self._receiver.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def start(func: Callable[[T], R], items: Sequence[T]) -> Background[R] | None:
    """Start computing ``[func(item) for item in items]`` in a forked child; None if no child could start.

    ``func`` may be a closure: the child is a fork, nothing but the results is pickled.
    """
    if not _can_fork():
        return None
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(func, items, sender), daemon=True)
    try:
        process.start()
    except Exception:  # no more processes, no memory, or we are a daemonic process ourselves
        receiver.close()
        sender.close()
        return None
    sender.close()
    return Background(process, receiver)


def _serve(func: Callable[[T], R], items: Sequence[T], sender: Connection) -> None:
    try:
        message: tuple[str, object] = ("ok", [func(item) for item in items])
    except BaseException as exc:
        message = ("error", repr(exc))
    try:
        sender.send(message)
    except Exception:  # a result that cannot be pickled: the parent sees a failure
        sender.send(("error", "results could not be sent"))
    finally:
        sender.close()
