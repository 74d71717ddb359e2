"""The internal stream of state changes: what later parts (incidents, notifications) subscribe to.

The durable record is the ``state_changes`` outbox in the database (readers that must not miss anything follow
its ids); this bus is the low-latency path inside one process. A slow subscriber loses its oldest events (and
is told how many) rather than slowing the engine down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from vigil.monitors.models import ComponentState

__all__ = ["EventBus", "StateEvent", "Subscription"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StateEvent:
    """A component (``monitor_id`` None) or a monitor moved from one state to another."""

    at: datetime
    component_id: str
    monitor_id: str | None
    from_state: ComponentState
    to_state: ComponentState
    cause: str | None = None  # the upstream component whose failure this one follows from
    reason: str = ""


class Subscription:
    """A bounded queue of events; iterate it with ``async for``."""

    def __init__(self, bus: EventBus, limit: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[StateEvent] = asyncio.Queue(maxsize=limit)
        self.lost = 0

    def offer(self, event: StateEvent) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                logger.warning("a slow event subscriber lost %d events", self.lost)
        self._queue.put_nowait(event)

    async def get(self) -> StateEvent:
        return await self._queue.get()

    def pending(self) -> list[StateEvent]:
        """Return and remove every event waiting, without waiting for more."""
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def close(self) -> None:
        self._bus.unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[StateEvent]:
        while True:
            yield await self._queue.get()


class EventBus:
    """Fan-out of :class:`StateEvent` to subscribers, within one event loop."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []

    def subscribe(self, *, limit: int = 10_000) -> Subscription:
        subscription = Subscription(self, limit)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, event: StateEvent) -> None:
        for subscription in self._subscribers:
            subscription.offer(event)
