"""The dispatcher: sends the due deliveries of the outbox, retries with backoff, records every attempt.

Started and stopped by the runtime. Every ``poll_interval`` seconds it claims the due deliveries
(:func:`~vigil.notify.service.claim_due`), sends them at most ``concurrency`` at a time, each bounded by its
channel's timeout, and records each attempt as soon as it ends (delivery row and incident timeline), so a slow
or dead channel never holds back the others. Database work runs on ``executor`` (the runtime's SQLite writer
thread); network work is asyncio, or a thread for the blocking libraries, so the engine never waits.

It is also the incident worker's notification hook (:meth:`Dispatcher.enqueue`): it holds the channels and
routes of the config in force (:meth:`configure`, on start and reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from vigil.db import session_scope
from vigil.incidents.models import Incident, IncidentStatus
from vigil.model.types import Model
from vigil.notify.config import AppriseChannel, NotifyConfig, SmtpChannel, WebhookChannel, notifications_of
from vigil.notify.escalation import AckUrl, add_ack_url, escalate
from vigil.notify.service import Claimed, claim_due, enqueue_deliveries, record_attempt
from vigil.notify.subscribers import fan_out_incident
from vigil.notify.transports import TransportError, send, send_subscriber

__all__ = ["Dispatcher", "Sender"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Channel = AppriseChannel | WebhookChannel | SmtpChannel
Sender = Callable[[Channel, dict[str, Any], int], Awaitable[None]]

MAX_ATTEMPTS = 8  # with the defaults below: about 2 hours of trying
BACKOFF_BASE = 30.0  # seconds after the first failure; doubled each time
BACKOFF_CAP = 3600.0
LEASE_MARGIN = 60.0  # seconds beyond the channel timeout before a claimed, unrecorded delivery is due again


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _public_url() -> str:
    from vigil.config import Settings, get_settings

    try:
        return get_settings().public_url
    except Exception:  # settings not valid here (tools, tests): the default
        return str(Settings.model_fields["public_url"].default)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] = _utcnow,
        executor: Executor | None = None,
        concurrency: int = 8,
        max_attempts: int = MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        poll_interval: float = 1.0,
        sender: Sender = send,
        public_url: str | None = None,  # subscribers (0007): the start of their links; default: the settings'
    ) -> None:
        self._engine = engine
        self.clock = clock
        self._executor = executor
        self.concurrency = concurrency
        self._inflight: set[asyncio.Task[None]] = set()
        self.max_attempts = max_attempts
        self.backoff = (backoff_base, backoff_cap)
        self._poll_interval = poll_interval
        self._sender = sender
        self.public_url = public_url or _public_url()
        self.config = NotifyConfig()
        self.owners: dict[str, str | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.sent = 0
        self.failed_attempts = 0
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
        if self.config.routes:
            rows = enqueue_deliveries(
                session=session, config=self.config, owners=self.owners, incident=incident, previous=previous, now=now
            )
            for row in rows:  # escalation (issue 4): the ack link
                row.payload = add_ack_url(row.payload, incident, self.ack_url, now)
        fan_out_incident(session=session, incident=incident, previous=previous, now=now)  # subscribers (0007)

    def escalate(self) -> int:
        """Queue the reminders and escalations due on the clock (escalation, issue 4); return how many deliveries."""
        if not self.config.routes:
            return 0
        with session_scope(self._engine) as session:
            queued = escalate(
                session=session, config=self.config, owners=self.owners, now=self.clock(), ack_url=self.ack_url
            )
            return len(queued)

    # -- sending ------------------------------------------------------------------------------------------
    async def _db(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def _claim(self, limit: int) -> list[Claimed]:
        timeouts = [c.timeout for c in self.config.channels.values()] or [10.0]
        lease = timedelta(seconds=max(timeouts) + LEASE_MARGIN)
        with session_scope(self._engine) as session:
            return claim_due(session=session, now=self.clock(), lease=lease, limit=limit)

    def _record(self, claimed: Claimed, error: str | None, permanent: bool) -> None:
        with session_scope(self._engine) as session:
            record_attempt(
                session=session,
                delivery_id=claimed.id,
                error=error,
                now=self.clock(),
                max_attempts=self.max_attempts,
                backoff=self.backoff,
                permanent=permanent,
            )

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
            send_subscriber(
                target,
                claimed.payload,
                claimed.id,
                mail=mail if isinstance(mail, SmtpChannel) else None,
                public_url=self.public_url,
                timeout=timeout,
            ),
            timeout,
        )

    async def _attempt(self, claimed: Claimed) -> None:
        channel = self.config.channels.get(claimed.channel_id)
        error: str | None = None
        permanent = False
        if claimed.for_subscriber:
            try:
                await self._send_subscriber(claimed)
            except TransportError as exc:
                error, permanent = str(exc), exc.permanent
            except TimeoutError:
                error = "no answer in time"
            except Exception as exc:  # a bug in a transport must not stop the others
                logger.exception("notification to a subscriber crashed")
                error = f"{type(exc).__name__}: {exc}"
        elif channel is None:
            error, permanent = "the channel is no longer in the config", True
        else:
            try:
                await asyncio.wait_for(self._sender(channel, claimed.payload, claimed.id), channel.timeout)
            except TransportError as exc:
                error, permanent = str(exc), exc.permanent
            except TimeoutError:
                error = f"no answer within {channel.timeout:g} s"
            except Exception as exc:  # a bug in a transport must not stop the others
                logger.exception("notification to %s crashed", claimed.channel_id)
                error = f"{type(exc).__name__}: {exc}"
        if error is None:
            self.sent += 1
        else:
            self.failed_attempts += 1
            logger.warning("notification %d to %s failed: %s", claimed.id, claimed.channel_id, error)
        await self._db(lambda: self._record(claimed, error, permanent))

    async def run_once(self, *, wait: bool = True) -> int:
        """Start an attempt for the deliveries due now, as many as free slots allow; return how many.

        With ``wait`` (tests, stop) it returns when they are recorded; the loop does not wait, so that a channel
        taking its whole timeout does not hold back the next round's deliveries to the others.
        """
        free = self.concurrency - len(self._inflight)
        # Claimed no more than can be sent at once: a claimed row waiting for a slot could outlive its lease.
        claimed = await self._db(lambda: self._claim(free)) if free > 0 else []
        tasks = [asyncio.create_task(self._attempt(c), name=f"vigil-notify-{c.id}") for c in claimed]
        for task in tasks:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if wait:
            await asyncio.gather(*tasks)
        return len(claimed)

    # -- life cycle ---------------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="vigil-notify-dispatcher")

    async def stop(self) -> None:
        """Stop after the current round (whose attempts end within their timeouts); the rest waits for a restart."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._poll_interval)
            if self._stopping.is_set():
                return
            try:
                await self._db(self.escalate)  # reminders and escalation (issue 4), sent from the next round
                await self.run_once(wait=False)
                failures = 0
            except Exception:
                failures += 1
                if failures == 1:  # the database may be away: once per episode, not every second
                    logger.exception("notification round failed; retrying (the deliveries stay queued)")
