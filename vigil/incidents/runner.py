"""The incident worker's runner in ``vigil serve``: rounds of :func:`~vigil.incidents.worker.process_outbox` and
:func:`~vigil.incidents.worker.resolve_quiet` on the runtime's writer thread, when woken or on a slow poll.

Woken, not polling every second: the runtime's state writer wakes it after committing state changes, and it
wakes the notification dispatcher after a round that changed incidents, so an idle server runs no transaction
every second (docs/incidents.md). It still polls, every ``poll_interval``, for what other servers wrote and for
incidents that became quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine

from vigil.db import session_scope
from vigil.incidents.cache import IncidentCache
from vigil.incidents.worker import BATCH_SIZE, ChangeHook, ensure_cursor, process_outbox, resolve_quiet, utcnow
from vigil.model.types import Model

__all__ = ["MIN_ROUND_GAP", "POLL_INTERVAL", "IncidentWorker"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


POLL_INTERVAL = 5.0  # seconds between two looks at the outbox when nobody said there is something to read
# At most one round a second however often it is woken (as when it polled every second): in a storm the state
# writer commits every 50 ms, and each round is two transactions on the single SQLite writer the engine's own
# writes wait for.
MIN_ROUND_GAP = 1.0  # seconds


class IncidentWorker:
    """Runs :func:`process_outbox` and :func:`resolve_quiet` (``start``/``stop``): at once when :meth:`wake` is
    called (the runtime does after its state writer committed state changes), else every ``poll_interval``
    seconds (state changes another server wrote, incidents that became quiet).

    ``model`` returns the model in force (it changes on reload; None: not loaded yet, nothing is read).
    ``executor`` is where the database work runs (the runtime's single SQLite writer thread). ``after_commit``,
    when set, is called on the loop after a round that consumed outbox rows or resolved incidents (the runtime
    wakes the notification dispatcher with it).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        model: Callable[[], Model | None],
        quiet_period: timedelta,
        clock: Callable[[], datetime] = utcnow,
        poll_interval: float = POLL_INTERVAL,
        executor: Executor | None = None,
        on_change: ChangeHook | None = None,
    ) -> None:
        self._engine = engine
        self._on_change = on_change  # notifications (issue 4)
        self._model = model
        self.quiet_period = quiet_period
        self.clock = clock
        self._poll_interval = poll_interval
        self._executor = executor
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        self.after_commit: Callable[[], None] | None = None
        self.processed = 0  # outbox rows consumed by this process
        self._cache = IncidentCache()  # affected lists and blast radii between batches
        self.failures = 0  # rounds that failed in a row (database away): logged once per episode

    def step(self) -> int:
        """Apply one batch of the outbox in its own transaction; return the rows consumed (0: none pending).

        One batch per call, so that on the runtime's single SQLite writer thread the engine's writes (results,
        state changes) get their turn between two batches instead of waiting for a whole backlog.
        """
        model = self._model()
        if model is None:
            return 0
        try:
            with session_scope(self._engine) as session:
                count = process_outbox(
                    session=session, model=model, now=self.clock(), on_change=self._on_change, cache=self._cache
                )
        except BaseException:
            self._cache.clear()  # it may hold what the rolled back transaction wrote
            raise
        self.processed += count
        return count

    def resolve(self) -> list[int]:
        """Resolve the incidents quiet for the quiet period (one transaction); return their ids."""
        with session_scope(self._engine) as session:
            return resolve_quiet(
                session=session, now=self.clock(), quiet_period=self.quiet_period, on_change=self._on_change
            )

    def run_once(self) -> int:
        """Consume everything pending in the outbox, then resolve quiet incidents; return rows consumed."""
        if self._model() is None:
            return 0
        total = 0
        while True:
            count = self.step()
            total += count
            if count < BATCH_SIZE:
                break
        self.resolve()
        return total

    async def _in_thread(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    async def start(self) -> None:
        """Create the cursor if missing (at the end of the outbox) and start following it."""
        if self._task is not None:
            return

        def init() -> int:
            with session_scope(self._engine) as session:
                return ensure_cursor(session=session)

        await self._in_thread(init)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="vigil-incident-worker")

    async def stop(self) -> None:
        """Stop after the current round, then consume what is left (best effort: it resumes after a restart)."""
        self._stopping.set()
        self._woken.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self._in_thread(self.run_once)
        except Exception as exc:
            logger.warning("incident worker stopped with outbox rows left for the next start: %s", exc)

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (call it on the worker's loop)."""
        self._woken.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = -math.inf
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=self._poll_interval)
            if (gap := last + min(MIN_ROUND_GAP, self._poll_interval) - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):  # more state changes may come meanwhile: one round for all
                    await asyncio.wait_for(self._stopping.wait(), timeout=gap)
            self._woken.clear()
            if self._stopping.is_set():
                return
            last = loop.time()
            try:
                # Batch by batch, each its own job on the writer thread (see step); then the quiet period.
                consumed = count = await self._in_thread(self.step)
                while count >= BATCH_SIZE and not self._stopping.is_set():
                    count = await self._in_thread(self.step)
                    consumed += count
                resolved = await self._in_thread(self.resolve) if self._model() is not None else []
                self.failures = 0
                if (consumed or resolved) and self.after_commit is not None:
                    self.after_commit()
            except Exception:
                self.failures += 1
                if self.failures == 1:
                    logger.exception("incident worker round failed; retrying (the outbox position is kept)")
