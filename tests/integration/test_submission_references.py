"""A submission's owner and model are checked once per INSERT statement (migration 0014), and
the rule a foreign key held still holds: no submission names a user or model that is not
there, users and models are never deleted, and neither their ids nor a submission's owner
and model change."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from persistence.tables import models, submissions, users

pytestmark = pytest.mark.integration


async def _parents(conn: AsyncConnection) -> tuple[uuid.UUID, uuid.UUID]:
    user = (
        await conn.execute(
            sa.insert(users)
            .values(subject=f"sub-{uuid.uuid4()}", email="a@example.com", name="A")
            .returning(users.c.id)
        )
    ).scalar_one()
    model = (
        await conn.execute(
            sa.insert(models)
            .values(
                name=f"m-{uuid.uuid4()}",
                version="1",
                input_schema={},
                output_schema={},
                runtime="sklearn",
            )
            .returning(models.c.id)
        )
    ).scalar_one()
    return user, model


def _rows(owner: uuid.UUID, model: uuid.UUID, count: int) -> list[dict[str, object]]:
    return [{"owner_id": owner, "model_id": model, "input": {"n": n}} for n in range(count)]


def _cause(error: exc.DBAPIError) -> asyncpg.PostgresError:
    cause = error.orig.__cause__ if error.orig is not None else None
    assert isinstance(cause, asyncpg.PostgresError), repr(error)
    return cause


async def _count(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(submissions))).one()[0])


async def test_rows_with_existing_owners_and_models_are_inserted(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        user, model = await _parents(conn)
        other_user, other_model = await _parents(conn)
        rows = _rows(user, model, 500) + _rows(other_user, other_model, 500)
        await conn.execute(sa.insert(submissions), rows)
        await conn.execute(sa.insert(submissions).values(rows[:2]))  # one multi-row statement
        assert await _count(conn) == 1002


@pytest.mark.parametrize("missing", ["owner", "model"])
async def test_one_row_naming_a_missing_parent_fails_the_whole_statement(
    db: AsyncEngine, missing: str
) -> None:
    async with db.connect() as conn:
        user, model = await _parents(conn)
        await conn.commit()
        stranger = uuid.uuid4()
        bad = _rows(stranger, model, 1) if missing == "owner" else _rows(user, stranger, 1)
        rows = _rows(user, model, 999)
        rows[500:500] = bad
        with pytest.raises(exc.IntegrityError) as raised:
            await conn.execute(sa.insert(submissions).values(rows))
        await conn.rollback()
        cause = _cause(raised.value)
        assert isinstance(cause, asyncpg.ForeignKeyViolationError)
        column, table = ("owner_id", "users") if missing == "owner" else ("model_id", "models")
        assert cause.constraint_name == f"fk_submissions_{column}_{table}"
        assert f"Key ({column})=({stranger}) is not present" in (cause.detail or "")
        assert await _count(conn) == 0


@pytest.mark.parametrize("table", [users, models], ids=["users", "models"])
async def test_users_and_models_are_never_deleted_nor_renumbered(
    db: AsyncEngine, table: sa.Table
) -> None:
    async with db.connect() as conn:
        await _parents(conn)
        await conn.commit()
        # Even with no submission naming it: a check could otherwise be overtaken.
        with pytest.raises(exc.IntegrityError) as raised:
            await conn.execute(sa.delete(table))
        await conn.rollback()
        assert "are never deleted" in str(_cause(raised.value))
        with pytest.raises(exc.IntegrityError) as raised:
            await conn.execute(sa.update(table).values(id=uuid.uuid4()))
        await conn.rollback()
        assert "never changes" in str(_cause(raised.value))
        # Other changes go through, and one that sets the id to itself.
        await conn.execute(sa.update(table).values(id=table.c.id, updated_at=sa.func.now()))
        await conn.commit()
        assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).one()[0] == 1


async def test_a_submission_keeps_its_owner_and_model(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        user, model = await _parents(conn)
        other_user, other_model = await _parents(conn)
        await conn.execute(sa.insert(submissions), _rows(user, model, 1))
        await conn.commit()
        for change in ({"owner_id": other_user}, {"model_id": other_model}):
            with pytest.raises(exc.IntegrityError) as raised:
                await conn.execute(sa.update(submissions).values(**change))
            await conn.rollback()
            assert "never change" in str(_cause(raised.value))
        await conn.execute(sa.update(submissions).values(owner_id=user, status="RUNNING"))
        await conn.commit()
        read = sa.select(submissions.c.owner_id, submissions.c.model_id)
        assert tuple((await conn.execute(read)).one()) == (user, model)
