"""The outbox's signal path: NOTIFY after commit (coalesced), LISTEN and replay by event id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.events import Event, EventType
from persistence.tables import events

logger = logging.getLogger(__name__)

CHANNEL = "assay_events"
# Submissions became due (created, retried, released): inference workers LISTEN here.
WORK_CHANNEL = "assay_work"
# The payload of a hint whose transactions appended no PRINCIPAL_REVOKED. Any other payload
# (the empty one of earlier versions included) may stand for a revocation.
PLAIN_HINT = "plain"
EventHandler = Callable[[Sequence[Event]], Awaitable[None]]
# "caught_up": listening, and every event committed before the last notification that may
# carry a revocation delivered;
# "pending": such a notification came in and its events are not delivered yet;
# "disconnected": not listening (events are replayed after reconnecting).
ListenerState = Literal["caught_up", "pending", "disconnected"]
StateObserver = Callable[[ListenerState], None]
# Events a listener reads at once; a read that returns fewer is caught up.
EVENTS_PER_READ = 500


# The listener's own reads, on its LISTEN connection (asyncpg itself): no pool checkout and
# no SQLAlchemy execution per read, which cost ~200 us of CPU a read at S2's rate.
_EVENTS_AFTER = (
    "SELECT id, type, owner_id, subject_id, payload, created_at FROM events"
    " WHERE id > $1 ORDER BY id LIMIT $2"
)
_EVENTS_WITH_IDS = (
    "SELECT id, type, owner_id, subject_id, payload, created_at FROM events"
    " WHERE id = ANY($1::bigint[]) ORDER BY id"
)
# Bounds each of those reads (a server that stops answering): the listener then reconnects.
_READ_TIMEOUT_SECONDS = 30.0
# How the listening connection shows in pg_stat_activity.
LISTENER_APPLICATION_NAME = "assay-event-listener"
# The notifier's hints: one statement (its own transaction) for every channel of a tick.
_NOTIFY = "SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS hints (c, p)"
# Bounds its connect and its statement (a server that stops answering): the tick's hint is
# then dropped, and the next poke connects again.
_NOTIFY_TIMEOUT_SECONDS = 10.0
NOTIFIER_APPLICATION_NAME = "assay-event-notifier"


def _event_of(row: asyncpg.Record) -> Event:
    id_, type_, owner_id, subject_id, payload, created_at = row
    return Event(
        id=id_,
        type=EventType(type_),
        owner_id=owner_id,
        subject_id=subject_id,
        payload=payload,
        created_at=created_at,
    )


async def listening_connection(dsn: str) -> asyncpg.Connection:
    """A connection of the listener's own whose json values (the events' payloads) decode as
    SQLAlchemy's do here (orjson, persistence/database.py); jsonb too, as the payloads were
    before migration 0016 (new code may run before the migration does)."""
    conn = await asyncpg.connect(
        dsn, server_settings={"application_name": LISTENER_APPLICATION_NAME}
    )
    try:
        for name in ("json", "jsonb"):
            await conn.set_type_codec(
                name, schema="pg_catalog", encoder=str, decoder=orjson.loads, format="text"
            )
    except BaseException:
        await conn.close()
        raise
    return conn


async def latest_event_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)))
            ).scalar_one()
        )


class OutboxNotifier:
    """Coalesces commit signals into at most one NOTIFY statement per tick, outside any
    writing transaction.

    A transaction that NOTIFYs takes a database-wide lock at commit; sending the hint
    from its own tiny statement after the writer committed keeps writers independent. The
    statement goes on a connection of the notifier's own (asyncpg itself, opened at the
    first poke, closed by `close` or after a failure): no pool checkout, SQLAlchemy
    execution and transaction round trips per hint, which cost ~1.2 ms of CPU a hint
    (~0.3 ms now), about 5% of the API process's core at S2's ~46 hints a second.
    """

    def __init__(self, engine: AsyncEngine, tick_seconds: float = 0.01) -> None:
        self._dsn = asyncpg_dsn(engine)
        self._tick = tick_seconds
        self._wanted: dict[str, str] = {}  # channel -> payload
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    def poke(self, channel: str = CHANNEL, *, is_plain: bool = False) -> None:
        """`is_plain`: the committed events hold no revocation (see PLAIN_HINT); a tick's
        hint is plain only when every poke of it was."""
        is_plain = is_plain and self._wanted.get(channel, PLAIN_HINT) == PLAIN_HINT
        self._wanted[channel] = PLAIN_HINT if is_plain else ""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._wanted:
            channels, self._wanted = sorted(self._wanted.items()), {}
            try:
                await self._notify(channels)
            except Exception:
                # Listeners also poll, so a lost hint only delays delivery.
                logger.warning("NOTIFY failed; listeners will catch up by polling", exc_info=True)
                await self._disconnect()
            await asyncio.sleep(self._tick)

    async def _notify(self, channels: Sequence[tuple[str, str]]) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await asyncpg.connect(
                self._dsn,
                timeout=_NOTIFY_TIMEOUT_SECONDS,
                server_settings={"application_name": NOTIFIER_APPLICATION_NAME},
            )
        names, payloads = [c for c, _ in channels], [p for _, p in channels]
        await conn.execute(_NOTIFY, names, payloads, timeout=_NOTIFY_TIMEOUT_SECONDS)

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self._disconnect()


def asyncpg_dsn(engine: AsyncEngine) -> str:
    url = make_url(engine.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class EventListener:
    """LISTENs on a dedicated connection and hands each new event, in id order, to `handler`.

    Reconnects after a dropped connection and replays from the last id seen; polls every
    `poll_seconds` as well, so a lost or merged notification loses nothing. `on_state`
    hears when it is caught up, when a notification's events are pending, and when it stops
    listening: what relies on hearing every event at once (cached sign-ins) must not rely on
    it unless caught up.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        handler: EventHandler,
        *,
        poll_seconds: float = 1.0,
        on_state: StateObserver | None = None,
    ) -> None:
        self._engine = engine
        self._handler = handler
        self._on_state: StateObserver = on_state or (lambda _: None)
        self._notifications = 0
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self.last_id = 0
        self.events_per_read = EVENTS_PER_READ
        self.reads = 0  # of the events table, since it started
        # Ids are taken at insert but become visible at commit, so a smaller id can appear
        # after a larger one. Skipped ids are re-read until they show up or age out (a
        # rolled-back insert leaves a permanent hole).
        self._gaps: dict[int, float] = {}
        self.gap_timeout_seconds = 120.0

    async def run(self, stop: asyncio.Event) -> None:
        started = False
        while not stop.is_set():
            try:
                if not started:
                    self.last_id = await latest_event_id(self._engine)
                    started = True
                await self._listen(stop)
            except Exception as error:
                # Whatever failed (the connection, the server, the pool empty past its
                # timeout), the listener goes on: the next connect replays from last_id. One
                # that ended would leave every subscriber of this process silent for good.
                logger.warning("event listener failed (%r); reconnecting", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await listening_connection(asyncpg_dsn(self._engine))
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            conn.add_termination_listener(self._on_notify)  # wake up to notice the drop
            while not stop.is_set() and not conn.is_closed():
                seen = self._notifications
                await self._drain(conn)
                if seen == self._notifications:  # none came in during the drain
                    self._on_state("caught_up")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                self._wake.clear()
            if conn.is_closed():
                raise OSError("listening connection closed")
        finally:
            self._on_state("disconnected")
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _on_notify(self, *heard: object) -> None:
        # (connection, pid, channel, payload) for a notification; (connection,) at a drop.
        if heard[3:] != (PLAIN_HINT,):
            # It may carry a revocation: what trusts this process to have heard every one
            # (cached sign-ins) must not until its events are delivered.
            self._notifications += 1
            self._on_state("pending")
        self._wake.set()

    async def _drain(self, conn: asyncpg.Connection) -> None:
        await self._fill_gaps(conn)
        while True:
            self.reads += 1
            rows = await conn.fetch(
                _EVENTS_AFTER, self.last_id, self.events_per_read, timeout=_READ_TIMEOUT_SECONDS
            )
            batch = [_event_of(row) for row in rows]
            if batch:
                self._note_gaps(batch)
                await self._deliver(batch)
                self.last_id = batch[-1].id
            if len(batch) < self.events_per_read:
                # Caught up as of this read. What commits after it is followed by its own
                # NOTIFY (which sets _wake, so the loop drains again) or found by the poll:
                # no second read to learn that nothing is left (one read a prediction at S2).
                return

    def _note_gaps(self, batch: Sequence[Event]) -> None:
        now = time.monotonic()
        expected = self.last_id + 1
        for event in batch:
            for missing in range(expected, event.id):
                self._gaps.setdefault(missing, now)
            expected = event.id + 1

    async def _fill_gaps(self, conn: asyncpg.Connection) -> None:
        if not self._gaps:
            return
        self.reads += 1
        rows = await conn.fetch(_EVENTS_WITH_IDS, list(self._gaps), timeout=_READ_TIMEOUT_SECONDS)
        late = [_event_of(row) for row in rows]
        for event in late:
            del self._gaps[event.id]
        cutoff = time.monotonic() - self.gap_timeout_seconds
        self._gaps = {i: seen for i, seen in self._gaps.items() if seen > cutoff}
        if late:
            await self._deliver(late)

    async def _deliver(self, batch: Sequence[Event]) -> None:
        try:
            await self._handler(batch)
        except Exception:
            logger.exception("event handler failed for events %d..%d", batch[0].id, batch[-1].id)


class WorkListener:
    """LISTENs on WORK_CHANNEL on a dedicated connection and calls `on_work` for each
    notification, and after each (re)connect, since what was sent while it was not listening
    is lost. Workers still poll, slowly, for a notification lost anyway."""

    def __init__(
        self, engine: AsyncEngine, on_work: Callable[[], None], *, check_seconds: float = 1.0
    ) -> None:
        self._engine = engine
        self._on_work = on_work
        self._check = check_seconds
        self.is_listening = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._listen(stop)
            except Exception as error:  # as the event listener's: never end while serving
                logger.warning("work listener failed (%r); reconnecting", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._check)

    async def _listen(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self._engine))
        try:
            await conn.add_listener(WORK_CHANNEL, self._heard)
            self.is_listening = True
            self._on_work()
            while not stop.is_set() and not conn.is_closed():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._check)
        finally:
            self.is_listening = False
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _heard(self, *_: object) -> None:
        self._on_work()
