"""The server's engine room: config, scheduler, states, writers and heartbeat ingestion, started and stopped as one.

One :class:`Runtime` per process. It owns the event loop's view of the world (monitor trackers, component
verdicts, heartbeat times) and everything that writes to the database; the web app reads the database and the
metrics this keeps. The path of one result: scheduler → :meth:`Runtime._on_result` → result writer (batched,
to ``check_results``) and the monitor's tracker → on a change, a recomputation of component states through the
model (coalesced over a few tens of milliseconds) → state events to the bus and the ``state_changes`` outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from vigil.alerts.service import alert_verdicts
from vigil.config import Settings
from vigil.db import make_engine, session_scope, upgrade
from vigil.engine.events import EventBus, StateEvent
from vigil.engine.metrics import CheckCounts, EngineCollector, EngineView
from vigil.engine.scheduler import Job, Scheduler
from vigil.engine.states import ComponentVerdict, MonitorTracker, component_states, own_state, worse
from vigil.engine.statewriter import CauseUpdate, StateWriter
from vigil.engine.sync import Snapshot, SyncReport, load_snapshot, sync_config
from vigil.incidents.runner import IncidentWorker
from vigil.maintenance.service import active_components, advance_windows
from vigil.model.errors import ModelError, ModelIssue
from vigil.model.loader import load_model
from vigil.model.types import Model
from vigil.monitors.config import MonitorConfig, MonitorSet, monitors_of
from vigil.monitors.heartbeat import HeartbeatState
from vigil.monitors.models import ComponentState, PingKind
from vigil.monitors.pings import Ping, PingCommitter
from vigil.monitors.registry import CheckContext, HttpClients, run_check
from vigil.monitors.result import CheckResult
from vigil.monitors.rollup import rollup_due
from vigil.monitors.store import ResultWriter, purge_results
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.escalation import AckLinks

__all__ = ["Runtime", "load_config"]

logger = logging.getLogger(__name__)

RECOMPUTE_DELAY = 0.05  # seconds: one recomputation for a burst of changes (six VMs failing together)
# A recomputation walks every component; on a large model under a storm of changes (the first round after
# start flips every monitor from unknown) waiting this many times its last duration caps its share of the CPU.
RECOMPUTE_BACKOFF = 3.0
_NO_DETAILS: dict[str, Any] = {}  # shared, never mutated (results are frozen)
DATABASE_GRACE = 60.0  # seconds the database may be unreachable before /healthz says failing
MAINTENANCE_INTERVAL = 5.0  # seconds between two looks at the maintenance windows (start, complete, cancel)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def load_config(paths: Sequence[str | Path]) -> tuple[Model, MonitorSet]:
    """Load the model and its monitors; raises ModelError for a model that cannot be used at all.

    Invalid monitors do not raise: they are in ``MonitorSet.issues`` and left out, so the others still run.
    """
    model = load_model([Path(p) for p in paths])
    # Lines of valid monitors are not needed to run them (bad ones still get theirs); finding them parses every
    # file again, and that parse's peak stays in the process's memory for good.
    monitor_set = monitors_of(model, lines=False)
    for component in model.components.values():
        # The specs are parsed and placed: the raw YAML and the line tables behind the entries would only take
        # memory for as long as the server runs (more than the specs themselves).
        component.monitors = ()
    return model, monitor_set


class Runtime:
    """Everything ``vigil serve`` runs besides the HTTP server; satisfies :class:`vigil.web.backend.Backend`."""

    def __init__(
        self,
        *,
        settings: Settings,
        paths: Sequence[str | Path],
        database: Engine | None = None,
        context: CheckContext | None = None,
        clock: Callable[[], datetime] = _utcnow,
        maintenance_interval: float = MAINTENANCE_INTERVAL,
    ) -> None:
        self.settings = settings
        self.paths = [Path(p) for p in paths]
        self._db = database or make_engine(settings.database_url)
        self._context = context or CheckContext(http=HttpClients(max_connections=settings.check_concurrency))
        self.events = EventBus()
        # SQLite has one write lock per database: writers in separate threads would wait on it (and a busy
        # timeout is no queue: under load one of them gives up with "database is locked"). One writer thread
        # for results, state changes, pings and upkeep serialises them instead. PostgreSQL takes them at once.
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-db-writer")
            if self._db.dialect.name == "sqlite"
            else None
        )
        self.results = ResultWriter.from_settings(self._db, settings, executor=self._writer)
        self.states = StateWriter(self._db, executor=self._writer)
        self._pings = PingCommitter(self._db, on_ping=self._on_ping, executor=self._writer)
        # Notifications (issue 4): sends the deliveries the incident worker queues through its hook.
        self.notify = Dispatcher(
            self._db,
            executor=self._writer,
            concurrency=settings.notify_concurrency,
            smtp_concurrency=settings.notify_smtp_concurrency,
        )
        # Escalation (issue 4): reminders and escalation run in the dispatcher's loop; messages carry ack links.
        if key := settings.secret_key.get_secret_value():
            self.notify.ack_url = AckLinks(key, settings.public_url)
        # Incidents (issue 4): follows the state_changes outbox the state writer fills; on the writer thread.
        self.incidents = IncidentWorker(
            self._db,
            model=lambda: self.model,
            quiet_period=timedelta(seconds=settings.incident_quiet_period),
            executor=self._writer,
            on_change=self.notify.enqueue,
        )
        # Work wakes the next stage rather than each polling every second (an idle server's cost): the state
        # writer's commit wakes the incident worker, the worker's the dispatcher. Each still polls, slowly.
        self.states.after_commit = self.incidents.wake
        self.incidents.after_commit = self.notify.wake
        self.scheduler: Scheduler[MonitorConfig] = Scheduler(
            runner=self._run,
            on_result=self._on_result,
            max_concurrency=settings.check_concurrency,
            startup_spread=settings.startup_spread,
            batch_window=settings.check_batch_window,
            batch_target=settings.check_batch_target,
        )
        self.model: Model | None = None
        # Scheduled maintenance (issue 4): the components of the windows in progress, in maintenance for
        # component_states; windows start and complete on ``clock`` (a parameter, so tests can move time).
        self.maintenance: frozenset[str] = frozenset()
        self.clock = clock
        self._maintenance_interval = maintenance_interval
        self.monitors: dict[str, MonitorConfig] = {}
        self.issues: list[ModelIssue] = []  # monitors left out of the current config, and why
        self.verdicts: dict[str, ComponentVerdict] = {}
        self.last_reload_error: str | None = None
        self.sync_report = SyncReport()
        self._trackers: dict[str, MonitorTracker] = {}
        self._info: dict[str, tuple[str, str]] = {}
        self._by_component: dict[str, list[str]] = {}
        self._heartbeats: dict[str, HeartbeatState] = {}
        self._counts = CheckCounts()
        self._recompute_handle: asyncio.TimerHandle | None = None
        self._recompute_seconds = 0.0
        # Component states are derived in their own thread while checks run (see _start_recompute); each
        # derivation has a generation number, and only the newest started one may apply its verdicts.
        self._states_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-states")
        self._generation = 0
        self._recomputing = False
        self._recompute_again = False
        self._states_closed = False
        self._alerts: dict[str, ComponentVerdict] = {}  # what firing alerts say of their components
        self._loop: asyncio.AbstractEventLoop | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._scheduler_task: asyncio.Task[None] | None = None
        self._unavailable_since: float | None = None
        self._reload_lock = asyncio.Lock()
        self.started_at: datetime | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        view = EngineView(self._trackers, self._info, self.verdicts, self._counts, self._gauges, self._counters)
        self._view = view
        self.registry.register(EngineCollector(view))

    # -- what the web app reads -------------------------------------------------------------------------
    @property
    def database(self) -> Engine:
        return self._db

    @property
    def pings(self) -> PingCommitter:
        return self._pings

    def health(self) -> dict[str, Any]:
        problems = []
        running = self._scheduler_task is not None and not self._scheduler_task.done()
        if not running:
            problems.append("the check scheduler is not running")
        database = "unavailable" if (self.results.unavailable or self.states.unavailable) else "ok"
        if database == "ok":
            self._unavailable_since = None
        elif self._unavailable_since is None:
            self._unavailable_since = time.monotonic()
        elif time.monotonic() - self._unavailable_since > DATABASE_GRACE:
            problems.append(f"the database has been unreachable for more than {DATABASE_GRACE:.0f} s")
        p99 = self.scheduler.stats.lateness_quantile(0.99)
        return {
            "status": "failing" if problems else "ok",
            "problems": problems,
            "database": database,
            "monitors": len(self.monitors),
            "components": len(self.model.components) if self.model else 0,
            "config_issues": [str(issue) for issue in self.issues],
            "last_reload_error": self.last_reload_error,
            "lateness_p99_seconds": p99,
            "results_pending": self.results.pending,
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }

    # -- life cycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the config, migrate and sync the database, and start checking.

        Raises ModelError when the config cannot be used at all (nothing is started then).
        """
        if self._states_closed:  # started again after a stop
            self._states_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-states")
            self._states_closed = False
        model, monitor_set = await asyncio.to_thread(load_config, self.paths)
        await asyncio.to_thread(self.notify.configure, model)  # channels and routes (Apprise checks the URLs)
        await asyncio.to_thread(upgrade, self._db)
        snapshot = await asyncio.to_thread(self._sync, model, monitor_set)
        # Before the first recomputation: a component in a window must not flap maintenance → down → maintenance.
        self.maintenance = await asyncio.to_thread(self._maintenance_round)
        self._alerts = await asyncio.to_thread(self._alert_round)  # alerts still firing from before the restart
        self._loop = asyncio.get_running_loop()
        self.started_at = datetime.now(UTC)
        self._install(model, monitor_set, snapshot, first=True)
        await self.results.start()
        await self.states.start()
        await self.incidents.start()  # after the state writer: it reads what that one writes
        await self.notify.start()  # sends what the incident worker queues
        await self._pings.start()
        self._scheduler_task = asyncio.create_task(self.scheduler.run(), name="vigil-scheduler")
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="vigil-housekeeping"))
        self._tasks.append(asyncio.create_task(self._maintenance_loop(), name="vigil-maintenance"))

    async def stop(self) -> None:
        """Stop checking, then write everything still in memory."""
        self.scheduler.stop()
        if self._scheduler_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._scheduler_task, timeout=30)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._states_closed = True
        if self._recompute_handle is not None or self._recomputing:
            self._recompute()  # the last changes' component states, before the writers' last flush
        self._states_pool.shutdown(wait=False, cancel_futures=True)
        await self._pings.stop()
        await self.results.stop()
        await self.incidents.stop()  # before the state writer, as asked; what it has not read waits in the outbox
        await self.notify.stop()  # after the worker's last round; unsent deliveries wait for the next start
        await self.states.stop()
        if self._context.http is not None:
            await self._context.http.aclose()
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    async def reload(self) -> bool:
        """Read the config again and apply it without losing state; on a bad config keep the running one.

        Returns whether the new config was applied; the reason it was not is in :attr:`last_reload_error`.
        """
        async with self._reload_lock:
            try:
                model, monitor_set = await asyncio.to_thread(load_config, self.paths)
                snapshot = await asyncio.to_thread(self._sync, model, monitor_set)
                await asyncio.to_thread(self.notify.configure, model)  # the new channels and routes
            except ModelError as exc:
                self.last_reload_error = str(exc)
                logger.error("config not reloaded, the running one stays:\n%s", exc)
                return False
            except Exception as exc:
                self.last_reload_error = f"{type(exc).__name__}: {exc}"
                logger.exception("config not reloaded, the running one stays")
                return False
            self._install(model, monitor_set, snapshot, first=False)
            self.last_reload_error = None
            logger.info("config reloaded: %d components, %d monitors", len(model.components), len(self.monitors))
            return True

    def _sync(self, model: Model, monitor_set: MonitorSet) -> Snapshot:
        with session_scope(self._db) as session:
            self.sync_report = sync_config(
                session=session, model=model, monitors=monitor_set.monitors, now=datetime.now(UTC)
            )
            return load_snapshot(session=session)

    def _install(self, model: Model, monitor_set: MonitorSet, snapshot: Snapshot, *, first: bool) -> None:
        for issue in monitor_set.issues:
            logger.error("monitor left out: %s", issue)
        self.model = model
        self.issues = [*monitor_set.issues, *self.notify.config.issues]  # channels/routes left out too
        for issue in self.notify.config.issues:
            logger.error("notification channel or route left out: %s", issue)
        self.monitors = {config.key: config for config in monitor_set.monitors}
        for key in set(self._trackers) - set(self.monitors):
            del self._trackers[key]
        self._info.clear()
        self._by_component.clear()
        for key, config in self.monitors.items():
            spec = config.spec
            tracker = self._trackers.get(key)
            if tracker is None:
                state = snapshot.monitor_states.get(key, ComponentState.UNKNOWN)
                tracker = MonitorTracker(
                    failures_before_down=spec.failures_before_down,
                    successes_before_up=spec.successes_before_up,
                    state=state,
                )
                self._trackers[key] = tracker
            else:
                tracker.failures_before_down = spec.failures_before_down
                tracker.successes_before_up = spec.successes_before_up
            self._info[key] = (config.component_id, spec.type)
            self._by_component.setdefault(config.component_id, []).append(key)
        for key, heartbeat in snapshot.heartbeats.items():
            if first or key not in self._heartbeats:
                self._heartbeats[key] = heartbeat
        if first:
            self.verdicts.update((cid, ComponentVerdict(state)) for cid, state in snapshot.component_states.items())
        for cid in set(self.verdicts) - set(model.components):
            del self.verdicts[cid]
        jobs = {key: Job(key, c.spec.interval, c.spec.timeout, c) for key, c in self.monitors.items()}
        self.scheduler.set_jobs(jobs)
        self._recompute()

    # -- the path of a result ---------------------------------------------------------------------------
    async def _run(self, job: Job[MonitorConfig]) -> CheckResult:
        spec = job.spec.spec
        if spec.type == "heartbeat":
            state = self._heartbeats.get(job.key, HeartbeatState())
            return await run_check(spec, dataclasses.replace(self._context, heartbeats=lambda _spec: state))
        return await run_check(spec, self._context)

    def _on_result(self, job: Job[MonitorConfig], result: CheckResult, lateness: float) -> None:
        key = job.key
        # Stored under the monitor's key, without the details dict the store does not keep: thousands of
        # results wait in the writer's queue after a burst, and their details would set the memory high-water mark.
        stored = CheckResult(key, result.started_at, result.latency, result.outcome, result.reason, _NO_DETAILS)
        self.results.add(stored)  # (dataclasses.replace would cost three times as much, for every check)
        self._counts.add(job.spec.spec.type, result.outcome)
        tracker = self._trackers.get(key)
        if tracker is None:
            return  # removed by a reload while it ran; its result is still stored
        before = tracker.state
        after = tracker.add(result)
        self.states.checked(key, result.started_at, tracker.failures, tracker.successes)
        if after is None:
            return
        event = StateEvent(datetime.now(UTC), job.spec.component_id, key, before, after, None, result.reason)
        self._emit(event)
        self._schedule_recompute()

    def _on_ping(self, ping: Ping) -> None:
        state = self._heartbeats.get(ping.monitor_key, HeartbeatState())
        field = {PingKind.SUCCESS: "last_ping", PingKind.START: "last_start", PingKind.FAIL: "last_fail"}[ping.kind]
        previous: datetime | None = getattr(state, field)
        if previous is None or ping.at > previous:
            self._heartbeats[ping.monitor_key] = dataclasses.replace(state, **{field: ping.at})
        self.scheduler.run_now(ping.monitor_key)  # a failure is news now, not at the next evaluation

    def _schedule_recompute(self) -> None:
        if self._states_closed:
            return  # stopping: stop() derives the last states itself
        if self._recomputing:
            self._recompute_again = True  # one more after the one in flight, which may have missed this change
        elif self._recompute_handle is None:
            loop = asyncio.get_running_loop()
            delay = max(RECOMPUTE_DELAY, RECOMPUTE_BACKOFF * self._recompute_seconds)
            self._recompute_handle = loop.call_later(delay, self._start_recompute)

    def _own(self) -> dict[str, ComponentVerdict]:
        own = {cid: own_state(self._trackers[k] for k in keys) for cid, keys in self._by_component.items()}
        # Firing alerts (issue 4) observe a component as its monitors do: the worse of the two is its own state,
        # so an alert-down hypervisor explains its VMs, and an up monitor does not hide a firing alert.
        for cid, verdict in self._alerts.items():
            own[cid] = worse(own.get(cid, ComponentVerdict(ComponentState.UNKNOWN)), verdict)
        return own

    async def refresh_alerts(self) -> None:
        """Read what the firing alerts say of their components; derive the states again if that changed."""
        found = await asyncio.get_running_loop().run_in_executor(self._writer, self._alert_round)
        if found != self._alerts:
            self._alerts = found
            self._schedule_recompute()

    def _alert_round(self) -> dict[str, ComponentVerdict]:
        with session_scope(self._db) as session:
            return {
                cid: ComponentVerdict(state, None, reason)
                for cid, (state, reason) in alert_verdicts(session=session).items()
            }

    def alerts_changed(self) -> None:
        """Tell the engine that alerts were received (the web app calls it from any thread, after its commit)."""

        def spawn() -> None:
            task = asyncio.get_running_loop().create_task(self._refresh_alerts_logged(), name="vigil-alerts")
            self._side_tasks.add(task)  # held until done: the loop keeps weak references to tasks only
            task.add_done_callback(self._side_tasks.discard)

        self._soon(spawn)

    def incidents_changed(self) -> None:
        """Tell the dispatcher that a person changed incidents (the web app calls it from any thread, after its
        commit): the change is told now rather than at the dispatcher's next poll."""
        self._soon(lambda: self.notify.wake(announce=True))

    def _soon(self, callback: Callable[[], None]) -> None:
        # From any thread, onto the engine's loop; nothing when the engine is not running.
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    async def _refresh_alerts_logged(self) -> None:
        try:
            await self.refresh_alerts()
        except Exception as exc:  # the database may be down; the maintenance loop's next round reads them again
            logger.warning("firing alerts not read, will retry: %s", exc)

    def _start_recompute(self) -> None:
        """Derive component states in the states thread, and apply them on the loop when they come back.

        On a large model under a storm (a hypervisor under 2,000 VMs) one derivation takes 0.1-0.3 s of CPU:
        on the event loop it delayed every check due meanwhile by as much (p99 lateness 330 ms during the storm,
        bench_incidents.py). In a thread the loop gets the GIL back at every switch interval (5 ms) and keeps
        starting checks on time. What the thread reads is a snapshot taken here (the monitors' own states) and
        values never mutated in place (the model, the maintenance set): reloads replace them.
        """
        self._recompute_handle = None
        model = self.model
        if model is None:
            return
        self._generation += 1
        generation = self._generation
        own, maintenance = self._own(), self.maintenance
        self._recomputing = True
        self._recompute_again = False
        loop = asyncio.get_running_loop()

        def derive() -> tuple[dict[str, ComponentVerdict], float]:
            started = time.perf_counter()
            return component_states(model, own, maintenance), time.perf_counter() - started

        future = loop.run_in_executor(self._states_pool, derive)

        def done(finished: asyncio.Future[tuple[dict[str, ComponentVerdict], float]]) -> None:
            self._recomputing = False
            if finished.cancelled():
                return
            if (error := finished.exception()) is not None:
                logger.error("deriving component states failed; keeping the previous ones", exc_info=error)
            elif generation == self._generation and model is self.model:  # nothing newer was applied meanwhile
                verdicts, seconds = finished.result()
                self._apply(verdicts)
                self._recompute_seconds = seconds
            if self._recompute_again:
                self._schedule_recompute()

        future.add_done_callback(done)

    def _recompute(self) -> None:
        """Derive and apply component states now, on the loop (config installs, maintenance changes, stop)."""
        if self._recompute_handle is not None:
            self._recompute_handle.cancel()
            self._recompute_handle = None
        if self.model is None:
            return
        self._generation += 1  # a derivation still in flight started from older inputs: it must not apply
        if self._recomputing:
            self._recompute_again = True  # its monitors' changes are in this one; the flag only costs a rerun
        started = time.perf_counter()
        try:
            verdicts = component_states(self.model, self._own(), self.maintenance)
        except Exception:
            logger.exception("deriving component states failed; keeping the previous ones")
            return
        self._apply(verdicts)
        self._recompute_seconds = time.perf_counter() - started

    def _apply(self, verdicts: dict[str, ComponentVerdict]) -> None:
        now = datetime.now(UTC)
        for cid, new in verdicts.items():
            old = self.verdicts.get(cid, ComponentVerdict(ComponentState.UNKNOWN))
            if new.state is not old.state:
                self._emit(StateEvent(now, cid, None, old.state, new.state, new.cause, new.reason))
            elif new.cause != old.cause:
                self.states.add(CauseUpdate(cid, new.cause))
        self.verdicts.clear()
        self.verdicts.update(verdicts)

    def _emit(self, event: StateEvent) -> None:
        self.states.add(event)
        self.events.publish(event)

    # -- upkeep -----------------------------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        last_purge = 0.0
        while True:
            await asyncio.sleep(self.settings.rollup_interval)
            purge = time.monotonic() - last_purge > 3600
            try:
                await asyncio.get_running_loop().run_in_executor(self._writer, self._upkeep, purge)
                if purge:
                    last_purge = time.monotonic()
            except Exception as exc:  # the database may be down; next round tries again
                logger.warning("rollup or purge failed, will retry: %s", exc)

    def _upkeep(self, purge: bool) -> None:
        now = datetime.now(UTC)
        with session_scope(self._db) as session:
            rollup_due(session=session, now=now)
        if purge:
            with session_scope(self._db) as session:
                cutoff = now - timedelta(days=self.settings.result_retention_days)
                removed = purge_results(session=session, older_than=cutoff)
            if removed:
                logger.info("purged %d results older than %s", removed, cutoff.isoformat())

    # -- scheduled maintenance (issue 4) ------------------------------------------------------------------
    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self._maintenance_interval)
            try:
                await self.refresh_maintenance()
                # Alerts another server received (several instances on PostgreSQL) arrive here at the latest.
                await self.refresh_alerts()
            except Exception as exc:  # the database may be down; next round tries again
                logger.warning("maintenance windows or alerts not checked, will retry: %s", exc)

    async def refresh_maintenance(self) -> None:
        """Start and complete the windows due on the clock, and recompute states if the set of components in
        maintenance changed (a window ending with a component still down is then an incident at once)."""
        active = await asyncio.get_running_loop().run_in_executor(self._writer, self._maintenance_round)
        if active != self.maintenance:
            self.maintenance = active
            self._recompute()

    def _maintenance_round(self) -> frozenset[str]:
        with session_scope(self._db) as session:
            for window_id, status in advance_windows(session=session, now=self.clock()):
                logger.info("maintenance %d is now %s", window_id, status.value)
            return active_components(session=session)

    def _gauges(self) -> dict[str, float]:
        stats = self.scheduler.stats
        gauges = {
            "vigil_scheduler_lag_seconds": self.scheduler.lag(),
            "vigil_checks_in_flight": float(self.scheduler.in_flight),
            "vigil_monitors": float(len(self.monitors)),
            "vigil_results_pending": float(self.results.pending),
            "vigil_state_changes_pending": float(self.states.pending),
            "vigil_database_up": 0.0 if (self.results.unavailable or self.states.unavailable) else 1.0,
        }
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            value = stats.lateness_quantile(q)
            if value is not None:
                gauges[f"vigil_scheduler_lateness_{name}_seconds"] = value
        return gauges

    def _counters(self) -> dict[str, float]:
        stats = self.scheduler.stats
        return {
            "vigil_results_written": float(self.results.written),
            "vigil_results_dropped": float(self.results.dropped),
            "vigil_checks_crashed": float(stats.crashed),
            "vigil_checks_skipped": float(stats.skipped),
            "vigil_pings_committed": float(self._pings.committed),
            "vigil_ping_transactions": float(self._pings.transactions),
        }
