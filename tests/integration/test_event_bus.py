"""The outbox's signal path on a real PostgreSQL: notify, listen, reconnect, replay, gaps."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.events import Event, EventType, NewEvent, principal_revoked
from domain.models import ModelDefinition
from domain.principal import Principal
from domain.services import owned, submissions
from persistence.database import create_engine
from persistence.event_bus import (
    LISTENER_APPLICATION_NAME,
    NOTIFIER_APPLICATION_NAME,
    EventListener,
    OutboxNotifier,
    WorkListener,
)
from persistence.tables import events
from server.bootstrap import unit_of_work_factory
from server.workers import WorkBell
from tests.factories import make_user
from tests.integration.conftest import IRIS_INPUT


class Received:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.arrived = asyncio.Event()

    async def __call__(self, batch: Sequence[Event]) -> None:
        self.events.extend(batch)
        self.arrived.set()

    async def until(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def _append(engine: AsyncEngine, owner: uuid.UUID, count: int) -> None:
    rows = [
        {
            "type": EventType.SUBMISSION_CREATED.value,
            "owner_id": owner,
            "subject_id": uuid.uuid4(),
            "payload": {"n": n},
        }
        for n in range(count)
    ]
    async with engine.begin() as conn:
        await conn.execute(sa.insert(events), rows)


@pytest.fixture
async def listening(db: AsyncEngine) -> AsyncIterator[tuple[EventListener, Received]]:
    received = Received()
    # A long poll interval: only a NOTIFY (or a reconnect) can wake the listener quickly.
    listener = EventListener(db, received, poll_seconds=30.0)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await asyncio.sleep(0.5)  # connected and LISTENing
    yield listener, received
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_notify_after_commit_wakes_the_listener(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    _, received = listening
    owner = await make_user(db)
    notifier = OutboxNotifier(db)
    await _append(db, owner, 3)
    notifier.poke()
    await received.until(3, within=5.0)
    assert [e.payload["n"] for e in received.events] == [0, 1, 2]
    await notifier.close()


async def test_only_a_hint_that_may_carry_a_revocation_makes_the_listener_pending(
    db: AsyncEngine,
) -> None:
    # Under a steady flow of events, a listener made "pending" by every hint left cached
    # sign-ins unused nearly all the time: every request signed in against the database.
    states: list[str] = []
    received = Received()
    listener = EventListener(db, received, poll_seconds=30.0, on_state=states.append)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await asyncio.sleep(0.5)  # connected and LISTENing
    uow, notifier = unit_of_work_factory(db)
    owner = await make_user(db)
    created = NewEvent(EventType.SUBMISSION_CREATED, owner, uuid.uuid4(), {})
    try:
        async with uow() as writer:
            await writer.events.append([created])
            await writer.commit()
        await received.until(1)
        after_plain = len(states)
        async with uow() as writer:
            await writer.events.append([created, principal_revoked(owner, "deactivated")])
            await writer.commit()
        await received.until(3)
    finally:
        stop.set()
        await notifier.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert "pending" not in states[:after_plain]
    assert "pending" in states[after_plain:]


async def test_many_pokes_coalesce_into_few_notifies(db: AsyncEngine) -> None:
    notifier = OutboxNotifier(db, tick_seconds=0.05)
    async with db.connect() as conn:
        raw = await conn.get_raw_connection()
        heard: list[str] = []
        driver = raw.driver_connection
        assert driver is not None
        await driver.add_listener("assay_events", lambda *args: heard.append(str(args[-1])))
        for _ in range(100):
            notifier.poke()
        await asyncio.sleep(0.5)
        await notifier.close()
        await asyncio.sleep(0.2)
        assert 1 <= len(heard) <= 3


async def _notifier_backends(db: AsyncEngine) -> set[int]:
    """Every notifier's backend on the server (other tests' apps may have left theirs)."""
    async with db.connect() as conn:
        found = await conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": NOTIFIER_APPLICATION_NAME},
        )
        return {row.pid for row in found}


async def test_the_notifier_hints_every_channel_of_a_tick_on_one_connection_it_closes(
    db: AsyncEngine,
) -> None:
    heard: list[tuple[str, str]] = []
    others = await _notifier_backends(db)
    notifier = OutboxNotifier(db, tick_seconds=0.05)
    async with db.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for channel in ("assay_events", "assay_work"):
            await driver.add_listener(channel, lambda *args: heard.append((args[2], args[3])))
        notifier.poke(is_plain=True)
        notifier.poke("assay_work")
        await asyncio.sleep(0.3)
        assert sorted(heard) == [("assay_events", "plain"), ("assay_work", "")]
        ours = await _notifier_backends(db) - others
        assert len(ours) == 1
        for _ in range(3):  # later ticks reuse it
            notifier.poke()
            await asyncio.sleep(0.1)
        assert await _notifier_backends(db) - others == ours
        assert [c for c, _ in heard].count("assay_events") == 4
        await notifier.close()
    assert not await _notifier_backends(db) & ours


async def test_the_notifier_connects_again_after_its_connection_dropped(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    _, received = listening
    owner = await make_user(db)
    others = await _notifier_backends(db)
    notifier = OutboxNotifier(db, tick_seconds=0.05)
    try:
        await _append(db, owner, 1)
        notifier.poke()
        await received.until(1)
        [pid] = await _notifier_backends(db) - others
        async with db.begin() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(0.2)
        # Whether this one is sent on the dead connection (lost, logged) or asyncpg had seen
        # the drop already (a new one at once), a later hint is heard.
        notifier.poke()
        await asyncio.sleep(0.3)
        await _append(db, owner, 1)
        notifier.poke()
        await received.until(2, within=5.0)  # the listener polls only every 30 s
        [again] = await _notifier_backends(db) - others
        assert again != pid
    finally:
        await notifier.close()


async def test_a_dropped_connection_reconnects_and_replays_what_it_missed(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    _, received = listening
    owner = await make_user(db)
    await _append(db, owner, 2)
    notifier = OutboxNotifier(db)
    notifier.poke()
    await received.until(2)
    await notifier.close()
    async with db.begin() as conn:
        killed = await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"
            ),
            {"name": LISTENER_APPLICATION_NAME},
        )
        assert killed.all(), "the listener's connection was not found"
    # Written while the listener is down, and never notified: the replay must find them.
    await _append(db, owner, 3)
    await received.until(5, within=10.0)
    assert [e.payload["n"] for e in received.events] == [0, 1, 0, 1, 2]
    assert len({e.id for e in received.events}) == 5


async def test_a_drain_reads_again_only_after_a_full_read(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    listener, received = listening
    owner = await make_user(db)
    notifier = OutboxNotifier(db)
    try:
        reads = listener.reads
        await _append(db, owner, 3)
        notifier.poke()
        await received.until(3)
        await asyncio.sleep(0.3)  # a second read, if any, is done by now
        assert listener.reads - reads == 1  # three events, fewer than a read takes

        reads = listener.reads
        listener.events_per_read = 2
        await _append(db, owner, 3)
        notifier.poke()
        await received.until(6)
        await asyncio.sleep(0.3)
        assert listener.reads - reads == 2  # a full read (2), then the last one
    finally:
        await notifier.close()
    assert [e.payload for e in received.events] == [{"n": n} for n in (0, 1, 2, 0, 1, 2)]


async def test_the_listener_delivers_each_event_as_the_table_holds_it(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    _, received = listening
    owner = await make_user(db)
    notifier = OutboxNotifier(db)
    payload = {"text": "é ✓", "n": 1.5, "nested": {"list": [1, None, True]}, "none": None}
    async with db.begin() as conn:
        await conn.execute(
            sa.insert(events).values(
                type=EventType.RESULT_CREATED.value,
                owner_id=owner,
                subject_id=uuid.uuid4(),
                payload=payload,
            )
        )
    notifier.poke()
    await received.until(1)
    await notifier.close()
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(events).order_by(events.c.id.desc()))).first()
    assert row is not None
    [event] = received.events
    assert (event.id, event.type.value, event.owner_id, event.subject_id) == (
        row.id,
        row.type,
        row.owner_id,
        row.subject_id,
    )
    assert (event.payload, event.created_at) == (payload, row.created_at)
    assert isinstance(event.owner_id, uuid.UUID)
    assert event.created_at.tzinfo is not None


async def test_payloads_stored_as_jsonb_as_before_migration_0016_are_delivered_decoded(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    # New code may run before the migration that makes the column json does.
    _, received = listening
    owner = await make_user(db)
    notifier = OutboxNotifier(db)
    async with db.begin() as conn:
        await conn.execute(sa.text("ALTER TABLE events ALTER payload TYPE jsonb"))
    try:
        await _append(db, owner, 2)
        notifier.poke()
        await received.until(2)
    finally:
        await notifier.close()
        async with db.begin() as conn:
            await conn.execute(sa.text("ALTER TABLE events ALTER payload TYPE json"))
    assert [e.payload for e in received.events] == [{"n": 0}, {"n": 1}]


async def test_an_id_committed_late_is_still_delivered(
    db: AsyncEngine, listening: tuple[EventListener, Received]
) -> None:
    _, received = listening
    owner = await make_user(db)
    notifier = OutboxNotifier(db)
    async with db.connect() as slow:
        await slow.begin()
        await slow.execute(
            sa.insert(events).values(
                type=EventType.ASSET_AVAILABLE.value,
                owner_id=owner,
                subject_id=uuid.uuid4(),
                payload={"late": True},
            )
        )
        await _append(db, owner, 1)  # a larger id, committed first
        notifier.poke()
        await received.until(1)
        await slow.commit()
    notifier.poke()
    await received.until(2)
    assert received.events[-1].payload == {"late": True}
    await notifier.close()


async def test_a_commit_that_queues_work_wakes_this_process_at_once_and_others_by_notify(
    db: AsyncEngine, model_definitions: list[ModelDefinition]
) -> None:
    here, elsewhere = WorkBell(), asyncio.Event()
    listener = WorkListener(db, elsewhere.set, check_seconds=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    try:
        async with asyncio.timeout(10):
            await elsewhere.wait()  # set on connecting, for what was sent before it listened
        elsewhere.clear()
        wake = here.subscribe()
        uow, notifier = unit_of_work_factory(db, here)
        [model] = await owned.register_models(
            uow(), [d for d in model_definitions if d.name == "iris-species"]
        )
        assert not wake.is_set(), "a commit that queued no work woke the workers"

        await submissions.create_batch(
            uow(), _principal(await make_user(db)), model.id, [IRIS_INPUT], clock=_now
        )
        assert wake.is_set(), "this process's workers were not rung after the commit"
        async with asyncio.timeout(10):  # a bound on a hang, not a measure of speed
            await elsewhere.wait()
        await notifier.close()
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


def _now() -> datetime:
    return datetime.now(UTC)


def _principal(user_id: uuid.UUID) -> Principal:
    return Principal(user_id=user_id, subject="s", groups=(), is_admin=False)


async def test_a_pool_with_no_free_connection_for_a_moment_does_not_end_the_listener(
    postgres_url: str, db: AsyncEngine
) -> None:
    """The listener's first read (the latest id, through the pool) found the pool empty past
    its timeout (a busy CI machine: sqlalchemy's TimeoutError, neither an OSError nor
    asyncpg's): it must try again and then deliver, not end for good and leave every
    subscriber of the process silent. (Its drains read on its own LISTEN connection.)"""
    tight = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout_seconds=0.2)
    received = Received()
    listener = EventListener(tight, received, poll_seconds=0.2)
    stop = asyncio.Event()
    owner = await make_user(db)
    try:
        async with tight.connect():  # the only pooled connection, held past the timeout
            task = asyncio.create_task(listener.run(stop))
            await asyncio.sleep(1.0)
            assert not task.done(), task.exception()
        await asyncio.sleep(1.5)  # tried again, connected and LISTENing
        await _append(db, owner, 2)
        notifier = OutboxNotifier(db)
        notifier.poke()
        await received.until(2, within=10.0)
        await notifier.close()
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await tight.dispose()
