"""The pool pings connections that sat idle, and only those, before handing them out (one
the driver already saw closed is replaced without a ping: see test_driver.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence.database import create_engine
from persistence.outages import is_lost_connection
from server.bootstrap import build_engine
from server.settings import Settings
from tests.frozen_proxy import frozen_proxy


async def _backend_of(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        pid = await conn.scalar(sa.text("select pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def _terminate(db: AsyncEngine, pid: int) -> None:
    async with db.connect() as conn:
        # With a timeout, it returns once the backend has exited (PostgreSQL 14+).
        await conn.execute(sa.text("select pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await conn.commit()
    await asyncio.sleep(0.05)


async def test_an_idle_connection_whose_backend_died_is_replaced_before_use(
    postgres_url: str, db: AsyncEngine
) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=0.1)
    try:
        dead = await _backend_of(engine)
        await _terminate(db, dead)
        await asyncio.sleep(0.15)  # now idle for longer than the threshold
        assert await _backend_of(engine) != dead
    finally:
        await engine.dispose()


async def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    ping = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(self)
        ping(self)  # type: ignore[no-untyped-call]  # SQLAlchemy leaves the adapter untyped

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=60)
    try:
        first = await _backend_of(engine)
        assert await _backend_of(engine) == first
        assert pings == []
    finally:
        await engine.dispose()


async def test_a_statement_ended_by_a_shutdown_error_never_returns_its_connection_to_the_pool(
    postgres_url: str,
) -> None:
    # A restart's "terminating connection due to administrator command" (57P01) can arrive
    # before the socket's end: the driver then does not yet see the connection closed, and
    # a pool that took its word handed out a connection stuck mid-protocol ("another
    # operation is in progress": INTERNAL). Raised here on a live backend, so that only the
    # error decides.
    shutdown = "do $$ begin raise exception 'shutting down' using errcode = '57P01'; end $$"
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=60)
    try:
        first = await _backend_of(engine)
        with pytest.raises(DBAPIError) as raised:
            async with engine.connect() as conn:
                await conn.execute(sa.text(shutdown))
        assert is_lost_connection(raised.value)
        assert await _backend_of(engine) != first
    finally:
        await engine.dispose()


async def test_a_connection_the_server_stopped_answering_is_dropped_without_waiting_on_it(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement a frozen server never answers fails at the command timeout, and its
    connection is invalidated. Dropping that connection must not wait on the server again:
    SQLAlchemy's asyncpg adapter closes an invalidated connection politely first (asyncpg's
    close, which waits for the cancelled statement's cancel request and the server's goodbye
    for up to the command timeout), so every request that met a frozen server paid the
    command timeout twice (the e2e frozen-database test saw 4 s where 2 were promised)."""
    closes: list[asyncpg.Connection] = []
    close = asyncpg.Connection.close

    async def polite(self: asyncpg.Connection, **options: Any) -> None:
        closes.append(self)
        await close(self, **options)

    monkeypatch.setattr(asyncpg.Connection, "close", polite)
    async with frozen_proxy(postgres_url) as proxy:
        engine = create_engine(proxy.url, pool_size=1, max_overflow=0, command_timeout_seconds=0.3)
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("select 1"))
            proxy.freeze()
            with pytest.raises(TimeoutError) as raised:  # what command_timeout raises
                async with engine.connect() as conn:
                    await conn.execute(sa.text("select 1"))
            assert is_lost_connection(raised.value)
            link = proxy.links[0]
            assert link.held, "the statement went out and was never answered"
            await asyncio.wait_for(link.closed_by_client.wait(), 10)
            assert closes == [], "the unanswered connection was closed politely: it waited"
        finally:
            await engine.dispose()


async def test_under_more_requests_than_connections_the_pool_keeps_its_connections(
    postgres_url: str,
) -> None:
    """On the server's default pool, requests beyond its connections wait for one; none is
    closed when given back to be opened again by the next request. (With 10 + 10 overflow,
    SQLAlchemy closed an overflow connection given back while 10 sat in the pool: at 32
    concurrent W2 callers, ~20 connections a second were opened and closed.)"""
    fields = Settings.model_fields
    settings = Settings.model_construct(
        db_pool_size=fields["db_pool_size"].default,
        db_max_overflow=fields["db_max_overflow"].default,
        db_pool_timeout_seconds=10.0,
    )
    engine = build_engine(settings, postgres_url)
    opened: list[object] = []
    closed: list[object] = []
    sa.event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
    sa.event.listen(engine.sync_engine.pool, "close", lambda *_: closed.append(1))
    bound = settings.db_pool_size + settings.db_max_overflow

    async def caller() -> None:
        for _ in range(20):
            async with engine.connect() as conn:
                await conn.execute(sa.text("select pg_sleep(0.002)"))
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(caller() for _ in range(bound + 12)))
        assert closed == []
        assert len(opened) <= bound
    finally:
        await engine.dispose()


async def test_after_a_burst_a_steady_flow_reuses_the_connection_given_back_last(
    postgres_url: str,
) -> None:
    """A burst opens every connection; afterwards one unit of work at a time gets the one
    given back last (its statements already prepared), not each in turn (first in, first
    out: each unit of work met a connection that had not prepared its statements)."""
    engine = create_engine(postgres_url, pool_size=4, max_overflow=0)
    held = asyncio.Semaphore(0)
    release = asyncio.Event()

    async def hold() -> None:
        async with engine.connect() as conn:
            await conn.execute(sa.text("select 1"))
            held.release()
            await release.wait()

    try:
        burst = [asyncio.create_task(hold()) for _ in range(4)]
        for _ in burst:
            await held.acquire()
        release.set()
        await asyncio.gather(*burst)
        backends = {await _backend_of(engine) for _ in range(6)}
        assert len(backends) == 1
    finally:
        await engine.dispose()
