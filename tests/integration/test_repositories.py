"""Repositories against PostgreSQL: concurrent claims, the fence, upserts, batched reads."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.assets import AssetStatus
from domain.pagination import Keyset, Page, PageRequest
from domain.principal import Identity
from domain.submissions import Alternative, ClaimEnd, Result, Submission, SubmissionStatus
from persistence.assets import SqlAssetRepository
from persistence.submissions import SqlSubmissionRepository
from persistence.tables import submission_assets, submissions
from persistence.unit_of_work import SqlUnitOfWork
from tests.factories import make_asset, make_model, make_result, make_submission, make_user

LEASE = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


async def _seed_pending(
    db: AsyncEngine, count: int, owner: UUID | None = None, seconds_ago: float = 5
) -> set[UUID]:
    owner = owner or await make_user(db)
    model = await make_model(db, name=f"m-{uuid.uuid4().hex[:8]}")
    past = _now() - timedelta(seconds=seconds_ago)
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


async def test_claims_take_turns_across_owners(db: AsyncEngine) -> None:
    # Four callers queued 300 each a minute ago; a fifth queues one now. Claims in queue
    # order would reach the fifth caller after 1,200 rows; taking turns, in the first claim.
    backlogs = [await _seed_pending(db, 300, seconds_ago=60) for _ in range(4)]
    [late] = await _seed_pending(db, 1, seconds_ago=1)

    first = {s.id for s in await _claim(db, limit=8)}
    second = {s.id for s in await _claim(db, limit=8)}

    assert late in first
    assert all(len(first & backlog) >= 1 for backlog in backlogs)
    assert all(len(second & backlog) == 2 for backlog in backlogs)


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
        fenced = await uow.submissions.finish_many(
            [ClaimEnd(stale, SubmissionStatus.SUCCEEDED)], _now()
        )
        [finished] = await uow.submissions.finish_many(
            [ClaimEnd(current, SubmissionStatus.FAILED, "boom")], _now()
        )
        await uow.commit()

    assert fenced == []
    assert (finished.status, finished.error, finished.attempts) == (
        SubmissionStatus.FAILED,
        "boom",
        2,
    )


async def test_finish_many_writes_every_held_row_in_one_go_and_fences_off_lost_ones(
    db: AsyncEngine,
) -> None:
    await _seed_pending(db, 3)
    lost, failing, retried = await _claim(db)
    async with db.begin() as conn:  # the first row's lease runs out and is claimed again
        await conn.execute(
            sa.update(submissions)
            .where(submissions.c.id == lost.id)
            .values(lease_expires_at=_now() - timedelta(seconds=1))
        )
    [again] = await _claim(db)
    later = _now() + timedelta(seconds=30)

    async with SqlUnitOfWork(db) as uow:
        written = await uow.submissions.finish_many(
            [
                ClaimEnd(lost, SubmissionStatus.SUCCEEDED),
                ClaimEnd(failing, SubmissionStatus.FAILED, "bad input"),
                ClaimEnd(retried, SubmissionStatus.PENDING, "throttled", later),
            ],
            _now(),
        )
        await uow.commit()

    by_id = {s.id: s for s in written}
    assert set(by_id) == {failing.id, retried.id}
    assert (by_id[failing.id].status, by_id[failing.id].error) == (
        SubmissionStatus.FAILED,
        "bad input",
    )
    assert by_id[retried.id].status is SubmissionStatus.PENDING
    async with db.connect() as conn:
        rows = {
            r.id: r
            for r in await conn.execute(
                sa.select(
                    submissions.c.id,
                    submissions.c.status,
                    submissions.c.attempts,
                    submissions.c.available_at,
                    submissions.c.lease_expires_at,
                )
            )
        }
    assert (rows[lost.id].status, rows[lost.id].attempts) == ("RUNNING", again.attempts)
    assert rows[lost.id].lease_expires_at is not None  # the new claim's lease, untouched
    assert rows[retried.id].available_at == later
    assert rows[retried.id].lease_expires_at is None


async def test_release_many_gives_back_held_claims_without_counting_the_attempt(
    db: AsyncEngine,
) -> None:
    await _seed_pending(db, 2)
    claimed = await _claim(db)
    async with SqlUnitOfWork(db) as uow:
        [done] = await uow.submissions.finish_many(
            [ClaimEnd(claimed[0], SubmissionStatus.SUCCEEDED)], _now()
        )
        await uow.submissions.release_many(claimed, _now())
        await uow.commit()

    async with db.connect() as conn:
        found = await conn.execute(sa.select(submissions.c.id, submissions.c.status))
        states = {ident: status for ident, status in found}
    assert states == {done.id: "SUCCEEDED", claimed[1].id: "PENDING"}
    [back] = await _claim(db)
    assert (back.id, back.attempts) == (claimed[1].id, 1)


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


async def _owner_pages_and_counts(
    repo: SqlSubmissionRepository | SqlAssetRepository,
    owners: list[UUID],
    rows: list[tuple[UUID, UUID, str, datetime]],
    statuses: list[Any],
) -> None:
    """Each (status, keyset) variant of list_for_owners, and count_for_owners, in a row, so a
    statement built once for a variant is run with values that differ from its last call."""
    for status in statuses:
        kept = [r for r in rows if status is None or r[2] == status.value]
        # The keyset: after the second row of the status; every owner's page starts past it.
        for after in (None, Keyset(kept[1][3], kept[1][1])):
            request = PageRequest(first=2, after=after)
            pages: list[Page[Any]] = await repo.list_for_owners(owners, request, status)
            for owner, page in zip(owners, pages, strict=True):
                expected = [
                    r[1]
                    for r in kept
                    if r[0] == owner and (after is None or r[3] > after.created_at)
                ]
                assert [item.id for item in page.items] == expected[:2], (status, after)
                assert page.has_next_page == (len(expected) > 2)
                assert page.has_previous_page == (after is not None)
        counts = await repo.count_for_owners(owners, status)
        assert counts == [sum(r[0] == owner for r in kept) for owner in owners], status


async def test_submissions_per_owner_in_every_variant(db: AsyncEngine) -> None:
    owners = [await make_user(db), uuid.uuid4(), await make_user(db)]
    model = await make_model(db)
    rows: list[tuple[UUID, UUID, str, datetime]] = []
    for n in range(12):
        owner, status, created = owners[2 * (n % 2)], ("SUCCEEDED", "FAILED")[n // 2 % 2], _now()
        ident = await make_submission(db, owner, model, status=status, created_at=created)
        rows.append((owner, ident, status, created))
    statuses = [None, SubmissionStatus.SUCCEEDED, SubmissionStatus.FAILED, None]

    async with SqlUnitOfWork(db) as uow:
        await _owner_pages_and_counts(uow.submissions, owners, rows, statuses)


async def test_assets_per_owner_in_every_variant(db: AsyncEngine) -> None:
    owners = [await make_user(db), uuid.uuid4(), await make_user(db)]
    rows: list[tuple[UUID, UUID, str, datetime]] = []
    for n in range(12):
        owner, created = owners[2 * (n % 2)], _now()
        status = ("AVAILABLE", "PENDING_UPLOAD")[n // 2 % 2]
        ident = await make_asset(db, owner, status=status, created_at=created)
        rows.append((owner, ident, status, created))
    statuses = [AssetStatus.PENDING_UPLOAD, None, AssetStatus.AVAILABLE, AssetStatus.PENDING_UPLOAD]

    async with SqlUnitOfWork(db) as uow:
        await _owner_pages_and_counts(uow.assets, owners, rows, statuses)


async def test_reads_by_key_answer_in_key_order_with_every_field(db: AsyncEngine) -> None:
    owner, model = await make_user(db, "kay@example.com"), await make_model(db)
    first = await make_submission(db, owner, model, input={"n": 1}, idempotency_key="k1")
    second = await make_submission(db, owner, model, status="FAILED", error="boom", attempts=2)
    alternatives = [{"value": "a", "confidence": 0.5}, {"value": {"b": 1}, "confidence": 0.25}]
    result = await make_result(db, second, alternatives=alternatives, confidence=None)
    early, late = await make_asset(db, owner), await make_asset(db, owner, file_name="b.txt")
    async with db.begin() as conn:  # linked in the opposite order of creation
        await conn.execute(
            sa.insert(submission_assets),
            [
                {"submission_id": first, "asset_id": late, "position": 0},
                {"submission_id": first, "asset_id": early, "position": 1},
            ],
        )
    missing = uuid.uuid4()

    async with SqlUnitOfWork(db) as uow:
        subs = await uow.submissions.get_many([second, missing, first, second])
        results = await uow.results.list_for_submissions([first, missing, second])
        [by_id, none] = await uow.results.get_many([result, missing])
        linked = await uow.assets.list_for_submissions([missing, first])
        [user] = await uow.users.get_many([owner])
        [found_model] = await uow.models.get_many([model])

    assert [s.id if s else None for s in subs] == [second, None, first, second]
    failed = subs[0]
    assert failed is not None
    assert (failed.status, failed.error, failed.attempts) == (SubmissionStatus.FAILED, "boom", 2)
    assert subs[2] is not None
    assert (subs[2].input, subs[2].idempotency_key) == ({"n": 1}, "k1")
    assert [[r.id for r in group] for group in results] == [[], [], [result]]
    assert by_id == results[2][0]
    assert none is None
    assert by_id.owner_id == owner
    assert by_id.confidence is None
    assert by_id.alternatives == (Alternative("a", 0.5), Alternative({"b": 1}, 0.25))
    assert [[a.id for a in group] for group in linked] == [[], [late, early]]
    assert linked[1][0].file_name == "b.txt"
    assert linked[1][0].status is AssetStatus.AVAILABLE
    assert user is not None
    assert (user.email, user.groups) == ("kay@example.com", ())
    assert found_model is not None
    assert found_model.name == "iris"


async def test_results_add_many_writes_the_group_with_every_field(db: AsyncEngine) -> None:
    owner = await make_user(db)
    model = await make_model(db)
    subjects = [await make_submission(db, owner, model) for _ in range(3)]
    now = _now()
    written = [
        Result(
            id=uuid.uuid4(),
            submission_id=subject,
            owner_id=owner,
            prediction={"label": f"class-{n}"},
            confidence=0.5 + n / 10,
            alternatives=(Alternative(value=f"class-{n}", confidence=0.5 + n / 10),),
            model_version="1.0.0",
            processing_time_ms=n,
            created_at=now,
        )
        for n, subject in enumerate(subjects)
    ]
    async with SqlUnitOfWork(db) as uow:
        await uow.results.add_many(written)
        await uow.results.add_many([])
        await uow.commit()
    async with SqlUnitOfWork(db) as uow:
        read = await uow.results.get_many([r.id for r in written])
    assert [r and (r.submission_id, r.prediction, r.confidence) for r in read] == [
        (r.submission_id, r.prediction, r.confidence) for r in written
    ]
