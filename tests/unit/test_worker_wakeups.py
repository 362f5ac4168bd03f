"""Claim loops sleep until work arrives: a ring wakes them, a lost ring is caught by the poll."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import Unavailable
from domain.services import submissions
from domain.services.inference import WorkerPolicy
from domain.submissions import ClaimEnd, Result, Submission, SubmissionStatus
from server.workers import BackgroundTasks, SubmissionWorker, WorkBell
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork, uow_factory
from tests.unit.test_inference_worker import ScriptedRuntime, queued
from tests.unit.test_submission_services import add_model, principal

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600.0  # a poll so slow that only a ring can have woken the worker within a test


@contextlib.asynccontextmanager
async def running(worker: SubmissionWorker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):  # the stop rings the bell: no poll to sit out
            await task


def worker_on(data: FakeData, bell: WorkBell, poll_seconds: float) -> SubmissionWorker:
    return SubmissionWorker(
        uow=uow_factory(data),
        runtimes={"local": ScriptedRuntime()},
        policy=WorkerPolicy(),
        clock=FakeClock(),
        poll_seconds=poll_seconds,
        bell=bell,
    )


async def all_succeeded(data: FakeData) -> None:
    for _ in range(1000):  # a bound on a hang (10 s), not a measure of speed
        if {r.submission.status for r in data.submissions.values()} == {SubmissionStatus.SUCCEEDED}:
            return
        await asyncio.sleep(0.01)
    pytest.fail("the queued submissions were never worked")


async def test_a_ring_wakes_idle_loops_at_once_instead_of_at_the_next_poll() -> None:
    data, bell = FakeData(), WorkBell()
    worker = worker_on(data, bell, poll_seconds=HOUR)
    async with running(worker):
        await asyncio.sleep(0.05)  # every loop claimed nothing and sleeps
        await queued(data, 1, 2, 3)
        bell.ring()
        await all_succeeded(data)
    assert worker.processed == 3


async def test_work_whose_ring_was_lost_is_still_done_by_the_poll() -> None:
    data, bell = FakeData(), WorkBell()
    worker = worker_on(data, bell, poll_seconds=0.05)
    async with running(worker):
        await asyncio.sleep(0.05)
        await queued(data, 1, 2)  # committed, but the wake-up never comes
        await all_succeeded(data)
    assert worker.processed == 2


@pytest.mark.parametrize("loops", [1, 3])
async def test_one_ring_reaches_every_loop(loops: int) -> None:
    bell = WorkBell()
    events = [bell.subscribe() for _ in range(loops)]
    events[0].set()
    events[0].clear()  # one loop clearing its own wake leaves the others' alone
    bell.ring()
    assert all(e.is_set() for e in events)


def test_the_bell_holds_only_idle_loops_of_a_served_runtime() -> None:
    bell, lease = WorkBell(), timedelta(seconds=60)
    assert bell.reserve("local") is None  # no worker serves here
    bell.serve({"local"}, lease)
    assert bell.reserve("local") is None  # no loop idles
    with bell.idling():
        assert bell.reserve("sagemaker") is None
        assert bell.reserve("local") == lease
        assert bell.reserve("local") is None  # the one idle loop is held
        bell.release()
        assert bell.reserve("local") == lease
        bell.hand([], NOW)
        assert bell.reserve("local") is None  # handed work not yet taken holds it still
        assert bell.take() == ([], NOW, None)
        assert bell.reserve("local") == lease
    bell.serve((), None)
    assert bell.reserve("local") is None


async def test_a_batch_accepted_while_a_loop_idles_is_run_without_a_claim() -> None:
    data, bell = FakeData(), WorkBell()
    worker = worker_on(data, bell, poll_seconds=HOUR)
    model = add_model(data)
    async with running(worker):
        await asyncio.sleep(0.05)  # every loop claimed nothing and idles
        uow = FakeUnitOfWork(data)
        uow.local_workers = bell
        accepted = await submissions.create_batch(
            uow, principal(), model.id, [{"x": 1}, {"x": 2}], clock=FakeClock()
        )
        # Leased for an hour of the worker's clock: no claim could take these rows.
        await all_succeeded(data)
    assert worker.processed == 2
    for s in accepted:
        statuses = [e.payload["status"] for e in data.events if e.subject_id == s.id]
        assert statuses == ["PENDING", "RUNNING", "SUCCEEDED"]
        assert data.submissions[s.id].submission.attempts == 1


async def test_work_handed_to_a_stopping_worker_is_given_back_to_the_queue() -> None:
    data, bell = FakeData(), WorkBell()
    worker = worker_on(data, bell, poll_seconds=HOUR)
    model = add_model(data)
    stop = asyncio.Event()
    uow = FakeUnitOfWork(data)
    uow.local_workers = bell
    bell.serve({"local"}, timedelta(seconds=60))
    with bell.idling():  # a loop about to stop: it idles, then never takes the work
        await submissions.create_batch(uow, principal(), model.id, [{"x": 1}], clock=FakeClock())
    stop.set()
    await worker.run(stop)
    assert {r.submission.status for r in data.submissions.values()} == {SubmissionStatus.PENDING}
    assert {r.submission.attempts for r in data.submissions.values()} == {0}


class SlowCommit(FakeUnitOfWork):
    """A unit of work whose commit waits for a gate: the accept still in flight."""

    def __init__(self, data: FakeData, gate: asyncio.Event, committing: asyncio.Event) -> None:
        super().__init__(data)
        self._gate, self._committing = gate, committing

    async def commit(self) -> None:
        self._committing.set()
        await self._gate.wait()
        await super().commit()


async def test_a_batch_reserved_by_a_worker_that_stops_before_hand_over_is_given_back() -> None:
    data, bell = FakeData(), WorkBell()
    worker = worker_on(data, bell, poll_seconds=HOUR)
    model = add_model(data)
    gate, committing, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    running_worker = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.05)  # every loop claimed nothing and idles
    uow = SlowCommit(data, gate, committing)
    uow.local_workers = bell
    accepting = asyncio.create_task(
        submissions.create_batch(uow, principal(), model.id, [{"x": 1}], clock=FakeClock())
    )
    await committing.wait()  # a loop is held and the claimed rows are being committed
    stop.set()
    await asyncio.sleep(0.05)  # the worker stops while the accept is still in flight
    gate.set()
    async with asyncio.timeout(10):
        await accepting
        await running_worker
    # Handed over after the stop: PENDING again at once, not left to the lease.
    assert {r.submission.status for r in data.submissions.values()} == {SubmissionStatus.PENDING}
    assert {r.submission.attempts for r in data.submissions.values()} == {0}
    assert worker.processed == 0


async def test_work_whose_record_failed_is_given_back_at_once_not_after_the_lease() -> None:
    """The database failed between the claim and the record (it timed out a connect in CI):
    the claim is given back at once, its attempt counted, and worked again; the worker's
    clock never reaches the lease's end, so only the give-back can have freed the rows."""
    data, bell = FakeData(), WorkBell()
    failures = [Unavailable()]

    def flaky() -> FakeUnitOfWork:
        uow = FakeUnitOfWork(data)
        finish_many = uow.submissions.finish_many

        async def finish_or_fail(ends: Sequence[ClaimEnd], now: datetime) -> list[Submission]:
            if failures:
                raise failures.pop()
            return await finish_many(ends, now)

        uow.submissions.finish_many = finish_or_fail  # type: ignore[method-assign]
        return uow

    worker = worker_on(data, bell, poll_seconds=0.05)
    worker.uow = flaky
    _, stored = await queued(data, 1, 2)
    async with running(worker):
        await all_succeeded(data)
    assert failures == []
    for s in stored:
        statuses = [e.payload["status"] for e in data.events if e.subject_id == s.id]
        assert statuses == ["PENDING", "RUNNING", "PENDING", "RUNNING", "SUCCEEDED"]
        assert data.submissions[s.id].submission.attempts == 2


async def test_work_that_keeps_failing_to_record_fails_after_its_attempts() -> None:
    """A failure that is not the database's passing trouble ends the submission, FAILED
    with a reason, after the policy's attempts: no endless loop of claims."""
    data, bell = FakeData(), WorkBell()

    def broken() -> FakeUnitOfWork:
        uow = FakeUnitOfWork(data)
        add_many = uow.results.add_many

        async def fail_with_results(results: Sequence[Result]) -> None:
            if results:
                raise RuntimeError("a bug in writing results")
            await add_many(results)

        uow.results.add_many = fail_with_results  # type: ignore[method-assign]
        return uow

    worker = worker_on(data, bell, poll_seconds=0.05)
    worker.uow = broken
    _, stored = await queued(data, 1)
    async with running(worker):
        for _ in range(1000):  # a bound on a hang (10 s)
            if data.submissions[stored[0].id].submission.status is SubmissionStatus.FAILED:
                break
            await asyncio.sleep(0.01)
    failed = data.submissions[stored[0].id].submission
    assert failed.status is SubmissionStatus.FAILED
    assert failed.attempts == WorkerPolicy().max_attempts
    assert failed.error == "the server failed to record the outcome"


async def test_a_background_loop_that_fails_is_started_again_until_the_stop() -> None:
    class FailsTwice:
        def __init__(self) -> None:
            self.runs = 0
            self.running = asyncio.Event()

        async def run(self, stop: asyncio.Event) -> None:
            self.runs += 1
            if self.runs <= 2:
                raise RuntimeError("a failure the loop did not foresee")
            self.running.set()
            await stop.wait()

    loop = FailsTwice()
    tasks = BackgroundTasks([loop], restart_seconds=0.01)
    await tasks.start()
    async with asyncio.timeout(10):  # a bound on a hang
        await loop.running.wait()
    await tasks.stop()
    assert loop.runs == 3
