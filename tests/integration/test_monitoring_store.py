"""Model monitoring's repositories against PostgreSQL: rollups add up, prune, feedback sums."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.drift import DriftStatus
from domain.model_alerts import AlertKind, AlertPolicy, AlertState, ModelAlert
from domain.monitoring import Profile, Tally
from domain.pagination import PageRequest
from domain.quality import Feedback
from persistence.monitoring import SHARDS
from persistence.unit_of_work import SqlUnitOfWork
from tests.factories import make_model, make_result, make_submission, make_user

MINUTE = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _tally(model_id: uuid.UUID, minute: datetime, n: int, features: tuple[int, ...]) -> Tally:
    return Tally(model_id, minute, n, 1, (n, 0), (0, n), (n,), features)


async def test_tallies_of_one_minute_add_up_and_prune_by_minute(
    db: AsyncEngine,
) -> None:
    model = await make_model(db)
    async with SqlUnitOfWork(db) as uow:
        await uow.monitoring.add_tally(_tally(model, MINUTE, 2, (1, 1)))
        await uow.monitoring.add_tally(_tally(model, MINUTE, 3, (0, 2, 5)))
        await uow.monitoring.add_tally(_tally(model, MINUTE + timedelta(minutes=1), 4, (4,)))
        await uow.commit()
    async with SqlUnitOfWork(db) as uow:
        first, second = await uow.monitoring.tallies(model, MINUTE, MINUTE + timedelta(hours=1))
        assert (first.predictions, first.failures) == (5, 2)
        assert first.model_ms == (5, 0)
        assert first.features == (1, 3, 5)  # the shorter array padded with zeros
        assert second.predictions == 4
        assert [t.minute for t in await uow.monitoring.earliest(model, 1)] == [MINUTE]
        assert await uow.monitoring.prune(MINUTE + timedelta(minutes=1)) >= 1  # its shards' rows
        await uow.commit()
    async with SqlUnitOfWork(db) as uow:
        left = await uow.monitoring.tallies(model, MINUTE, MINUTE + timedelta(hours=1))
        assert [t.predictions for t in left] == [4]


async def test_the_first_profile_saved_stays(db: AsyncEngine) -> None:
    model = await make_model(db)
    first = Profile({"x": (1, 2)}, (3,), "predictions")
    async with SqlUnitOfWork(db) as uow:
        assert await uow.monitoring.get_profile(model) is None
        await uow.monitoring.save_profile(model, first, MINUTE)
        await uow.monitoring.save_profile(model, Profile({"x": (9, 9)}, (9,), "x"), MINUTE)
        await uow.commit()
    async with SqlUnitOfWork(db) as uow:
        assert await uow.monitoring.get_profile(model) == first


async def test_feedback_is_replaced_and_summed_per_window(db: AsyncEngine) -> None:
    owner, model = await make_user(db), await make_model(db)
    results = [await make_result(db, await make_submission(db, owner, model)) for _ in range(3)]

    def said(result_id: uuid.UUID, predicted: str, true: str) -> Feedback:
        return Feedback(result_id, model, true, predicted, true, None, None, MINUTE, MINUTE)

    async with SqlUnitOfWork(db) as uow:
        await uow.feedback.record(said(results[0], "a", "b"))
        await uow.feedback.record(said(results[0], "a", "a"))  # corrected by its owner
        await uow.feedback.record(said(results[1], "a", "b"))
        regression = Feedback(results[2], model, 3.0, None, None, 5.0, 3.0, MINUTE, MINUTE)
        await uow.feedback.record(regression)
        await uow.commit()
    async with SqlUnitOfWork(db) as uow:
        window = (model, MINUTE, MINUTE + timedelta(minutes=1))
        counts = sorted(
            (c.predicted, c.true, c.count) for c in await uow.feedback.class_counts(*window)
        )
        assert counts == [("a", "a", 1), ("a", "b", 1)]
        errors = await uow.feedback.value_errors(*window)
        assert (errors.count, errors.absolute, errors.squared) == (1, 2.0, 4.0)
        assert await uow.feedback.labels_for([results[0], uuid.uuid4()]) == ["a", None]
        empty = await uow.feedback.class_counts(model, MINUTE - timedelta(hours=1), MINUTE)
        assert empty == []


async def test_alert_policies_and_the_latest_alert_of_each_kind(db: AsyncEngine) -> None:
    model = await make_model(db)
    policy = AlertPolicy(model, latency_p95_ms=200.0, drift=DriftStatus.WARNING)
    alerts = [
        ModelAlert(uuid.uuid4(), model, AlertKind.LATENCY, state, 300.0, 200.0, at)
        for state, at in (
            (AlertState.RAISED, MINUTE),
            (AlertState.CLEARED, MINUTE + timedelta(minutes=5)),
        )
    ]
    async with SqlUnitOfWork(db) as uow:
        await uow.model_alerts.save_policy(policy, MINUTE)
        await uow.model_alerts.add(alerts)
        await uow.commit()
    async with SqlUnitOfWork(db) as uow:
        assert await uow.model_alerts.policies_for([model, uuid.uuid4()]) == [policy, None]
        assert await uow.model_alerts.watched() == [policy]
        latest = await uow.model_alerts.latest(model)
        assert latest[AlertKind.LATENCY].state is AlertState.CLEARED
        page = await uow.model_alerts.page(model, PageRequest(first=1, descending=True))
        assert [a.id for a in page.items] == [alerts[1].id]
        assert page.has_next_page
        assert await uow.model_alerts.count(None) == 2
        assert await uow.model_alerts.get_many([alerts[0].id]) == [alerts[0]]


async def test_window_rows_add_up_to_the_minutes_of_any_window(db: AsyncEngine) -> None:
    model = await make_model(db)
    start = MINUTE - timedelta(minutes=90)
    async with SqlUnitOfWork(db) as uow:
        for n in range(180):  # three hours, one prediction per minute
            await uow.monitoring.add_tally(_tally(model, start + timedelta(minutes=n), 1, (1,)))
        await uow.commit()
    windows = [
        (start, start + timedelta(hours=3)),
        (start + timedelta(minutes=7), start + timedelta(minutes=151, seconds=30)),
        (MINUTE, MINUTE + timedelta(hours=1)),
        (MINUTE + timedelta(minutes=1), MINUTE + timedelta(minutes=2)),
    ]
    async with SqlUnitOfWork(db) as uow:
        for begin, end in windows:
            rows = await uow.monitoring.window_rows(model, begin, end)
            minutes = await uow.monitoring.tallies(model, begin, end)
            assert sum(r.predictions for r in rows) == len(minutes), (begin, end)
            assert sum(r.features[0] for r in rows) == len(minutes)
        whole = await uow.monitoring.window_rows(model, start, start + timedelta(hours=3))
        assert len(whole) < 180  # whole hours come as one row each


async def test_concurrent_writers_of_one_minute_take_different_rows_that_read_as_one(
    db: AsyncEngine,
) -> None:
    model = await make_model(db)
    writers = [SqlUnitOfWork(db) for _ in range(SHARDS)]
    for uow in writers:  # each holds its transaction open: a shared row would block the next
        await uow.__aenter__()
        await uow.monitoring.add_tally(_tally(model, MINUTE, 1, (1,)))
    for uow in writers:
        await uow.commit()
        await uow.__aexit__(None, None, None)
    async with SqlUnitOfWork(db) as uow:
        [minute] = await uow.monitoring.tallies(model, MINUTE, MINUTE + timedelta(minutes=1))
        assert minute.predictions == SHARDS
        rows = await uow.monitoring.window_rows(model, MINUTE, MINUTE + timedelta(minutes=1))
        assert len(rows) == SHARDS
        assert sum(r.predictions for r in rows) == SHARDS


def _added(a: list[int | None] | None, b: list[int | None] | None) -> list[int]:
    """The element-wise sum, the shorter array (or a NULL one, or a NULL count) as zeros."""

    def at(values: list[int | None], i: int) -> int:
        value = values[i] if i < len(values) else None
        return 0 if value is None else value

    a, b = a or [], b or []
    return [at(a, i) + at(b, i) for i in range(max(len(a), len(b)))]


async def test_assay_add_counts_sums_element_wise_whatever_the_arrays(db: AsyncEngine) -> None:
    # Migration 0013 rewrote it to add only a delta's non-zero counts: the sums must be the
    # former form's for every pair, including the arrays it takes the general path for.
    pairs: list[tuple[list[int | None] | None, list[int | None] | None]] = [
        ([0, 0, 0], [0, 0, 0]),
        ([1, 2, 3], [0, 5, 0]),
        ([4, 0], [0, 0, 0, 7]),  # the delta longer: padded with zeros
        ([4, 0, 9, 1], [2]),  # the delta shorter
        ([], [0, 0, 3]),
        ([5, 6], []),
        (None, [1, 0, 2]),
        ([1, 0, 2], None),
        (None, None),
        ([1, None, 3], [0, 0, 0]),  # a NULL count: the general path, as zero
        ([1, 2], [None, 4]),
        ([2**40, 1], [2**40, 0]),
        ([-3, 3], [3, -3]),
    ]
    async with db.connect() as conn:
        for a, b in pairs:
            found = await conn.execute(
                sa.text("SELECT assay_add_counts(CAST(:a AS bigint[]), CAST(:b AS bigint[]))"),
                {"a": a, "b": b},
            )
            assert found.scalar_one() == _added(a, b), (a, b)
        shifted = await conn.execute(
            sa.text("SELECT assay_add_counts('[0:2]={1,2,3}'::bigint[], '{0,1}'::bigint[])")
        )
        assert shifted.scalar_one() == [1, 3, 3]  # by position, whatever the lower bound
