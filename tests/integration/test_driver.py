"""Hot reads on asyncpg itself (persistence/driver.py), against a real PostgreSQL: the same
entities as through SQLAlchemy, counted, inside transactions when there is one, and a dead
connection never handed out again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import Unavailable
from domain.pagination import Keyset, PageRequest
from domain.principal import Identity
from domain.submissions import SubmissionStatus
from persistence import tables
from persistence.database import create_engine, without_driver_reads
from persistence.unit_of_work import SqlUnitOfWork
from tests.factories import make_asset, make_model, make_result, make_submission, make_user

Read = Callable[[SqlUnitOfWork], Awaitable[Any]]


class Routes:
    """Statements through SQLAlchemy's execution layer, and statements counted in all."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.through_sqlalchemy = 0
        self.counted = 0

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _seen(*_: object) -> None:
            self.through_sqlalchemy += 1

    def count(self) -> None:
        self.counted += 1


@pytest.fixture
async def routed(postgres_url: str, db: AsyncEngine) -> AsyncIterator[tuple[AsyncEngine, Routes]]:
    holder: list[Routes] = []
    engine = create_engine(
        postgres_url, pool_size=1, max_overflow=0, on_statement=lambda: holder[0].count()
    )
    holder.append(Routes(engine))
    yield engine, holder[0]
    await engine.dispose()


async def _seed(db: AsyncEngine) -> dict[str, Any]:
    ann, bob = await make_user(db, "ann@example.com", groups=["ops"]), await make_user(db)
    model = await make_model(db)
    base = datetime(2026, 5, 1, tzinfo=UTC)
    subs = [
        await make_submission(
            db,
            ann if i % 3 else bob,
            model,
            status="SUCCEEDED" if i % 2 else "PENDING",
            input={"i": i, "nested": [1, None, "ü"]},
            created_at=base + timedelta(minutes=i),
        )
        for i in range(9)
    ]
    results = [
        await make_result(db, s, confidence=None if i % 2 else 0.25) for i, s in enumerate(subs[:4])
    ]
    assets = [
        await make_asset(db, ann, status=s) for s in ("AVAILABLE", "PENDING_UPLOAD", "AVAILABLE")
    ]
    async with db.begin() as conn:
        await conn.execute(
            sa.insert(tables.submission_assets),
            [
                {"submission_id": subs[1], "asset_id": assets[0], "position": 0},
                {"submission_id": subs[1], "asset_id": assets[2], "position": 1},
            ],
        )
    return {"users": [ann, bob], "model": model, "subs": subs, "results": results, "assets": assets}


def _reads(seed: dict[str, Any]) -> dict[str, Read]:
    owners = [*seed["users"], uuid.uuid4()]
    first = PageRequest(first=2)

    async def after(uow: SqlUnitOfWork) -> Any:
        (page, *_) = await uow.submissions.list_for_owners(owners[:1], first, None)
        last = page.items[-1]
        request = PageRequest(first=2, after=Keyset(last.created_at, last.id))
        return await uow.submissions.list_for_owners(owners, request, None)

    return {
        "users": lambda uow: uow.users.get_many([*owners, owners[0]]),
        "user by subject": lambda uow: uow.users.get_by_subject("sub-ann@example.com"),
        "unknown subject": lambda uow: uow.users.get_by_subject("nobody"),
        "models": lambda uow: uow.models.get_many([seed["model"], uuid.uuid4()]),
        "submissions": lambda uow: uow.submissions.get_many([*seed["subs"], uuid.uuid4()]),
        "submission pages": lambda uow: uow.submissions.list_for_owners(owners, first, None),
        "filtered pages": lambda uow: uow.submissions.list_for_owners(
            owners, first, SubmissionStatus.SUCCEEDED
        ),
        "pages after a cursor": after,
        "submission counts": lambda uow: uow.submissions.count_for_owners(owners, None),
        "filtered counts": lambda uow: uow.submissions.count_for_owners(
            owners, SubmissionStatus.PENDING
        ),
        "results": lambda uow: uow.results.get_many([*seed["results"], uuid.uuid4()]),
        "results of submissions": lambda uow: uow.results.list_for_submissions(seed["subs"]),
        "assets": lambda uow: uow.assets.get_many(seed["assets"]),
        "asset pages": lambda uow: uow.assets.list_for_owners(owners, first, None),
        "asset counts": lambda uow: uow.assets.count_for_owners(owners, None),
        "assets of submissions": lambda uow: uow.assets.list_for_submissions(seed["subs"][:3]),
    }


async def test_the_driver_reads_what_sqlalchemy_reads(
    routed: tuple[AsyncEngine, Routes], db: AsyncEngine
) -> None:
    engine, routes = routed
    reads = _reads(await _seed(db))
    for name, read in reads.items():
        async with SqlUnitOfWork(engine) as uow:  # a transaction: through SQLAlchemy
            expected = await read(uow)
        before = routes.through_sqlalchemy, routes.counted
        async with SqlUnitOfWork(engine, read_only=True) as uow:  # autocommit: on the driver
            found = await read(uow)
        assert found == expected, name
        assert expected or name == "unknown subject", f"{name}: nothing seeded to compare"
        assert routes.through_sqlalchemy == before[0], f"{name} went through SQLAlchemy"
        assert routes.counted > before[1], f"{name} was not counted"


async def test_reads_in_a_transaction_see_its_own_writes(
    routed: tuple[AsyncEngine, Routes], db: AsyncEngine
) -> None:
    engine, routes = routed
    identity = Identity("sub-new", "new@example.com", "New", (), datetime.now(UTC))
    async with SqlUnitOfWork(engine) as uow:
        written = await uow.users.upsert_from_identity(identity, datetime.now(UTC))
        before = routes.through_sqlalchemy
        assert await uow.users.get_by_subject("sub-new") == written
        assert await uow.users.get_many([written.id]) == [written]
        assert routes.through_sqlalchemy == before + 2
        # not committed: invisible elsewhere, and gone after the rollback
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        assert await uow.users.get_by_subject("sub-new") is None


async def test_a_connection_that_died_is_not_handed_out_again(
    routed: tuple[AsyncEngine, Routes], db: AsyncEngine
) -> None:
    engine, _ = routed  # a pool of one connection: the next unit of work would get it again
    await make_user(db, "ann@example.com")
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        pid = (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        async with db.connect() as other:
            # With a timeout, it returns once the backend has exited (PostgreSQL 14+).
            await other.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        with pytest.raises(Exception):  # noqa: B017, PT011  # asyncpg's, whichever it is
            await uow.users.get_by_subject("sub-ann@example.com")

    async with SqlUnitOfWork(engine, read_only=True) as uow:
        found = await uow.users.get_by_subject("sub-ann@example.com")
    assert found is not None
    assert found.email == "ann@example.com"


async def _terminate(db: AsyncEngine, pid: int) -> None:
    async with db.connect() as other:
        # With a timeout, it returns once the backend has exited (PostgreSQL 14+).
        await other.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


@pytest.mark.parametrize("through_sqlalchemy", [False, True])
async def test_a_connection_lost_in_a_unit_of_work_is_unavailable(
    routed: tuple[AsyncEngine, Routes], db: AsyncEngine, through_sqlalchemy: bool
) -> None:
    engine, _ = routed
    if through_sqlalchemy:
        without_driver_reads(engine)

    async def read_after_the_backend_died() -> None:
        async with SqlUnitOfWork(engine, read_only=True) as uow:
            pid = (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            await _terminate(db, pid)
            await asyncio.sleep(0.1)  # the driver reads the goodbye: "connection is closed"
            await uow.users.get_by_subject("sub-ann@example.com")

    with pytest.raises(Unavailable):
        await read_after_the_backend_died()


async def test_a_connection_that_died_in_the_pool_is_replaced_on_checkout(
    routed: tuple[AsyncEngine, Routes], db: AsyncEngine
) -> None:
    engine, _ = routed  # a pool of one: the next unit of work gets the same connection
    await make_user(db, "ann@example.com")
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        pid = (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    await _terminate(db, pid)  # a database restart while nothing was in flight
    await asyncio.sleep(0.1)
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        found = await uow.users.get_by_subject("sub-ann@example.com")
    assert found is not None


async def test_without_driver_reads_every_statement_goes_through_sqlalchemy(
    routed: tuple[AsyncEngine, Routes], db: AsyncEngine
) -> None:
    engine, routes = routed
    await make_user(db, "ann@example.com")
    without_driver_reads(engine)
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        before = routes.through_sqlalchemy
        assert await uow.users.get_by_subject("sub-ann@example.com") is not None
    assert routes.through_sqlalchemy == before + 1
