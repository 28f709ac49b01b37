"""In-process event bus: status changes, alarms, positions and sync progress.

Publishers (the signalling core, the media service) must never wait on a slow subscriber such as a
browser on a bad link, so every subscriber has its own bounded queue and loses events (counted)
when it falls behind, instead of back-pressuring the signalling hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened; `data` is JSON-serialisable."""

    type: str
    data: dict[str, Any]
    at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "at": self.at, "data": self.data}


class Subscription:
    """A bounded queue of events for one consumer; iterate it with `async for`."""

    def __init__(self, bus: EventBus, maxsize: int, types: frozenset[str] | None) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.types = types
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self.types is not None and event.type not in self.types:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def get(self) -> Event | None:
        return await self._queue.get()

    def close(self) -> None:
        self._bus._subs.discard(self)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            ev = await self._queue.get()
            if ev is None:
                return
            yield ev


class EventBus:
    """Fan-out of events to any number of subscribers, never blocking the publisher."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0

    def publish(self, type: str, /, **data: Any) -> None:
        self.published += 1
        if not self._subs:
            return
        ev = Event(type, data)
        for sub in tuple(self._subs):
            sub._offer(ev)

    def subscribe(self, maxsize: int = 1000, types: set[str] | None = None) -> Subscription:
        sub = Subscription(self, maxsize, frozenset(types) if types else None)
        self._subs.add(sub)
        return sub

    @property
    def subscribers(self) -> int:
        return len(self._subs)
