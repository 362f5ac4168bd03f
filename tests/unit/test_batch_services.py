"""Batches as one object: counts, completion exactly once, cancelling, the estimate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from domain.batches import (
    Batch,
    BatchCounts,
    BatchStatus,
    Throughput,
    WorkTimings,
    estimated_completion,
)
from domain.errors import Conflict, Forbidden, NotFound
from domain.events import EventType
from domain.pagination import PageRequest
from domain.services import batches, inference, submissions
from domain.services.batch_settlement import settle
from domain.submissions import SubmissionStatus
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork
from tests.unit.test_inference_worker import ScriptedRuntime, queued, run_once, status_of
from tests.unit.test_submission_services import principal

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def completions(data: FakeData) -> list[uuid.UUID]:
    return [e.subject_id for e in data.events if e.type is EventType.BATCH_COMPLETED]


async def only_batch(data: FakeData) -> Batch:
    [batch] = await FakeUnitOfWork(data).batches.get_many(list(data.batches))
    assert batch is not None
    return batch


async def test_a_batch_inference_makes_one_pending_batch_of_its_submissions() -> None:
    data = FakeData()
    _, stored = await queued(data, 1, 2, 3)
    batch = await only_batch(data)
    assert {s.batch_id for s in stored} == {batch.id}
    assert batch.size == 3
    assert batch.counts == BatchCounts(pending=3)
    assert batch.status is BatchStatus.PENDING
    assert batch.completed_at is None


async def test_the_batch_completes_once_when_its_last_submission_finishes() -> None:
    data = FakeData()
    await queued(data, 1, 200)  # 200 fails for good, 1 succeeds
    await run_once(data, ScriptedRuntime(), FakeClock())
    batch = await only_batch(data)
    assert batch.status is BatchStatus.COMPLETED
    assert batch.counts == BatchCounts(succeeded=1, failed=1)
    assert batch.completed_at is not None
    assert completions(data) == [batch.id]
    [event] = [e for e in data.events if e.type is EventType.BATCH_COMPLETED]
    assert event.payload["counts"] == {
        "pending": 0,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
    }
    # Settling again (another worker, a replay) completes nothing more.
    uow = FakeUnitOfWork(data)
    async with uow:
        await settle(uow, [batch.id, batch.id], NOW)
        await uow.commit()
    assert completions(data) == [batch.id]


async def test_a_batch_with_unfinished_work_is_running_and_not_completed() -> None:
    data = FakeData()
    await queued(data, 1, 2)
    uow = FakeUnitOfWork(data)
    await inference.claim(uow, inference.WorkerPolicy(max_claim=1), clock=FakeClock())
    batch = await only_batch(data)
    assert batch.status is BatchStatus.RUNNING
    assert batch.counts == BatchCounts(pending=1, running=1)
    assert completions(data) == []


async def test_cancel_batch_cancels_what_is_pending_and_completes_when_running_ends() -> None:
    data = FakeData()
    _, stored = await queued(data, 1, 2, 3)
    owner = principal(stored[0].owner_id)
    await inference.claim(
        FakeUnitOfWork(data), inference.WorkerPolicy(max_claim=1), clock=FakeClock()
    )
    batch = await only_batch(data)
    cancelled = await batches.cancel_batch(FakeUnitOfWork(data), owner, batch.id, clock=FakeClock())
    assert cancelled.status is BatchStatus.CANCELLED
    assert cancelled.counts == BatchCounts(running=1, cancelled=2)
    assert not cancelled.is_finished
    assert completions(data) == []
    with pytest.raises(Conflict):
        await batches.cancel_batch(FakeUnitOfWork(data), owner, batch.id, clock=FakeClock())
    await inference.process(
        lambda: FakeUnitOfWork(data),
        {"local": ScriptedRuntime()},
        [status_of(data, stored[0])],
        inference.WorkerPolicy(),
        clock=FakeClock(),
    )
    done = await only_batch(data)
    assert done.status is BatchStatus.CANCELLED
    assert done.is_finished
    assert done.counts == BatchCounts(succeeded=1, cancelled=2)
    assert completions(data) == [batch.id]


async def test_cancel_batch_of_nothing_running_finishes_it_at_once() -> None:
    data = FakeData()
    _, stored = await queued(data, 1, 2)
    owner = principal(stored[0].owner_id)
    batch = await only_batch(data)
    done = await batches.cancel_batch(FakeUnitOfWork(data), owner, batch.id, clock=FakeClock())
    assert done.is_finished
    assert done.counts == BatchCounts(cancelled=2)
    assert completions(data) == [batch.id]


async def test_only_the_owner_cancels_a_batch_and_strangers_do_not_see_it() -> None:
    data = FakeData()
    _, stored = await queued(data, 1)
    batch = await only_batch(data)
    with pytest.raises(NotFound):
        await batches.cancel_batch(FakeUnitOfWork(data), principal(), batch.id, clock=FakeClock())
    admin = principal(is_admin=True)
    with pytest.raises(Forbidden):
        await batches.cancel_batch(FakeUnitOfWork(data), admin, batch.id, clock=FakeClock())
    assert status_of(data, stored[0]).status is SubmissionStatus.PENDING


async def test_retrying_a_failed_submission_reopens_its_completed_batch() -> None:
    data = FakeData()
    _, stored = await queued(data, 200)
    await run_once(data, ScriptedRuntime(), FakeClock())
    assert (await only_batch(data)).status is BatchStatus.COMPLETED
    owner = principal(stored[0].owner_id)
    await submissions.retry_submission(FakeUnitOfWork(data), owner, stored[0].id, clock=FakeClock())
    reopened = await only_batch(data)
    assert reopened.status is BatchStatus.PENDING
    assert reopened.completed_at is None


async def test_batches_list_newest_first_and_only_the_viewers() -> None:
    data = FakeData()
    await queued(data, 1)
    await queued(data, 2)
    first, second = sorted(data.batches.values(), key=lambda b: b.created_at)
    # queued() gives each batch a new owner: list one owner's, and a stranger sees none.
    page = await batches.list_batches(
        FakeUnitOfWork(data), principal(first.owner_id), first.owner_id, _request()
    )
    assert [b.id for b in page.items] == [first.id]
    assert (
        await batches.list_batches(FakeUnitOfWork(data), principal(), first.owner_id, _request())
    ).items == ()
    assert second.id != first.id


def _request() -> PageRequest:
    return PageRequest()


def _batch(counts: BatchCounts, *, completed: bool = False) -> Batch:
    return Batch(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        size=counts.total,
        callback_url=None,
        created_at=NOW,
        updated_at=NOW,
        completed_at=NOW if completed else None,
        cancelled_at=None,
        counts=counts,
    )


def test_the_estimate_is_the_work_ahead_and_left_at_the_measured_costs() -> None:
    batch = _batch(BatchCounts(pending=80, running=20, succeeded=100))
    # Chunks of 100 and 1,000 rows took 0.03 and 0.21 s: 0.01 s a chunk, 0.0002 s a row.
    timings = WorkTimings.of_chunk(100, 0.03).add(1000, 0.21)
    rate = Throughput(queued_ahead=100, timings=timings)
    # 200 to go (100 ahead + 100 of its own): one chunk.
    estimate = estimated_completion(batch, rate, NOW)
    assert estimate is not None
    assert (estimate - NOW).total_seconds() == pytest.approx(0.01 + 200 * 0.0002)


def test_no_estimate_once_finished_or_before_the_model_was_ever_run() -> None:
    rate = Throughput(queued_ahead=0, timings=WorkTimings.of_chunk(10, 0.01))
    assert estimated_completion(_batch(BatchCounts(succeeded=3), completed=True), rate, NOW) is None
    never_run = Throughput(queued_ahead=0, timings=None)
    assert estimated_completion(_batch(BatchCounts(pending=3)), never_run, NOW) is None


# Chunk times (rows, seconds) of the order measured here for iris-species with bulk writes.
RECORDED = [(10, 0.012), (1000, 0.21), (100, 0.03), (10, 0.011), (1000, 0.26), (100, 0.028)]


@pytest.mark.parametrize(("rows", "took"), RECORDED)
def test_measured_timings_estimate_each_recorded_chunk_within_2x(rows: int, took: float) -> None:
    timings = WorkTimings.of_chunk(*RECORDED[0])
    for chunk in RECORDED[1:]:
        timings = timings.add(*chunk)
    assert took / 2 <= timings.seconds_for(rows) <= took * 2


def test_chunks_of_one_size_are_taken_as_cost_per_row_exact_for_that_size() -> None:
    timings = WorkTimings.of_chunk(100, 0.05).add(100, 0.05)
    per_chunk, per_row = timings.costs()
    assert per_chunk == 0.0
    assert per_row == pytest.approx(0.0005)
    assert timings.seconds_for(100) == pytest.approx(0.05)


def test_old_chunks_weigh_less_than_new_ones() -> None:
    slow = WorkTimings.of_chunk(100, 1.0)
    for _ in range(200):
        slow = slow.add(100, 0.1)
    assert slow.seconds_for(100) == pytest.approx(0.1, rel=0.05)
