"""The workers' use cases against fakes: claim, predict, record, retry with backoff, fence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from domain.batches import KEEP_PER_CHUNK as KEEP
from domain.events import EventType
from domain.models import JSONValue, Model, ModelFailure
from domain.ports import ModelRuntime
from domain.services import inference, submissions
from domain.services.inference import WorkerPolicy
from domain.submissions import Alternative, Prediction, Submission, SubmissionStatus
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork, uow_factory
from tests.unit.test_submission_services import add_model, principal

POLICY = WorkerPolicy(batch_size=10, lease_seconds=30, max_attempts=3, backoff_base_seconds=1)


class ScriptedRuntime:
    """Answers from a script: a failure raised for the next calls, else a prediction per input;
    an input with "x" over 100 makes the whole call fail non-transiently."""

    def __init__(self, failures: Sequence[ModelFailure] = ()) -> None:
        self.failures = list(failures)
        self.calls: list[int] = []

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        self.calls.append(len(inputs))
        if self.failures:
            raise self.failures.pop(0)
        if any(item["x"] > 100 for item in inputs):
            raise ModelFailure("input out of range", is_transient=False)
        return [
            Prediction(
                prediction={"double": item["x"] * 2},
                confidence=0.9,
                alternatives=(Alternative(value="a", confidence=0.9),),
                processing_time_ms=1,
            )
            for item in inputs
        ]


async def queued(data: FakeData, *inputs: float) -> tuple[Model, list[Submission]]:
    model = add_model(data)
    stored = await submissions.create_batch(
        FakeUnitOfWork(data), principal(), model.id, [{"x": x} for x in inputs], clock=FakeClock()
    )
    return model, stored


async def run_once(data: FakeData, runtime: ModelRuntime, clock: FakeClock) -> list[Submission]:
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    await inference.process(uow_factory(data), {"local": runtime}, claimed, POLICY, clock=clock)
    return claimed


def status_of(data: FakeData, submission: Submission) -> Submission:
    return data.submissions[submission.id].submission


async def test_a_batch_succeeds_in_one_call_with_one_result_each() -> None:
    data = FakeData()
    _, stored = await queued(data, 1, 2, 3)
    runtime = ScriptedRuntime()
    await run_once(data, runtime, FakeClock())
    assert runtime.calls == [3]
    assert {status_of(data, s).status for s in stored} == {SubmissionStatus.SUCCEEDED}
    assert sorted(r.prediction["double"] for r in data.results.values()) == [2, 4, 6]
    kinds = [e.type for e in data.events]
    assert kinds.count(EventType.RESULT_CREATED) == 3
    assert kinds.count(EventType.SUBMISSION_SUCCEEDED) == 3


async def test_a_transient_failure_is_retried_later_then_succeeds() -> None:
    data = FakeData()
    _, [submission] = await queued(data, 1)
    clock = FakeClock()
    runtime = ScriptedRuntime([ModelFailure("throttled", is_transient=True)])
    await run_once(data, runtime, clock)
    after_first = status_of(data, submission)
    assert after_first.status is SubmissionStatus.PENDING
    assert after_first.attempts == 1
    assert after_first.error == "throttled"

    assert await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock) == []  # backing off
    clock.advance(seconds=5)
    await run_once(data, runtime, clock)
    done = status_of(data, submission)
    assert done.status is SubmissionStatus.SUCCEEDED
    assert done.attempts == 2


async def test_transient_failures_fail_the_submission_after_max_attempts() -> None:
    data = FakeData()
    _, [submission] = await queued(data, 1)
    clock = FakeClock()
    runtime = ScriptedRuntime([ModelFailure("timeout", is_transient=True)] * 3)
    for _ in range(3):
        await run_once(data, runtime, clock)
        clock.advance(seconds=120)
    failed = status_of(data, submission)
    assert failed.status is SubmissionStatus.FAILED
    assert failed.attempts == POLICY.max_attempts
    assert failed.error == "timeout"
    assert data.results == {}
    about_it = [e.type for e in data.events if e.subject_id == submission.id]
    assert about_it[-1] is EventType.SUBMISSION_FAILED


async def test_a_permanent_failure_in_a_batch_fails_only_the_bad_input() -> None:
    data = FakeData()
    _, [good, bad, other] = await queued(data, 1, 1000, 2)
    runtime = ScriptedRuntime()
    await run_once(data, runtime, FakeClock())
    assert runtime.calls == [3, 1, 1, 1]  # the batch, then one by one to isolate the failure
    assert status_of(data, good).status is SubmissionStatus.SUCCEEDED
    assert status_of(data, other).status is SubmissionStatus.SUCCEEDED
    failed = status_of(data, bad)
    assert failed.status is SubmissionStatus.FAILED
    assert failed.error == "input out of range"
    assert failed.attempts == 1


async def test_a_worker_that_lost_its_lease_writes_no_result() -> None:
    data = FakeData()
    _, [submission] = await queued(data, 1)
    clock = FakeClock()
    stale = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    clock.advance(seconds=POLICY.lease_seconds + 1)
    fresh = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    assert [s.attempts for s in fresh] == [2]

    runtime = ScriptedRuntime()
    await inference.process(uow_factory(data), {"local": runtime}, stale, POLICY, clock=clock)
    assert data.results == {}  # the fence refused the stale claim
    await inference.process(uow_factory(data), {"local": runtime}, fresh, POLICY, clock=clock)
    assert len(data.results) == 1
    assert status_of(data, submission).status is SubmissionStatus.SUCCEEDED


async def test_released_claims_go_back_without_counting_the_attempt() -> None:
    data = FakeData()
    _, [submission] = await queued(data, 1)
    clock = FakeClock()
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    await inference.release(FakeUnitOfWork(data), claimed, clock=clock)
    back = status_of(data, submission)
    assert back.status is SubmissionStatus.PENDING
    assert back.attempts == 0


async def test_a_model_without_a_runtime_here_fails_its_submissions() -> None:
    data = FakeData()
    _, [submission] = await queued(data, 1)
    clock = FakeClock()
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    await inference.process(uow_factory(data), {}, claimed, POLICY, clock=clock)
    failed = status_of(data, submission)
    assert failed.status is SubmissionStatus.FAILED
    assert failed.error is not None
    assert "no runtime" in failed.error


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
def test_backoff_grows_exponentially_with_jitter_and_a_ceiling(attempt: int) -> None:
    policy = WorkerPolicy(backoff_base_seconds=1, backoff_max_seconds=60)
    ceiling = min(60, 2 ** (attempt - 1))
    delays = [policy.backoff(attempt) for _ in range(50)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)


async def test_one_claim_takes_the_backlog_and_runs_it_in_chunks_of_the_batch_size() -> None:
    data = FakeData()
    _, stored = await queued(data, *range(25))
    runtime, clock = ScriptedRuntime(), FakeClock()
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    assert len(claimed) == 25  # not batch_size: as much as max_claim allows
    await inference.process(uow_factory(data), {"local": runtime}, claimed, POLICY, clock=clock)
    assert runtime.calls == [10, 10, 5]
    assert {status_of(data, s).status for s in stored} == {SubmissionStatus.SUCCEEDED}
    for submission in stored:  # each status once and in order, whatever the chunking
        statuses = [
            e.payload["status"]
            for e in data.events
            if e.subject_id == submission.id and e.type is not EventType.RESULT_CREATED
        ]
        assert statuses == ["PENDING", "RUNNING", "SUCCEEDED"]


async def test_a_claim_is_capped_by_max_claim_and_a_models_own_batch_size_wins() -> None:
    data = FakeData()
    model, _ = await queued(data, *range(7))
    data.models[model.id] = replace(model, runtime_config={"max_batch_size": 3})
    runtime, clock = ScriptedRuntime(), FakeClock()
    policy = replace(POLICY, max_claim=5)
    claimed = await inference.claim(FakeUnitOfWork(data), policy, clock=clock)
    await inference.process(uow_factory(data), {"local": runtime}, claimed, policy, clock=clock)
    assert len(claimed) == 5
    assert runtime.calls == [3, 2]


async def test_each_chunk_teaches_the_model_timings_how_long_it_took() -> None:
    data = FakeData()
    model, _ = await queued(data, *range(25))
    clock = SteppingClock(step_seconds=0.01)
    started = clock()
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    runtime = ScriptedRuntime()
    await inference.process(
        uow_factory(data), {"local": runtime}, claimed, POLICY, clock=clock, started=started
    )
    timings = data.timings[model.id]
    assert timings.largest_chunk == 10
    assert timings.rows == pytest.approx(10 * KEEP**2 + 10 * KEEP + 5)
    # From the claim's start to the first write, then from one write to the next.
    assert timings.seconds > 0
    assert timings.chunks == pytest.approx(KEEP**2 + KEEP + 1)


class SteppingClock(FakeClock):
    """Moves on by `step_seconds` at every reading, as time passes while work is done."""

    def __init__(self, step_seconds: float) -> None:
        super().__init__()
        self.step = timedelta(seconds=step_seconds)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


async def test_chunks_not_begun_by_half_the_lease_are_given_back_not_run_late() -> None:
    data = FakeData()
    _, stored = await queued(data, *range(25))
    clock = SteppingClock(step_seconds=POLICY.lease_seconds / 8)  # a slow model
    started = clock()
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=clock)
    runtime = ScriptedRuntime()
    await inference.process(
        uow_factory(data), {"local": runtime}, claimed, POLICY, clock=clock, started=started
    )
    assert runtime.calls == [10]
    after = [status_of(data, s) for s in stored]
    assert [s.status for s in after].count(SubmissionStatus.SUCCEEDED) == 10
    given_back = [s for s in after if s.status is SubmissionStatus.PENDING]
    assert len(given_back) == 15
    assert all(s.attempts == 0 for s in given_back)


async def test_a_claim_handed_with_its_run_is_recorded_without_running_again() -> None:
    data, runtime = FakeData(), ScriptedRuntime()
    _, stored = await queued(data, 1, 2)
    claimed = await inference.claim(FakeUnitOfWork(data), POLICY, clock=FakeClock())

    async def begun_at_accept() -> list[Prediction | ModelFailure]:
        answered = Prediction({"double": 2}, 0.9, (), 1)
        return [answered, ModelFailure("busy", is_transient=True)]

    await inference.process(
        uow_factory(data),
        {"local": runtime},
        claimed,
        POLICY,
        clock=FakeClock(),
        running=begun_at_accept(),
    )

    assert runtime.calls == []
    done, again = (status_of(data, s) for s in stored)
    assert done.status is SubmissionStatus.SUCCEEDED
    assert [r.prediction for r in data.results.values()] == [{"double": 2}]
    assert (again.status, again.attempts, again.error) == (SubmissionStatus.PENDING, 1, "busy")
