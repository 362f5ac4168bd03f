"""Shared fixtures: one embedded PostgreSQL per test session, migrated once, emptied per test."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence import migrate
from persistence.database import create_engine
from persistence.embedded import EmbeddedPostgres
from persistence.tables import metadata


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="assay-test-pg-"))
    server = EmbeddedPostgres(root)
    url = server.start()
    try:
        asyncio.run(migrate.upgrade_url(url))
        yield url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture(scope="session")
def statements() -> StatementCounter:
    return StatementCounter()


@pytest.fixture(scope="session")
async def engine(postgres_url: str, statements: StatementCounter) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=5, on_statement=statements)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """The engine on an empty database."""
    await empty_tables(engine)
    return engine


async def empty_tables(engine: AsyncEngine, tries: int = 5) -> None:
    """TRUNCATE every table. A server of an e2e module may still be writing (its workers, its
    loops): its transaction and the TRUNCATE can take their locks in orders that deadlock, and
    PostgreSQL then ends one of them (seen in CI: the TRUNCATE, holding events and waiting
    for outbox_cursors, against the webhook fan-out, holding its cursor's row and reading
    events). The TRUNCATE is tried again then."""
    names = ", ".join(table.name for table in metadata.sorted_tables)
    for attempt in range(1, tries + 1):
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != DEADLOCK_DETECTED or attempt == tries:
                raise
            await asyncio.sleep(0.05 * attempt)


DEADLOCK_DETECTED = "40P01"


class _Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_EXECUTOR_ERRORS = _Collected()
logging.getLogger("graph.execution.extension").addHandler(_EXECUTOR_ERRORS)


@pytest.fixture(autouse=True)
def executor_errors() -> Iterator[list[logging.LogRecord]]:
    """An executor that fails and lets the reference path answer is a bug the caller never
    sees: any test during which one does fails (a test that provokes one on purpose
    empties the list)."""
    _EXECUTOR_ERRORS.records.clear()
    yield _EXECUTOR_ERRORS.records
    failed = [r.getMessage() for r in _EXECUTOR_ERRORS.records]
    _EXECUTOR_ERRORS.records.clear()
    if failed:
        pytest.fail(f"an executor failed and fell back: {failed}")
