"""Use cases for workers: claim due submissions, run their model, record results or failures."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from domain.errors import NotFound
from domain.event_payloads import result_payload
from domain.events import EventType, NewEvent
from domain.ids import to_global_id
from domain.models import Model, ModelFailure
from domain.ports import Clock, ModelRuntime, QueueStats, UnitOfWork, UnitOfWorkFactory
from domain.principal import Principal, visible_only
from domain.services.batch_settlement import settle
from domain.services.submissions import submission_event
from domain.submissions import Prediction, Result, Submission, SubmissionStatus


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    batch_size: int = 32
    lease_seconds: float = 60.0
    max_attempts: int = 3
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


Outcome = Prediction | ModelFailure


async def claim(uow: UnitOfWork, policy: WorkerPolicy, *, clock: Clock) -> list[Submission]:
    now = clock()
    async with uow:
        claimed = await uow.submissions.claim(
            policy.batch_size, now, now + timedelta(seconds=policy.lease_seconds)
        )
        await uow.events.append(
            [submission_event(EventType.SUBMISSION_UPDATED, s) for s in claimed]
        )
        await uow.commit()
    return claimed


async def predict(
    runtimes: Mapping[str, ModelRuntime], model: Model, batch: Sequence[Submission]
) -> list[Outcome]:
    """Predictions for a batch of one model; a failed batch is retried item by item to isolate."""
    runtime = runtimes.get(model.runtime)
    if runtime is None:
        failure = ModelFailure(f"no runtime {model.runtime!r} here", is_transient=False)
        return [failure] * len(batch)
    try:
        return list(await runtime.predict(model, [s.input for s in batch]))
    except ModelFailure as failure:
        if len(batch) == 1 or failure.is_transient:
            return [failure] * len(batch)
    outcomes: list[Outcome] = []
    for submission in batch:
        outcomes.extend(await predict(runtimes, model, [submission]))
    return outcomes


def _result(submission: Submission, model: Model, prediction: Prediction, clock: Clock) -> Result:
    return Result(
        id=uuid.uuid4(),
        submission_id=submission.id,
        owner_id=submission.owner_id,
        prediction=prediction.prediction,
        confidence=prediction.confidence,
        alternatives=prediction.alternatives,
        model_version=model.version,
        processing_time_ms=prediction.processing_time_ms,
        created_at=clock(),
    )


async def _record_one(
    uow: UnitOfWork,
    submission: Submission,
    model: Model | None,
    outcome: Outcome,
    policy: WorkerPolicy,
    clock: Clock,
) -> None:
    now = clock()
    if isinstance(outcome, Prediction):
        assert model is not None, "a prediction always comes from a model"
        done = await uow.submissions.finish(submission, SubmissionStatus.SUCCEEDED, None, now)
        if done is None:
            return  # the lease was lost and another worker owns the row now
        result = _result(submission, model, outcome, clock)
        await uow.results.add(result)
        await uow.events.append(
            [
                submission_event(EventType.SUBMISSION_SUCCEEDED, done, result),
                NewEvent(
                    type=EventType.RESULT_CREATED,
                    owner_id=done.owner_id,
                    subject_id=result.id,
                    payload=result_payload(result),
                ),
            ]
        )
    elif outcome.is_transient and submission.attempts < policy.max_attempts:
        later = now + timedelta(seconds=policy.backoff(submission.attempts))
        again = await uow.submissions.reschedule(submission, later, str(outcome), now)
        if again is not None:
            await uow.events.append([submission_event(EventType.SUBMISSION_UPDATED, again)])
    else:
        failed = await uow.submissions.finish(
            submission, SubmissionStatus.FAILED, str(outcome), now
        )
        if failed is not None:
            await uow.events.append([submission_event(EventType.SUBMISSION_FAILED, failed)])


async def record(
    uow: UnitOfWork,
    model: Model | None,
    batch: Sequence[Submission],
    outcomes: Sequence[Outcome],
    policy: WorkerPolicy,
    *,
    clock: Clock,
) -> None:
    """Write each outcome, results and status in one transaction for the whole batch."""
    async with uow:
        for submission, outcome in zip(batch, outcomes, strict=True):
            await _record_one(uow, submission, model, outcome, policy, clock)
        # After every submission row is written: settling locks the batch rows last.
        await settle(uow, [s.batch_id for s in batch], clock())
        await uow.commit()


async def process(
    uow: UnitOfWorkFactory,
    runtimes: Mapping[str, ModelRuntime],
    claimed: Sequence[Submission],
    policy: WorkerPolicy,
    *,
    clock: Clock,
) -> None:
    by_model: dict[UUID, list[Submission]] = defaultdict(list)
    for submission in claimed:
        by_model[submission.model_id].append(submission)
    async with uow() as reader:
        models = await reader.models.get_many(list(by_model))
    for (model_id, batch), model in zip(by_model.items(), models, strict=True):
        if model is None:
            failure = ModelFailure(
                f"model {to_global_id('Model', model_id)} no longer exists", is_transient=False
            )
            outcomes: list[Outcome] = [failure] * len(batch)
        else:
            outcomes = await predict(runtimes, model, batch)
        await record(uow(), model, batch, outcomes, policy, clock=clock)


async def queue_stats(uow: UnitOfWork, *, clock: Clock) -> QueueStats:
    async with uow:
        return await uow.submissions.queue_stats(clock())


async def release(uow: UnitOfWork, claimed: Sequence[Submission], *, clock: Clock) -> None:
    async with uow:
        for submission in claimed:
            await uow.submissions.release(submission, clock())
        await uow.commit()


async def wait_until_finished(
    uow: UnitOfWorkFactory,
    principal: Principal,
    submission_id: UUID,
    *,
    timeout_seconds: float,
    poll_seconds: float = 0.05,
) -> tuple[Submission, Result | None]:
    """Poll until the submission finishes or the timeout passes; return it with its result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    delay = poll_seconds
    while True:
        async with uow() as reader:
            [submission] = visible_only(
                principal, await reader.submissions.get_many([submission_id])
            )
            if submission is None:
                raise NotFound("Submission", submission_id)
            if submission.is_finished or loop.time() >= deadline:
                [results] = await reader.results.list_for_submissions([submission_id])
                return submission, (results[-1] if results else None)
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, 0.5)
