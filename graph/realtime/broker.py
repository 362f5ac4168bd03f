"""This process's event broker: fans the events its listener delivers out to its WebSocket
subscribers, bounded per subscriber, and counts each user's connections."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from uuid import UUID

from domain.errors import Unavailable
from domain.events import Event

MEMO_EVENTS = 1024
# Before each read again of an event's subject that the database could not answer: a
# subscription that ended on a moment's outage would miss every change after it.
READ_RETRY_PAUSES = (0.1, 0.5, 1.0)
T = TypeVar("T")


class SlowConsumer(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Loaded:
    """An event's subject as read, without the task (and context) that read it."""

    value: Any


class Subscriber:
    def __init__(self, matches: Callable[[Event], bool], queue_size: int) -> None:
        self.matches = matches
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=queue_size)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed or not self.matches(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Dropping silently would lose events; growing would lose memory. Cut it off.
            self.overflowed = True
            self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                raise SlowConsumer
            yield event


class EventBroker:
    """Fans events out to this process's subscribers; bounded per subscriber."""

    def __init__(self, queue_size: int = 256, max_connections_per_user: int = 20) -> None:
        self.queue_size = queue_size
        self.max_connections_per_user = max_connections_per_user
        self._subscribers: set[Subscriber] = set()
        self._connections: Counter[UUID] = Counter()
        self._loads: OrderedDict[int, asyncio.Future[Any] | _Loaded] = OrderedDict()
        self.read_retry_pauses: Sequence[float] = READ_RETRY_PAUSES

    async def load_once(self, event_id: int, load: Callable[[], Awaitable[T]]) -> T:
        """The object an event is about, read once per event for all of this process's
        subscribers rather than once per subscriber.

        Only the value is kept once read: the reading task carries a copy of its first
        subscriber's context (that message's loaders and everything they read), and a kept
        task would keep all of it alive after the message and the socket are gone."""
        memo = self._loads.get(event_id)
        if memo is None:
            reading = asyncio.ensure_future(self._retrying(load))
            memo = self._loads[event_id] = reading
            reading.add_done_callback(lambda done: self._settle(event_id, done))
            while len(self._loads) > MEMO_EVENTS:
                self._loads.popitem(last=False)
        if isinstance(memo, _Loaded):
            return cast(T, memo.value)
        return cast(T, await asyncio.shield(memo))

    async def _retrying(self, load: Callable[[], Awaitable[T]]) -> T:
        """The read, tried again after each pause while the database is unavailable."""
        for pause in self.read_retry_pauses:
            try:
                return await load()
            except Unavailable:
                await asyncio.sleep(pause)
        return await load()

    def _settle(self, event_id: int, reading: asyncio.Future[Any]) -> None:
        if self._loads.get(event_id) is not reading:
            return  # evicted, or cleared when the last subscriber left
        if reading.cancelled() or reading.exception() is not None:
            del self._loads[event_id]  # the next subscriber reads again
        else:
            self._loads[event_id] = _Loaded(reading.result())

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def publish(self, events: Sequence[Event]) -> None:
        for subscriber in list(self._subscribers):
            for event in events:
                subscriber.offer(event)

    @contextlib.contextmanager
    def subscribe(self, matches: Callable[[Event], bool]) -> Iterator[Subscriber]:
        subscriber = Subscriber(matches, self.queue_size)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            if not self._subscribers:
                self._loads.clear()  # nobody left to read them for

    def connect(self, user_id: UUID) -> bool:
        if self._connections[user_id] >= self.max_connections_per_user:
            return False
        self._connections[user_id] += 1
        return True

    def disconnect(self, user_id: UUID) -> None:
        self._connections[user_id] -= 1
        if self._connections[user_id] <= 0:
            del self._connections[user_id]
