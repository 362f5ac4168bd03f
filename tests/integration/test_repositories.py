"""Repositories against PostgreSQL: the claim query under concurrency, its fence, user upserts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.principal import Identity
from domain.submissions import Submission, SubmissionStatus
from persistence.tables import submissions
from persistence.unit_of_work import SqlUnitOfWork
from tests.factories import make_model, make_submission, make_user

LEASE = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


async def _seed_pending(db: AsyncEngine, count: int) -> set[UUID]:
    owner = await make_user(db)
    model = await make_model(db)
    past = _now() - timedelta(seconds=5)
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        {"id": ident, "owner_id": owner, "model_id": model, "input": {"n": n}}
        | {
            "status": "PENDING",
            "available_at": past,
            "created_at": past + timedelta(microseconds=n),
        }
        for n, ident in enumerate(ids)
    ]
    async with db.begin() as conn:
        await conn.execute(sa.insert(submissions), rows)
    return set(ids)


async def _claim(db: AsyncEngine, limit: int = 10) -> list[Submission]:
    async with SqlUnitOfWork(db) as uow:
        now = _now()
        claimed = await uow.submissions.claim(limit, now, now + LEASE)
        await uow.commit()
    return claimed


async def _claimer(db: AsyncEngine) -> list[UUID]:
    taken: list[UUID] = []
    while batch := await _claim(db):
        taken.extend(s.id for s in batch)
        await asyncio.sleep(0)
    return taken


async def test_concurrent_claimers_take_every_submission_exactly_once(db: AsyncEngine) -> None:
    seeded = await _seed_pending(db, 200)

    per_claimer = await asyncio.gather(*(_claimer(db) for _ in range(4)))

    taken = [ident for claimed in per_claimer for ident in claimed]
    assert len(taken) == len(set(taken)), "a submission was claimed twice"
    assert set(taken) == seeded
    async with db.connect() as conn:
        states = (await conn.execute(sa.select(submissions.c.status, submissions.c.attempts))).all()
    assert {tuple(s) for s in states} == {("RUNNING", 1)}
    print("claims per claimer:", [len(c) for c in per_claimer])


async def test_claim_marks_running_with_lease_and_attempt(db: AsyncEngine) -> None:
    await _seed_pending(db, 3)

    claimed = await _claim(db, limit=2)

    assert len(claimed) == 2
    assert all(s.status is SubmissionStatus.RUNNING and s.attempts == 1 for s in claimed)
    assert [s.input for s in claimed] == [{"n": 0}, {"n": 1}]  # oldest first


async def test_expired_running_lease_is_claimed_again_with_attempts_incremented(
    db: AsyncEngine,
) -> None:
    owner, model = await make_user(db), await make_model(db)
    expired = await make_submission(
        db,
        owner,
        model,
        status="RUNNING",
        attempts=1,
        lease_expires_at=_now() - timedelta(seconds=1),
    )
    await make_submission(
        db, owner, model, status="RUNNING", attempts=1, lease_expires_at=_now() + LEASE
    )

    claimed = await _claim(db)

    assert [(s.id, s.attempts, s.status) for s in claimed] == [
        (expired, 2, SubmissionStatus.RUNNING)
    ]


async def test_pending_submission_not_yet_available_is_not_claimed(db: AsyncEngine) -> None:
    owner, model = await make_user(db), await make_model(db)
    await make_submission(
        db, owner, model, status="PENDING", available_at=_now() + timedelta(minutes=5)
    )

    assert await _claim(db) == []


async def test_finish_with_stale_claim_is_fenced_off(db: AsyncEngine) -> None:
    await _seed_pending(db, 1)
    [stale] = await _claim(db)
    async with db.begin() as conn:  # the lease runs out; another worker claims it again
        await conn.execute(
            sa.update(submissions).values(lease_expires_at=_now() - timedelta(seconds=1))
        )
    [current] = await _claim(db)
    assert current.attempts == stale.attempts + 1

    async with SqlUnitOfWork(db) as uow:
        fenced = await uow.submissions.finish(stale, SubmissionStatus.SUCCEEDED, None, _now())
        finished = await uow.submissions.finish(current, SubmissionStatus.FAILED, "boom", _now())
        await uow.commit()

    assert fenced is None
    assert finished is not None
    assert (finished.status, finished.error, finished.attempts) == (
        SubmissionStatus.FAILED,
        "boom",
        2,
    )


def _identity(email: str, groups: tuple[str, ...] = (), name: str = "Ann") -> Identity:
    return Identity(
        subject="sub-ann", email=email, name=name, groups=groups, expires_at=_now() + LEASE
    )


async def _upsert(db: AsyncEngine, identity: Identity, now: datetime) -> tuple[UUID, datetime]:
    async with SqlUnitOfWork(db) as uow:
        user = await uow.users.upsert_from_identity(identity, now)
        await uow.commit()
    return user.id, user.updated_at


async def test_upsert_from_identity_writes_nothing_when_claims_are_unchanged(
    db: AsyncEngine,
) -> None:
    first_id, first_updated = await _upsert(db, _identity("ann@example.com", ("a",)), _now())

    same_id, same_updated = await _upsert(
        db, _identity("ann@example.com", ("a",)), _now() + timedelta(hours=1)
    )

    assert same_id == first_id
    assert same_updated == first_updated


async def test_upsert_from_identity_updates_changed_email_and_groups_but_not_name(
    db: AsyncEngine,
) -> None:
    await _upsert(db, _identity("ann@example.com", ("a",)), _now())
    later = _now() + timedelta(hours=1)

    async with SqlUnitOfWork(db) as uow:
        user = await uow.users.upsert_from_identity(
            _identity("ann@new.example.com", ("a", "b"), name="Other"), later
        )
        await uow.commit()

    assert (user.email, user.groups, user.name) == ("ann@new.example.com", ("a", "b"), "Ann")
    assert user.updated_at == later


async def test_upsert_from_identity_provisions_name_from_email_when_token_has_none(
    db: AsyncEngine,
) -> None:
    async with SqlUnitOfWork(db) as uow:
        user = await uow.users.upsert_from_identity(_identity("zed@example.com", name=""), _now())
        await uow.commit()

    assert user.name == "zed"
    assert user.is_active


async def test_entering_an_entered_unit_of_work_joins_its_transaction(db: AsyncEngine) -> None:
    uow = SqlUnitOfWork(db)
    async with uow:
        outer = uow.connection
        async with uow:
            assert uow.connection is outer
            [user] = await uow.users.get_many([uuid.uuid4()])
            assert user is None
        assert uow.connection is outer  # the inner exit left it open
    with pytest.raises(RuntimeError):
        _ = uow.connection


async def test_a_read_only_unit_of_work_reads_without_a_transaction_and_refuses_to_commit(
    db: AsyncEngine,
) -> None:
    uow = SqlUnitOfWork(db, read_only=True)
    async with uow:
        assert not uow.connection.in_transaction()
        [user] = await uow.users.get_many([uuid.uuid4()])
        assert user is None
        with pytest.raises(RuntimeError, match="read-only"):
            await uow.commit()
