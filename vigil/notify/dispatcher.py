"""The dispatcher: sends the due deliveries of the outbox, retries with backoff, records every attempt.

Started and stopped by the runtime. Its loop claims due deliveries (:func:`~vigil.notify.service.claim_due`),
as many as it has free sending slots (``concurrency``, 64 by default), and sends them at once, each bounded by
its channel's timeout: webhooks on one shared aiohttp session (connections kept alive), e-mail on SMTP sessions
kept open per server and at most ``smtp_concurrency`` (4) at a time per server, Apprise in a thread. While a
claim comes back full it claims again as soon as a quarter of the slots is free, instead of waiting for the
next poll: a fan-out of 10,000 subscribers drains in seconds to a minute, not 20 minutes. It claims at once
when woken (:meth:`Dispatcher.wake`: the incident worker queued deliveries, a person changed an incident in
this server), and otherwise looks every ``poll_interval`` (5 s) for retries come due, reminders and
escalations, and what another process queued (``vigil incident`` in a shell, another server).

Attempts are recorded in batches: the attempts that ended since the last transaction are written in the same
short transaction as the next claim (one read, one executemany UPDATE, the timeline events of channel
deliveries). Every attempt still ends up in the delivery row and, for channel deliveries, in the incident's
timeline. Database work runs on ``executor`` (the runtime's SQLite writer thread, shared with the check
engine's writers), so each transaction is kept to a claim of at most ``concurrency`` rows and a record of at
most :data:`RECORD_BATCH`, and claims take fewer rows while transactions take longer than
:data:`TRANSACTION_TARGET` (large payloads, a busy machine).

Delivery is at least once: a claim leases its rows (``next_attempt_at`` moves past the longest a claimed
delivery can take); if this process dies between sending and recording (a window of up to a second or so,
while the batch waits for its transaction), the rows are due again when the lease ends and are sent again.
Receivers drop repeats by ``X-Vigil-Delivery``.

A slow or dead channel never holds back the others: each attempt is bounded by its timeout, and a channel
that needs a gate (SMTP server, Apprise) never holds more than twice its gate's size of the sending slots
(further rows of it are left in the outbox, or handed back, until it has room).

It is also the incident worker's notification hook (:meth:`Dispatcher.enqueue`): it holds the channels and
routes of the config in force (:meth:`configure`, on start and reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from vigil.db import session_scope
from vigil.incidents.models import Incident, IncidentStatus
from vigil.model.types import Model
from vigil.notify.announce import announce_pending, tell
from vigil.notify.config import AppriseChannel, NotifyConfig, SmtpChannel, WebhookChannel, notifications_of
from vigil.notify.escalation import AckUrl, escalate
from vigil.notify.models import ChangeKind
from vigil.notify.service import (
    Attempt,
    Claimed,
    claim_due,
    record_attempts,
    release_claims,
)
from vigil.notify.subscribers import CHANNEL_ID
from vigil.notify.transports import TransportError, Transports

__all__ = ["Dispatcher", "Sender"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Channel = AppriseChannel | WebhookChannel | SmtpChannel
Sender = Callable[[Channel, dict[str, Any], int], Awaitable[None]]

MAX_ATTEMPTS = 8  # with the defaults below: about 2 hours of trying
BACKOFF_BASE = 30.0  # seconds after the first failure; doubled each time
BACKOFF_CAP = 3600.0
LEASE_MARGIN = 60.0  # seconds beyond the longest a claimed delivery can take before it is due again
CONCURRENCY = 64  # deliveries being sent at once
SMTP_CONCURRENCY = 4  # messages at once per SMTP server (and per Apprise channel)
BLOCKING_THREADS = 16  # threads for the blocking libraries (smtplib, Apprise), all servers together
GATE_QUEUE = 2  # a gated channel holds at most this many times its gate's size of the slots (sending + waiting)
RECORD_BATCH = 500  # attempts recorded in one transaction at most
# Seconds between two looks when not woken: retries come due (backoff 30 s and more), reminders and escalations
# (minutes), what another process queued. Each look is up to three transactions on the single SQLite writer.
POLL_INTERVAL = 5.0
# Seconds a claim/record transaction should take at most on the writer thread (shared with the engine's writes):
# when one takes longer (large payloads, a busy machine), the next claims take proportionally fewer rows.
TRANSACTION_TARGET = 0.05


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _public_url() -> str:
    from vigil.config import Settings, get_settings

    try:
        return get_settings().public_url
    except Exception:  # settings not valid here (tools, tests): the default
        return str(Settings.model_fields["public_url"].default)


@dataclass(slots=True)
class _Gate:
    """At most ``size`` sends at once to one SMTP server (or one Apprise channel); ``held``: slots it holds."""

    size: int
    semaphore: asyncio.Semaphore
    held: int = 0

    @property
    def full(self) -> bool:
        return self.held >= GATE_QUEUE * self.size


@dataclass(slots=True)
class DispatcherStats:
    """What the dispatcher did since it was made (for benchmarks and the log)."""

    transactions: int = 0  # claim/record transactions
    claimed: int = 0
    recorded: int = 0
    released: int = 0  # claimed rows handed back because their channel's gate was full
    db_seconds: float = 0.0  # total time of those transactions (on the writer thread)
    db_seconds_max: float = 0.0
    batch_max: int = 0  # most attempts recorded in one transaction
    durations: list[float] = field(default_factory=list)  # of the last transactions (bounded)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = _utcnow,
        executor: Executor | None = None,
        concurrency: int = CONCURRENCY,
        smtp_concurrency: int = SMTP_CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        poll_interval: float = POLL_INTERVAL,
        sender: Sender | None = None,  # tests: instead of the transports (webhook, SMTP, Apprise)
        public_url: str | None = None,  # subscribers (0007): the start of their links; default: the settings'
    ) -> None:
        self._engine = engine
        self.clock = clock
        self._executor = executor
        self.concurrency = max(1, concurrency)
        self.smtp_concurrency = max(1, smtp_concurrency)
        self.max_attempts = max_attempts
        self.backoff = (backoff_base, backoff_cap)
        self._poll_interval = poll_interval
        self._sender = sender
        self.transports = Transports(connections=self.concurrency, threads=BLOCKING_THREADS)
        self.public_url = public_url or _public_url()
        self.config = NotifyConfig()
        self.owners: dict[str, str | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # a send ended (or stop): the loop looks whether to go again
        self._sending: set[asyncio.Task[None]] = set()
        self._finished: list[Attempt] = []  # attempts that ended, to record in the next transaction
        self._release: list[int] = []  # claimed rows handed back (their gate was full), in the next transaction
        self._gates: dict[tuple[str, ...], _Gate] = {}
        # The last attempt started per (channel, incident, subscriber address): one incident's messages to one
        # target go in the order of the outbox (opened before resolved), one after the other.
        self._last: dict[tuple[str, int | None, str | None], asyncio.Task[None]] = {}
        self._threads: asyncio.Semaphore | None = None
        self._more = False  # the last claim came back full: more is due
        self._poked = False  # woken: claim now (wake())
        self._announce = False  # woken by a person's change: announce it now (wake(announce=True))
        self._claim_limit = self.concurrency  # rows per claim, lowered while transactions take too long
        self.sent = 0
        self.failed_attempts = 0
        self.stats = DispatcherStats()
        # Escalation (issue 4): makes the ack link every message about an open incident carries (set by the
        # runtime from VIGIL_PUBLIC_URL and VIGIL_SECRET_KEY; None: no links).
        self.ack_url: AckUrl | None = None

    # -- the config and the incident worker's hook ---------------------------------------------------------
    def configure(self, model: Model) -> NotifyConfig:
        """Take the channels and routes of ``model`` (and its owners, for routing); return them with their issues."""
        config = notifications_of(model)
        # One assignment each: the worker thread reading them sees the old pair or the new one.
        self.owners = {c.id: c.owner for c in model.components.values()}
        self.config = config
        return config

    def enqueue(self, session: Session, incident: Incident, previous: IncidentStatus | None, now: datetime) -> None:
        """Queue the deliveries of this incident change, in the caller's transaction (the worker's hook)."""
        change = ChangeKind.OPENED if previous is None else ChangeKind.STATUS
        tell(
            session=session,
            config=self.config,
            owners=self.owners,
            incident=incident,
            change=change,
            previous=previous,
            now=now,
            ack_url=self.ack_url,  # escalation (issue 4): the ack link
        )

    def escalate(self) -> int:
        """Queue the reminders and escalations due on the clock (escalation, issue 4); return how many deliveries."""
        if not self.config.routes:
            return 0
        with session_scope(self._engine) as session:
            queued = escalate(
                session=session, config=self.config, owners=self.owners, now=self.clock(), ack_url=self.ack_url
            )
            return len(queued)

    def announce(self) -> int:
        """Queue the deliveries of the changes people made (vigil/notify/announce.py); return how many changes."""
        with session_scope(self._engine) as session:
            return announce_pending(
                session=session, config=self.config, owners=self.owners, now=self.clock(), ack_url=self.ack_url
            )

    # -- the database: one short transaction records what ended and claims what is due -------------------------
    async def _db(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def lease(self) -> timedelta:
        """How long a claim holds its rows: longer than a claimed delivery can take before it is recorded (a
        gated one waits at most GATE_QUEUE - 1 rounds of its gate, then sends; one timeout each) plus a margin."""
        timeouts = [c.timeout for c in self.config.channels.values()] or [10.0]
        return timedelta(seconds=(GATE_QUEUE + 1) * max(timeouts) + LEASE_MARGIN)

    def _transaction(
        self,
        attempts: list[Attempt],
        release: list[int],
        limit: int,
        exclude: tuple[set[str], set[str]],
    ) -> list[Claimed]:
        started = time.perf_counter()
        with session_scope(self._engine) as session:
            record_attempts(session=session, attempts=attempts, max_attempts=self.max_attempts, backoff=self.backoff)
            if release:
                release_claims(session=session, ids=release, now=self.clock())
            claimed = []
            if limit > 0:
                claimed = claim_due(
                    session=session,
                    now=self.clock(),
                    lease=self.lease(),
                    limit=limit,
                    exclude_channels=exclude[0],
                    exclude_subscriber_kinds=exclude[1],
                )
        took = time.perf_counter() - started
        if len(claimed) > 1 and took > TRANSACTION_TARGET:
            self._claim_limit = max(1, int(len(claimed) * TRANSACTION_TARGET / took))
        elif limit >= self._claim_limit:
            self._claim_limit = min(self.concurrency, self._claim_limit * 2)
        stats = self.stats
        stats.transactions += 1
        stats.claimed += len(claimed)
        stats.recorded += len(attempts)
        stats.released += len(release)
        stats.db_seconds += took
        stats.db_seconds_max = max(stats.db_seconds_max, took)
        stats.batch_max = max(stats.batch_max, len(attempts))
        stats.durations.append(took)
        del stats.durations[:-1000]
        return claimed

    async def _round(self, limit: int | None = None) -> int:
        """One transaction: record the attempts that ended, hand back released rows, claim up to the free slots;
        start sending what was claimed. Returns how many were started."""
        free = min(self.concurrency - len(self._sending), self._claim_limit) if limit is None else limit
        attempts, self._finished = self._finished[:RECORD_BATCH], self._finished[RECORD_BATCH:]
        release, self._release = self._release, []
        exclude = self._saturated()
        try:
            claimed = await self._db(lambda: self._transaction(attempts, release, free, exclude))
        except BaseException:
            self._finished[:0] = attempts  # recorded next time (their rows stay leased meanwhile)
            self._release[:0] = release
            raise
        self._more = free <= 0 or len(claimed) >= free
        return sum(1 for c in claimed if self._start(c))

    async def flush(self) -> None:
        """Record every attempt that ended (and hand back released rows) now."""
        while self._finished or self._release:
            await self._round(limit=0)

    # -- sending ------------------------------------------------------------------------------------------
    @staticmethod
    def _channel_gate(channel: Channel | None) -> tuple[str, ...] | None:
        """The gate of a channel: its SMTP server, or the Apprise channel itself; None (webhooks): no gate."""
        if isinstance(channel, SmtpChannel):
            return ("smtp", channel.host, str(channel.port))
        if isinstance(channel, AppriseChannel):
            return ("apprise", channel.id)
        return None

    def _gate_key(self, claimed: Claimed) -> tuple[str, ...] | None:
        if claimed.for_subscriber:
            target = claimed.subscriber
            mail = self.config.channels.get("subscribers")
            if target is None or target["kind"] != "email" or not isinstance(mail, SmtpChannel):
                return None
            return self._channel_gate(mail)
        return self._channel_gate(self.config.channels.get(claimed.channel_id))

    def _saturated(self) -> tuple[set[str], set[str]]:
        """The channel ids and subscriber kinds whose gate is full: the next claim leaves their rows."""
        full = {key for key, gate in self._gates.items() if gate.full}
        if not full:
            return set(), set()
        channels = {c.id for c in self.config.channels.values() if self._channel_gate(c) in full}
        kinds = {"email"} if "subscribers" in channels else set()
        return channels, kinds

    def _start(self, claimed: Claimed) -> bool:
        gate = None
        key = self._gate_key(claimed)
        if key is not None:
            gate = self._gates.get(key)
            if gate is None:
                size = self.smtp_concurrency
                gate = self._gates[key] = _Gate(size, asyncio.Semaphore(size))
            if gate.full:
                self._release.append(claimed.id)  # its server is busy enough: back to the outbox, untried
                return False
            gate.held += 1
        order = (claimed.channel_id, claimed.incident_id, (claimed.subscriber or {}).get("address"))
        before = self._last.get(order)
        task = asyncio.create_task(self._attempt(claimed, gate, before), name=f"vigil-notify-{claimed.id}")
        self._last[order] = task
        self._sending.add(task)
        task.add_done_callback(lambda done: self._done(done, order))
        return True

    def _done(self, task: asyncio.Task[None], order: tuple[str, int | None, str | None]) -> None:
        self._sending.discard(task)
        if self._last.get(order) is task:
            del self._last[order]
        self._wake.set()

    async def _attempt(self, claimed: Claimed, gate: _Gate | None, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:  # an earlier message of this incident to this target: after it
                await asyncio.wait([before])
            if gate is None:
                error, permanent = await self._send(claimed)
            else:
                if self._threads is None:
                    self._threads = asyncio.Semaphore(BLOCKING_THREADS)
                # Waiting for the gate is not part of the channel's timeout: only the attempt itself is.
                async with gate.semaphore, self._threads:
                    error, permanent = await self._send(claimed)
        finally:
            if gate is not None:
                gate.held -= 1
        if error is None:
            self.sent += 1
        else:
            self.failed_attempts += 1
            logger.warning("notification %d to %s failed: %s", claimed.id, claimed.channel_id, error)
        self._finished.append(Attempt(claimed.id, error, self.clock(), permanent))

    async def _send(self, claimed: Claimed) -> tuple[str | None, bool]:
        """Make one attempt; return its error (None: sent) and whether it is permanent."""
        channel = self.config.channels.get(claimed.channel_id)
        if not claimed.for_subscriber and channel is None:
            return "the channel is no longer in the config", True
        name = CHANNEL_ID if claimed.for_subscriber else claimed.channel_id
        try:
            if claimed.for_subscriber:
                await self._send_subscriber(claimed)
            else:
                assert channel is not None
                send = self._sender or self.transports.send
                await asyncio.wait_for(send(channel, claimed.payload, claimed.id), channel.timeout)
        except TransportError as exc:
            return str(exc), exc.permanent
        except TimeoutError:
            timeout = channel.timeout if channel is not None and not claimed.for_subscriber else None
            return ("no answer in time" if timeout is None else f"no answer within {timeout:g} s"), False
        except Exception as exc:  # a bug in a transport must not stop the others
            logger.exception("notification to %s crashed", name)
            return f"{type(exc).__name__}: {exc}", False
        return None, False

    async def _send_subscriber(self, claimed: Claimed) -> None:
        # Subscribers (0007): e-mail through the config's SMTP channel "subscribers", webhooks to their own URL.
        target = claimed.subscriber
        if target is None or target["status"] == "unsubscribed":
            raise TransportError("the subscriber is gone or unsubscribed", permanent=True)
        if target["status"] != "confirmed" and claimed.payload.get("change") != "confirm":
            raise TransportError("the subscriber is not confirmed", permanent=True)
        mail = self.config.channels.get("subscribers")
        timeout = mail.timeout if mail is not None else 10.0
        await asyncio.wait_for(
            self.transports.send_subscriber(
                target,
                claimed.payload,
                claimed.id,
                mail=mail if isinstance(mail, SmtpChannel) else None,
                public_url=self.public_url,
                timeout=timeout,
            ),
            timeout,
        )

    async def run_once(self, *, wait: bool = True) -> int:
        """Record what ended, claim the deliveries due now (as many as free slots allow) and start sending them;
        return how many were started.

        With ``wait`` (tests, tools) it returns when they are sent and recorded; a dispatcher that is not
        running then also closes its connections.
        """
        started = await self._round()
        if wait:
            while self._sending:
                await asyncio.gather(*list(self._sending), return_exceptions=True)
            await self.flush()
            if self._task is None:
                await self.transports.aclose()
        return started

    # -- life cycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="vigil-notify-dispatcher")

    async def stop(self) -> None:
        """Stop claiming; let the attempts under way end (within their timeouts) and record them; close the
        connections. What is still queued waits for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)
        try:
            await self.flush()
        except Exception:  # the database is away: the leases end and the rows are sent again
            logger.exception("the last notification attempts were not recorded; they will be tried again")
        await self.transports.aclose()

    def wake(self, *, announce: bool = False) -> None:
        """Claim now rather than at the next poll: deliveries were queued (the incident worker's commit), or, with
        ``announce``, a person changed an incident (its change is told now). Call it on the dispatcher's loop."""
        self._poked = True
        self._announce = self._announce or announce
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        next_escalation = 0.0
        while not self._stopping.is_set():
            try:
                self._poked = False
                announce, self._announce = self._announce, False
                if loop.time() >= next_escalation:
                    next_escalation = loop.time() + self._poll_interval
                    await self._db(self.escalate)  # reminders and escalation (issue 4), sent from the next claim
                    announce = True
                if announce:
                    await self._db(self.announce)  # changes people made (announce.py), sent from the next claim
                await self._round()
                failures = 0
            except Exception:
                self._more = False
                failures += 1
                if failures == 1:  # the database may be away: once per episode, not every second
                    logger.exception("notification round failed; retrying (the deliveries stay queued)")
                with contextlib.suppress(TimeoutError):  # a whole interval, even with attempts left to record
                    await asyncio.wait_for(self._stopping.wait(), self._poll_interval)
                continue
            await self._pause(loop.time() + self._poll_interval)

    async def _pause(self, deadline: float) -> None:
        """Wait for the next round: at once when more is due and a quarter of the slots is free; when every send
        has ended, to record them; else at ``deadline`` (new deliveries, escalation, retries that came due)."""
        loop = asyncio.get_running_loop()
        refill = max(1, self.concurrency // 4)
        while not self._stopping.is_set():
            self._wake.clear()
            if self._poked:
                return
            if self._more and self.concurrency - len(self._sending) >= refill:
                return
            if self._finished and not self._sending:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)
