"""Claim loops sleep until work arrives: a ring wakes them, a lost ring is caught by the poll."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from domain.services.inference import WorkerPolicy
from domain.submissions import SubmissionStatus
from server.workers import SubmissionWorker, WorkBell
from tests.unit.fakes import FakeClock, FakeData, uow_factory
from tests.unit.test_inference_worker import ScriptedRuntime, queued

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
