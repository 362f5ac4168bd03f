"""Use cases for submissions: create (once per idempotency key), batch, cancel, retry."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import UUID

from domain.assets import AssetStatus
from domain.batches import Batch, BatchCounts
from domain.errors import Conflict, InvalidInput, NotFound
from domain.event_payloads import SubmissionChange, submission_payload
from domain.events import EventType, NewEvent
from domain.ids import new_id, to_global_id
from domain.models import JSONValue, Model, ModelFailure
from domain.ports import BatchRunner, Clock, UnitOfWork
from domain.principal import Principal, require_owner, visible_only
from domain.services.batch_settlement import batch_event, settle
from domain.services.inference import Outcome, finished_change, run_from
from domain.services.recording import statistics_of
from domain.submissions import Metadata, Result, Submission, SubmissionStatus
from domain.validation import batch_schema_errors, schema_errors

MAX_BATCH = 1000
MAX_ASSETS = 20
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True, slots=True)
class SubmissionRequest:
    model_id: UUID | None  # None: the id named no model
    input: JSONValue
    asset_ids: Sequence[UUID] = ()
    idempotency_key: str | None = None
    callback_url: str | None = None  # checked beforehand by services.callbacks
    metadata: Metadata = ()  # checked beforehand (domain.submissions.checked_metadata)


def submission_event(
    kind: EventType, submission: Submission, result: Result | None = None
) -> NewEvent:
    return NewEvent(
        type=kind,
        owner_id=submission.owner_id,
        subject_id=submission.id,
        payload=submission_payload(submission, result),
    )


async def _active_model(uow: UnitOfWork, model_id: UUID | None, path: str) -> Model:
    [model] = await uow.models.get_many([model_id]) if model_id else [None]
    if model is None or not model.is_active:
        raise InvalidInput({path: "names no active model"})
    return model


async def _check_assets(
    uow: UnitOfWork, principal: Principal, asset_ids: Sequence[UUID], path: str
) -> None:
    if len(asset_ids) > MAX_ASSETS:
        raise InvalidInput({path: f"at most {MAX_ASSETS} assets"})
    if len(set(asset_ids)) != len(asset_ids):
        raise InvalidInput({path: "names the same asset twice"})
    assets = visible_only(principal, await uow.assets.get_many(asset_ids))
    problems = {}
    for n, (asset_id, asset) in enumerate(zip(asset_ids, assets, strict=True)):
        if asset is None or asset.owner_id != principal.user_id:
            problems[f"{path}.{n}"] = f"asset {to_global_id('Asset', asset_id)} not found"
        elif asset.status is not AssetStatus.AVAILABLE:
            problems[f"{path}.{n}"] = f"asset is {asset.status}, not AVAILABLE"
    if problems:
        raise InvalidInput(problems)


def _new_submission(
    principal: Principal, model: Model, request: SubmissionRequest, clock: Clock
) -> Submission:
    return _pending(
        principal.user_id,
        model.id,
        request.input,
        clock(),
        idempotency_key=request.idempotency_key,
        callback_url=request.callback_url,
        metadata=request.metadata,
    )


def _pending(
    owner_id: UUID,
    model_id: UUID,
    value: JSONValue,
    at: datetime,
    *,
    idempotency_key: str | None = None,
    batch_id: UUID | None = None,
    callback_url: str | None = None,
    metadata: Metadata = (),
) -> Submission:
    """A submission just accepted, created at `at`."""
    return Submission(
        id=new_id(),
        owner_id=owner_id,
        model_id=model_id,
        input=value,
        status=SubmissionStatus.PENDING,
        error=None,
        attempts=0,
        idempotency_key=idempotency_key,
        created_at=at,
        updated_at=at,
        batch_id=batch_id,
        callback_url=callback_url,
        metadata=metadata,
    )


def _new_batch(
    principal: Principal, model: Model, size: int, callback_url: str | None, clock: Clock
) -> Batch:
    now = clock()
    return Batch(
        id=new_id(),
        owner_id=principal.user_id,
        model_id=model.id,
        size=size,
        callback_url=callback_url,
        created_at=now,
        updated_at=now,
        completed_at=None,
        cancelled_at=None,
        counts=BatchCounts(pending=size),
    )


def _batch_submissions(
    principal: Principal,
    batch: Batch,
    inputs: Sequence[JSONValue],
    metadata: Metadata,
    now: datetime,
) -> list[Submission]:
    """Each input's submission, PENDING, created a microsecond apart from `now` on: the
    offsets keep a batch's input order in (created_at, id) keyset order."""
    owner_id, model_id = principal.user_id, batch.model_id
    return [
        _pending(
            owner_id,
            model_id,
            item,
            now + timedelta(microseconds=n),
            batch_id=batch.id,
            metadata=metadata,
        )
        for n, item in enumerate(inputs)
    ]


async def create_submission(
    uow: UnitOfWork, principal: Principal, request: SubmissionRequest, *, clock: Clock
) -> Submission:
    """Store a PENDING submission; the same idempotency key returns the first one (CONFLICT
    when it came with another model or input)."""
    key = request.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            {"input.idempotencyKey": f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"}
        )
    async with uow:
        model = await _active_model(uow, request.model_id, "input.modelId")
        problems = schema_errors(model.input_schema, request.input, "input.input")
        if problems:
            raise InvalidInput(problems)
        await _check_assets(uow, principal, request.asset_ids, "input.assetIds")
        candidate = _new_submission(principal, model, request, clock)
        submission, created = await uow.submissions.add(candidate, request.asset_ids)
        if created:
            await uow.events.append([submission_event(EventType.SUBMISSION_CREATED, submission)])
            await uow.commit()
    if not created and (submission.model_id, submission.input) != (model.id, request.input):
        # Replaying a key means "the same request again"; another request under it is a
        # client bug that silently returning the first submission would hide.
        raise Conflict(
            "this idempotencyKey was used for a request with another model or input; use a new key"
        )
    return submission


async def create_batch(
    uow: UnitOfWork,
    principal: Principal,
    model_id: UUID | None,
    inputs: Sequence[JSONValue],
    *,
    clock: Clock,
    callback_url: str | None = None,
    metadata: Metadata = (),
    runner: BatchRunner | None = None,
) -> list[Submission]:
    """Validate every input first; store all in one transaction, in input order, with the
    batch row that tracks them (each submission's batch_id names it). When this process has
    an idle claim loop for the model's runtime, the batch is this process's: `runner` begins
    its run at once, and when the run ends within the runner's `inline_seconds` the batch
    is stored finished (each submission's PENDING, RUNNING and final events, its result,
    the batch completed). Otherwise it is stored already claimed (RUNNING under a lease,
    after its PENDING event) and handed to the loop after commit, with the run if one was
    begun (the loop records it; a passing failure is retried as any): no claim statement,
    no wait for a wake-up. Either way, what is accepted commits whole or not at all.
    Returns the submissions as accepted (PENDING)."""
    if not 1 <= len(inputs) <= MAX_BATCH:
        raise InvalidInput({"input.inputs": f"must hold 1 to {MAX_BATCH} items, got {len(inputs)}"})
    async with uow:
        model = await _active_model(uow, model_id, "input.modelId")
        problems = batch_schema_errors(model.input_schema, inputs, "input.inputs")
        if problems:
            raise InvalidInput(problems)
        batch = _new_batch(principal, model, len(inputs), callback_url, clock)
        accepted = _batch_submissions(principal, batch, inputs, metadata, batch.created_at)
        workers = uow.local_workers
        lease = None if workers is None else workers.reserve(model.runtime)
        claimed: list[Submission] = []
        running: asyncio.Future[Sequence[Outcome]] | None = None
        try:
            started = max(clock(), accepted[-1].created_at)  # never before the last creation
            if lease is None:
                await _store_queued(uow, batch, accepted)
            else:
                run = _Run(batch, model, accepted, started)
                claimed, running = await _store_run(uow, run, runner, lease, clock)
        except BaseException:
            if workers is not None and lease is not None:
                workers.release()
            raise
        if workers is not None and lease is not None and not claimed:
            workers.release()  # it ran at once: the loop held for it is free again
    if workers is not None and claimed:
        workers.hand(claimed, started, running)
    return accepted


@dataclass(frozen=True, slots=True)
class _Run:
    """A batch being stored while its run goes on: accepted, RUNNING from `started`."""

    batch: Batch
    model: Model
    accepted: list[Submission]
    started: datetime

    def claimed(self) -> list[Submission]:
        """Each RUNNING from `started`, this process's: what is stored when the run does
        not end within the runner's inline_seconds."""
        return [run_from(s, self.started) for s in self.accepted]


async def _store_run(
    uow: UnitOfWork, run: _Run, runner: BatchRunner | None, lease: timedelta, clock: Clock
) -> tuple[list[Submission], asyncio.Future[Sequence[Outcome]] | None]:
    """Write a batch this process's held loop takes, while `runner` runs it, and commit.
    What does not depend on the run (each submission's PENDING and RUNNING events) is sent
    first; the run begins while PostgreSQL writes that (the model's thread has the
    interpreter to itself meanwhile), and its ends are made ready while that statement
    executes. A run within the runner's `inline_seconds` with no passing failure: stored
    finished (the batch completed, as settle would find it, with its BATCH_COMPLETED; each
    submission as its outcome ended it, its result, its final event; the model's timings
    and statistics, those made while PostgreSQL writes the rest), nothing to hand over.
    Otherwise (or not run here) stored claimed under `lease` for the loop: returns the
    claim and the run, if begun."""
    told = asyncio.ensure_future(uow.events.append_began(run.accepted, run.started))
    running: asyncio.Future[Sequence[Outcome]] | None = None
    outcomes, finals = None, None
    try:
        await asyncio.sleep(0)  # the statement goes out
        begun = None if runner is None else runner.start_batch(run.model, run.accepted)
        if begun is not None and runner is not None:
            running = asyncio.ensure_future(begun)
            outcomes = await _within(running, runner.inline_seconds)
        ended = max(clock(), run.started)
        if outcomes is not None and not any(_is_passing(o) for o in outcomes):
            finals = [
                finished_change(s, run.model, o, ended)
                for s, o in zip(run.accepted, outcomes, strict=True)
            ]
    finally:
        await told
    if outcomes is None or finals is None:
        await uow.batches.add(run.batch)
        claimed = run.claimed()
        await uow.submissions.add_many(claimed, lease_until=run.started + lease)
        await uow.commit()
        return claimed, running
    completed = _completed(run.batch, finals, ended)
    await uow.batches.add(completed)
    ran = list(zip(run.accepted, outcomes, strict=True))
    # The statistics are made while PostgreSQL writes the submissions.
    tally = await uow.submissions.add_finished(
        finals, meanwhile=lambda: statistics_of(run.model, ran, ended)
    )
    await uow.events.append([batch_event(EventType.BATCH_COMPLETED, completed)])
    took = ended - run.started
    await uow.models.record_work(run.model.id, len(ran), took, ended, tally=tally)
    await uow.commit()
    return [], running


def _completed(batch: Batch, finals: Sequence[SubmissionChange], ended: datetime) -> Batch:
    """The batch as settle would find it once its every submission ended as `finals` did,
    in the transaction that stores it: completed at `ended`, counted from the ends."""
    statuses = [c.submission.status for c in finals]
    counts = BatchCounts(
        succeeded=statuses.count(SubmissionStatus.SUCCEEDED),
        failed=statuses.count(SubmissionStatus.FAILED),
    )
    return replace(batch, updated_at=ended, completed_at=ended, counts=counts)


async def _within(
    running: asyncio.Future[Sequence[Outcome]], seconds: float
) -> Sequence[Outcome] | None:
    """The run's outcomes if it ends within `seconds`, else None (it goes on)."""
    try:
        return await asyncio.wait_for(asyncio.shield(running), seconds)
    except TimeoutError:
        return None


def _is_passing(outcome: Outcome) -> bool:
    return isinstance(outcome, ModelFailure) and outcome.is_transient


async def _store_queued(uow: UnitOfWork, batch: Batch, accepted: list[Submission]) -> None:
    """Write the batch and its PENDING submissions for the queue, and commit."""
    await uow.batches.add(batch)
    await uow.submissions.add_many(accepted)
    await uow.events.append_changes(
        [SubmissionChange(EventType.SUBMISSION_CREATED, s) for s in accepted]
    )
    await uow.commit()


async def _change(
    uow: UnitOfWork, principal: Principal, submission_id: UUID, retry: bool, clock: Clock
) -> Submission:
    async with uow:
        [found] = visible_only(principal, await uow.submissions.get_many([submission_id]))
        if found is None:
            raise NotFound("Submission", submission_id)
        require_owner(principal, found, "submission")
        changed = found.retried(clock()) if retry else found.cancelled(clock())
        saved = await uow.submissions.save_state(changed, expected=found.status)
        if saved is None:
            raise Conflict("the submission changed state meanwhile; read it and try again")
        await uow.events.append([submission_event(EventType.SUBMISSION_UPDATED, saved)])
        if retry and saved.batch_id is not None:
            # Unfinished again: the batch is not COMPLETED any more until this one finishes.
            await uow.batches.reopen(saved.batch_id, saved.updated_at)
        await settle(uow, [saved.batch_id], saved.updated_at)
        await uow.commit()
    return saved


async def cancel_submission(
    uow: UnitOfWork, principal: Principal, submission_id: UUID, *, clock: Clock
) -> Submission:
    return await _change(uow, principal, submission_id, retry=False, clock=clock)


async def retry_submission(
    uow: UnitOfWork, principal: Principal, submission_id: UUID, *, clock: Clock
) -> Submission:
    return await _change(uow, principal, submission_id, retry=True, clock=clock)
