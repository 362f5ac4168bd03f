"""Read-only units of work keep their autocommit connections between uses
(persistence.database.ReadConnections): no pool checkout per read, and never a dead one, a
failed one, or one a writer waits for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import Unavailable
from persistence.database import create_engine, read_connections
from persistence.unit_of_work import SqlUnitOfWork


async def _read_backend(engine: AsyncEngine) -> int:
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        pid = await uow.connection.scalar(sa.text("select pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def _is_connected(db: AsyncEngine, pid: int) -> bool:
    async with db.connect() as conn:
        found = await conn.scalar(
            sa.text("select count(*) from pg_stat_activity where pid = :pid"), {"pid": pid}
        )
    return bool(found == 1)


async def _terminate(db: AsyncEngine, pid: int) -> None:
    async with db.connect() as conn:
        await conn.execute(sa.text("select pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await conn.commit()
    await asyncio.sleep(0.05)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        postgres_url, pool_size=2, max_overflow=0, pool_timeout_seconds=1.0
    )  # keeps one: half the pool
    yield engine
    await engine.dispose()


async def test_read_only_units_take_a_kept_connection_without_a_pool_checkout(
    engine: AsyncEngine,
) -> None:
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
    pids = [await _read_backend(engine) for _ in range(3)]
    assert len(set(pids)) == 1
    assert len(checkouts) == 1  # the first read's; the next two took it from the kept ones
    reads = read_connections(engine)
    assert reads is not None
    assert reads.kept == 1


async def test_a_pool_of_one_keeps_nothing(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        assert read_connections(engine) is None
        await _read_backend(engine)  # through the pool, as before
    finally:
        await engine.dispose()


async def test_a_kept_connection_whose_backend_died_is_not_handed_out(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    dead = await _read_backend(engine)
    await _terminate(db, dead)
    assert await _read_backend(engine) != dead


async def test_a_kept_connection_idle_past_the_threshold_is_pinged_and_replaced_if_dead(
    postgres_url: str, db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url, pool_size=2, max_overflow=0, ping_after_idle_seconds=0.1)
    try:
        dead = await _read_backend(engine)
        await _terminate(db, dead)
        # As if the driver had not yet seen the socket's end (the ping must find it out).
        monkeypatch.setattr("asyncpg.connection.Connection.is_closed", lambda self: False)
        await asyncio.sleep(0.15)
        assert await _read_backend(engine) != dead
    finally:
        monkeypatch.undo()
        await engine.dispose()


async def test_a_read_that_lost_its_connection_does_not_keep_it(engine: AsyncEngine) -> None:
    shutdown = "do $$ begin raise exception 'shutting down' using errcode = '57P01'; end $$"
    first = await _read_backend(engine)
    with pytest.raises(Unavailable):
        async with SqlUnitOfWork(engine, read_only=True) as uow:
            await uow.connection.execute(sa.text(shutdown))
    reads = read_connections(engine)
    assert reads is not None
    assert reads.kept == 0
    assert await _read_backend(engine) != first


@pytest.mark.parametrize("read_only", [True, False])
async def test_a_unit_that_failed_gives_its_kept_connection_back_to_the_pool(
    engine: AsyncEngine, read_only: bool
) -> None:
    # A read-only unit of work, or an autocommit one: both take the kept connections.
    await _read_backend(engine)
    with pytest.raises(sa.exc.DBAPIError):
        async with SqlUnitOfWork(engine, read_only=read_only, autocommit=not read_only) as uow:
            await uow.connection.execute(sa.text("select 1 / 0"))
    reads = read_connections(engine)
    assert reads is not None
    assert reads.kept == 0
    await _read_backend(engine)  # and reads go on


async def test_a_writer_gets_a_kept_connection_back_when_the_pool_has_none_idle(
    engine: AsyncEngine,
) -> None:
    # Two reads at once: one connection is kept, the other goes back to the pool.
    await asyncio.gather(_read_backend(engine), _read_backend(engine))
    reads = read_connections(engine)
    assert reads is not None
    assert reads.kept == 1
    async with SqlUnitOfWork(engine) as first, SqlUnitOfWork(engine) as second:
        # The second writer found the pool empty: the kept one went back (no 1 s timeout).
        assert await first.connection.scalar(sa.text("select 1")) == 1
        assert await second.connection.scalar(sa.text("select 1")) == 1
    assert reads.kept == 0


async def test_disposing_the_engine_closes_the_kept_connections(
    postgres_url: str, db: AsyncEngine
) -> None:
    engine = create_engine(postgres_url, pool_size=2, max_overflow=0)
    pid = await _read_backend(engine)
    assert await _is_connected(db, pid)
    await engine.dispose()
    await asyncio.sleep(0.05)
    assert not await _is_connected(db, pid)


async def test_a_connection_kept_past_the_recycle_age_goes_back_through_the_pool(
    engine: AsyncEngine,
) -> None:
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
    reads = read_connections(engine)
    assert reads is not None
    await _read_backend(engine)
    await _read_backend(engine)
    assert len(checkouts) == 1  # kept in steady use

    reads.recycle_seconds = 0.0  # every kept one is now past its age
    await _read_backend(engine)

    assert len(checkouts) == 2  # the pool's checkout, which recycles what is past its age


async def test_an_autocommit_unit_writes_on_a_kept_connection_each_statement_on_its_own(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    # runInference's group writes: one statement each, no pool checkout, no BEGIN/COMMIT.
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
    told: list[bool] = []
    reader = await _read_backend(engine)
    async with SqlUnitOfWork(engine, told.append, autocommit=True) as uow:
        pid = await uow.connection.scalar(sa.text("select pg_backend_pid()"))
        await uow.connection.execute(sa.text("create table kept_write (n int)"))
        await uow.connection.execute(sa.text("insert into kept_write values (1)"))
        taken = len(checkouts)
        async with db.connect() as other:  # committed as it ran, before any commit()
            assert await other.scalar(sa.text("select count(*) from kept_write")) == 1
        uow.events.appended = True
        await uow.commit()  # only tells the listeners
    assert (pid, taken, told) == (reader, 1, [False])
    assert await _read_backend(engine) == pid  # given back to the kept ones
    async with db.begin() as conn:
        await conn.execute(sa.text("drop table kept_write"))


async def test_a_frozen_server_costs_a_take_one_ping_of_the_kept_not_one_each(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ping of a frozen server waits out the command timeout: after one failed, the
    other kept connections go back to the pool unpinged (a request met four 2 s pings in a
    row in tests/e2e/test_database_restart.py)."""
    engine = create_engine(postgres_url, pool_size=8, max_overflow=0, ping_after_idle_seconds=0.1)
    reads = read_connections(engine)
    assert reads is not None
    try:
        held = [await reads.take() for _ in range(4)]
        for conn in held:
            await reads.give_back(conn)
        assert reads.kept == 4
        await asyncio.sleep(0.15)  # idle past the threshold: each would need a ping
        pinged: list[object] = []
        fetchrow = asyncpg.connection.Connection.fetchrow

        async def frozen(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> object:
            if query == ";":
                pinged.append(self)
                await asyncio.sleep(0.05)
                raise TimeoutError  # what command_timeout raises on a frozen server
            return await fetchrow(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", frozen)
        conn = await reads.take()
        monkeypatch.undo()
        await reads.give_back(conn)
        # One kept connection's ping, and at most the pool's own one at its checkout.
        assert len(pinged) <= 2
        assert reads.kept <= 1
    finally:
        monkeypatch.undo()
        await engine.dispose()


async def test_no_connection_free_within_the_pool_timeout_says_busy_not_down(
    postgres_url: str,
) -> None:
    """Every connection in use past the pool timeout: UNAVAILABLE that says so (it said "the
    database is unavailable" while the database answered every statement)."""
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, pool_timeout_seconds=0.2)
    try:
        async with SqlUnitOfWork(engine) as holder:
            assert await holder.connection.scalar(sa.text("select 1")) == 1
            for read_only in (True, False):
                with pytest.raises(Unavailable, match="stayed in use past the pool timeout"):
                    async with SqlUnitOfWork(engine, read_only=read_only):
                        pass
        assert await _read_backend(engine) > 0  # free again: reads go on
    finally:
        await engine.dispose()


async def test_a_connection_given_back_while_a_unit_waits_in_the_pool_goes_to_it(
    postgres_url: str,
) -> None:
    """A read gave its connection back while another read waited in the pool's checkout
    (every connection in use): it was kept for whichever read came next, and the waiting one
    starved until the pool timeout (UNAVAILABLE for 17% of W1's requests at 32 callers)."""
    engine = create_engine(postgres_url, pool_size=2, max_overflow=0, pool_timeout_seconds=1.0)
    release_reader, release_writer = asyncio.Event(), asyncio.Event()
    holding = asyncio.Semaphore(0)

    async def hold(read_only: bool, release: asyncio.Event) -> None:
        async with SqlUnitOfWork(engine, read_only=read_only) as uow:
            assert await uow.connection.scalar(sa.text("select 1")) == 1
            holding.release()
            await release.wait()

    try:
        reader = asyncio.create_task(hold(True, release_reader))
        writer = asyncio.create_task(hold(False, release_writer))
        await holding.acquire()
        await holding.acquire()  # both connections in use
        waiting = asyncio.create_task(_read_backend(engine))
        await asyncio.sleep(0.1)  # in the pool's checkout
        release_reader.set()
        await reader
        assert await waiting > 0  # the reader's connection, not the pool timeout
        release_writer.set()
        await writer
    finally:
        release_reader.set()
        release_writer.set()
        await engine.dispose()
