"""Use cases for workers: claim due submissions, run their model, record results or failures."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from domain.event_payloads import SubmissionChange
from domain.events import EventType
from domain.ids import new_id, to_global_id
from domain.models import Model, ModelFailure
from domain.ports import Clock, ModelRuntime, QueueStats, UnitOfWork, UnitOfWorkFactory
from domain.services.batch_settlement import settle
from domain.services.recording import record_statistics, statistics_of
from domain.submissions import ClaimEnd, Prediction, Result, Submission, SubmissionStatus


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    # The largest `predict` call for one model, unless its runtime_config sets max_batch_size.
    batch_size: int = 1000
    # The most submissions one claim takes (of every model, in turns across owners).
    max_claim: int = 1000
    lease_seconds: float = 60.0
    max_attempts: int = 3
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security

    def chunk_size(self, model: Model | None) -> int:
        """How many of a model's submissions go to one `predict` call and one write."""
        declared = None if model is None else model.runtime_config.get("max_batch_size")
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 1:
            return declared
        return self.batch_size


Outcome = Prediction | ModelFailure


async def claim(uow: UnitOfWork, policy: WorkerPolicy, *, clock: Clock) -> list[Submission]:
    """As much due work as one claim may take; a RUNNING event for each, in one statement."""
    now = clock()
    async with uow:
        claimed = await uow.submissions.claim(
            policy.max_claim, now, now + timedelta(seconds=policy.lease_seconds)
        )
        await uow.events.append_changes(
            [SubmissionChange(EventType.SUBMISSION_UPDATED, s) for s in claimed]
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


def result_of(
    submission: Submission, model: Model, prediction: Prediction, now: datetime
) -> Result:
    """The result a prediction makes for its submission, recorded at `now`."""
    return Result(
        id=new_id(),
        submission_id=submission.id,
        owner_id=submission.owner_id,
        prediction=prediction.prediction,
        confidence=prediction.confidence,
        alternatives=prediction.alternatives,
        model_version=model.version,
        processing_time_ms=prediction.processing_time_ms,
        created_at=now,
    )


def _end(claimed: Submission, outcome: Outcome, policy: WorkerPolicy, now: datetime) -> ClaimEnd:
    if isinstance(outcome, Prediction):
        return ClaimEnd(claimed, SubmissionStatus.SUCCEEDED)
    if outcome.is_transient and claimed.attempts < policy.max_attempts:
        later = now + timedelta(seconds=policy.backoff(claimed.attempts))
        return ClaimEnd(claimed, SubmissionStatus.PENDING, str(outcome), later)
    return ClaimEnd(claimed, SubmissionStatus.FAILED, str(outcome))


def _outcome_change(
    done: Submission, model: Model | None, outcome: Outcome, now: datetime
) -> SubmissionChange:
    """What one written end tells subscribers: the status (with the result, then the
    result's own RESULT_CREATED)."""
    if isinstance(outcome, Prediction):
        assert model is not None, "a prediction always comes from a model"
        result = result_of(done, model, outcome, now)
        return SubmissionChange(EventType.SUBMISSION_SUCCEEDED, done, result, True)
    if done.status is SubmissionStatus.PENDING:
        return SubmissionChange(EventType.SUBMISSION_UPDATED, done)
    return SubmissionChange(EventType.SUBMISSION_FAILED, done)


def run_from(submission: Submission, started: datetime) -> Submission:
    """A submission just accepted, RUNNING from `started` (its first attempt), as the
    process that accepted it runs it at once."""
    return submission.moved(SubmissionStatus.RUNNING, submission.error, 1, started)


def began_changes(accepted: Sequence[Submission], started: datetime) -> list[SubmissionChange]:
    """Each submission's PENDING (as accepted), then each one's RUNNING from `started`, as the
    process that accepted them runs them at once: the events' ids follow the list."""
    return [SubmissionChange(EventType.SUBMISSION_CREATED, s) for s in accepted] + [
        SubmissionChange(EventType.SUBMISSION_UPDATED, run_from(s, started)) for s in accepted
    ]


def finished_change(
    accepted: Submission, model: Model, outcome: Prediction | ModelFailure, now: datetime
) -> SubmissionChange:
    """A submission run at once as accepted (never queued, so never retried: run_from's one
    attempt) as its outcome ends it at `now`, SUCCEEDED with its result or FAILED, with what
    that tells subscribers. Made from the accepted submission, not its RUNNING copy: a
    batch ends a thousand."""
    if isinstance(outcome, ModelFailure):
        failed = accepted.moved(SubmissionStatus.FAILED, str(outcome), 1, now)
        return SubmissionChange(EventType.SUBMISSION_FAILED, failed)
    done = accepted.moved(SubmissionStatus.SUCCEEDED, accepted.error, 1, now)
    return _outcome_change(done, model, outcome, now)


async def record(
    uow: UnitOfWork,
    model: Model | None,
    chunk: Sequence[Submission],
    outcomes: Sequence[Outcome],
    policy: WorkerPolicy,
    *,
    clock: Clock,
    since: datetime | None = None,
) -> datetime:
    """Write a chunk's outcomes in one transaction of bulk statements: one UPDATE of the
    submissions (fenced per row: a row whose lease was lost is left alone), one INSERT of
    results, one of events, the batches settled once. With `since` (when the work on this
    chunk began) the model's measured throughput learns how long the chunk took, and its
    statistics come with that statement (else in one of their own). Returns
    the time written, where the next chunk's work begins."""
    now = clock()
    ends = [_end(s, o, policy, now) for s, o in zip(chunk, outcomes, strict=True)]
    async with uow:
        written = {s.id: s for s in await uow.submissions.finish_many(ends, now)}
        changes: list[SubmissionChange] = []
        for submission, outcome in zip(chunk, outcomes, strict=True):
            done = written.get(submission.id)
            if done is None:
                continue  # the lease was lost and another worker owns the row now
            changes.append(_outcome_change(done, model, outcome, now))
        await uow.results.add_many([c.result for c in changes if c.result is not None])
        await uow.events.append_changes(changes)
        # After every submission row is written: settling locks the batch rows last.
        await settle(uow, [s.batch_id for s in written.values()], now)
        # After the batch rows: the model's timings and rollup rows are shared by every
        # writer, so they are locked last, just before commit, in one statement.
        kept = [(s, o) for s, o in zip(chunk, outcomes, strict=True) if s.id in written]
        if since is not None and model is not None:
            counted = statistics_of(model, kept, now)
            await uow.models.record_work(model.id, len(chunk), now - since, now, tally=counted)
        else:
            await record_statistics(uow, model, kept, now)
        await uow.commit()
    return now


def _chunks(items: Sequence[Submission], size: int) -> list[Sequence[Submission]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def process(
    uow: UnitOfWorkFactory,
    runtimes: Mapping[str, ModelRuntime],
    claimed: Sequence[Submission],
    policy: WorkerPolicy,
    *,
    clock: Clock,
    started: datetime | None = None,
    running: Awaitable[Sequence[Outcome]] | None = None,
) -> None:
    """Run the claim grouped by model, each group in chunks of the model's batch size: one
    `predict` and one write per chunk. `started` is when the claim began (its time counts
    towards the first chunk's). Chunks not begun once half the lease has passed are given
    back, so a slow model's last chunks are not run after another worker took them over.
    `running`: the claim's outcomes, being computed already (a batch whose run began at
    accept), recorded as one chunk instead of a predict."""
    by_model: dict[UUID, list[Submission]] = defaultdict(list)
    for submission in claimed:
        by_model[submission.model_id].append(submission)
    async with uow() as reader:
        models = await reader.models.get_many(list(by_model))
    since = started or clock()
    if running is not None and len(models) == 1 and models[0] is not None:
        # A batch (one model) whose model is still there: else its run is not recorded.
        ran = list(await running)
        await record(uow(), models[0], claimed, ran, policy, clock=clock, since=since)
        return
    give_back_at = since + timedelta(seconds=policy.lease_seconds / 2)
    work = [
        (model_id, model, chunk)
        for (model_id, group), model in zip(by_model.items(), models, strict=True)
        for chunk in _chunks(group, policy.chunk_size(model))
    ]
    for n, (model_id, model, chunk) in enumerate(work):
        if clock() >= give_back_at:
            await release(uow(), [s for _, _, rest in work[n:] for s in rest], clock=clock)
            return
        if model is None:
            failure = ModelFailure(
                f"model {to_global_id('Model', model_id)} no longer exists",
                is_transient=False,
            )
            outcomes: list[Outcome] = [failure] * len(chunk)
        else:
            outcomes = await predict(runtimes, model, chunk)
        since = await record(uow(), model, chunk, outcomes, policy, clock=clock, since=since)


async def queue_stats(uow: UnitOfWork, *, clock: Clock) -> QueueStats:
    async with uow:
        return await uow.submissions.queue_stats(clock())


async def give_back_failed(
    uow: UnitOfWork,
    claimed: Sequence[Submission],
    policy: WorkerPolicy,
    reason: str,
    *,
    clock: Clock,
) -> None:
    """After the worker itself failed between a claim and its record (an exception, not a
    model's answer): each submission of the claim not finished meanwhile is due again at
    once, the attempt counted, or FAILED with `reason` once its attempts are spent. So a
    passing failure (the database out of reach for a moment) costs a retry, not the lease,
    and a lasting one cannot loop for ever. No model is credited or blamed for it."""
    failure = ModelFailure(reason, is_transient=True)
    at_once = replace(policy, backoff_base_seconds=0.0)
    await record(uow, None, claimed, [failure] * len(claimed), at_once, clock=clock)


async def release(uow: UnitOfWork, claimed: Sequence[Submission], *, clock: Clock) -> None:
    """Give the claim back in one statement (what was finished meanwhile stays finished)."""
    async with uow:
        await uow.submissions.release_many(claimed, clock())
        await uow.commit()
