"""The in-process broker: matching, bounded queues that cut off slow consumers, limits, memo."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from domain.errors import Unavailable
from domain.events import Event, EventType
from graph.realtime.broker import EventBroker, SlowConsumer


def event(n: int, owner: uuid.UUID, kind: EventType = EventType.SUBMISSION_CREATED) -> Event:
    return Event(
        id=n,
        type=kind,
        owner_id=owner,
        subject_id=uuid.uuid4(),
        payload={},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_a_subscriber_gets_only_the_events_it_matches() -> None:
    broker = EventBroker()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    with broker.subscribe(lambda e: e.owner_id == mine) as subscriber:
        await broker.publish([event(1, theirs), event(2, mine), event(3, theirs)])
        stream = subscriber.events()
        got = await anext(stream)
    assert got.id == 2
    assert subscriber.queue.empty()


async def test_a_slow_consumer_is_cut_off_instead_of_growing_its_queue() -> None:
    broker = EventBroker(queue_size=3)
    owner = uuid.uuid4()
    with broker.subscribe(lambda e: True) as subscriber:
        await broker.publish([event(n, owner) for n in range(10)])
        assert subscriber.overflowed
        assert subscriber.queue.qsize() <= 3
        stream = subscriber.events()
        received = [(await anext(stream)).id, (await anext(stream)).id]
        with pytest.raises(SlowConsumer):
            await anext(stream)
    assert received == [1, 2]  # the oldest made room for the cut-off marker


async def test_unsubscribing_stops_delivery() -> None:
    broker = EventBroker()
    with broker.subscribe(lambda e: True):
        assert broker.subscriber_count == 1
    assert broker.subscriber_count == 0
    await broker.publish([event(1, uuid.uuid4())])


def test_connections_per_user_are_limited_and_released() -> None:
    broker = EventBroker(max_connections_per_user=2)
    user = uuid.uuid4()
    assert broker.connect(user)
    assert broker.connect(user)
    assert not broker.connect(user)
    assert broker.connect(uuid.uuid4())
    broker.disconnect(user)
    assert broker.connect(user)


async def test_an_events_subject_is_read_once_for_all_subscribers() -> None:
    broker = EventBroker()
    reads = 0

    async def read() -> str:
        nonlocal reads
        reads += 1
        return "submission"

    results = [await broker.load_once(7, read) for _ in range(50)]
    assert results == ["submission"] * 50
    assert reads == 1
    await broker.load_once(8, read)
    assert reads == 2


async def test_the_memo_keeps_what_was_read_but_not_the_task_that_read_it() -> None:
    broker = EventBroker()
    message: contextvars.ContextVar[object] = contextvars.ContextVar("message")
    held = Held()
    message.set(held)  # what a subscription message's context holds (its loaders)
    with broker.subscribe(lambda e: True):
        assert await broker.load_once(7, _returns("submission")) == "submission"
        await asyncio.sleep(0)  # the read's done-callback runs
        message.set(None)
        reference = weakref.ref(held)
        del held
        gc.collect()
        assert reference() is None, "the memo keeps the reading task's context alive"
        assert await broker.load_once(7, _returns("another")) == "submission"


async def test_a_failed_read_is_not_remembered() -> None:
    broker = EventBroker()

    async def fails() -> str:
        raise ConnectionError("database went away")

    with broker.subscribe(lambda e: True):
        with pytest.raises(ConnectionError):
            await broker.load_once(7, fails)
        await asyncio.sleep(0)
        assert await broker.load_once(7, _returns("submission")) == "submission"


async def test_the_memo_is_emptied_when_the_last_subscriber_leaves() -> None:
    broker = EventBroker()
    with broker.subscribe(lambda e: True):
        await broker.load_once(7, _returns("submission"))
        await asyncio.sleep(0)
    with broker.subscribe(lambda e: True):
        assert await broker.load_once(7, _returns("read again")) == "read again"


class Held:
    pass


def _returns(value: str) -> Callable[[], Awaitable[str]]:
    async def read() -> str:
        return value

    return read


async def test_a_read_the_database_could_not_answer_is_tried_again() -> None:
    broker = EventBroker()
    broker.read_retry_pauses = (0.0, 0.0)
    attempts = 0

    async def fails_once() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise Unavailable()
        return "submission"

    with broker.subscribe(lambda e: True):
        assert await broker.load_once(7, fails_once) == "submission"
    assert attempts == 2

    async def never_answers() -> str:
        nonlocal attempts
        attempts += 1
        raise Unavailable()

    attempts = 0
    with broker.subscribe(lambda e: True), pytest.raises(Unavailable):
        await broker.load_once(8, never_answers)
    assert attempts == 3  # once, then after each pause
