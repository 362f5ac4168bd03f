"""Synchronous inference (runInference): the model runs in the process that took the call.

Concurrent calls of one model form one `predict` call and one group commit (submissions,
results and events, one INSERT each); a caller is answered only once its group committed.
A model this process has no runtime for goes through the queue, as createSubmission does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from domain.errors import Conflict, InvalidInput
from domain.event_payloads import SubmissionChange, events_of
from domain.events import EventType
from domain.models import JSONValue, Model, ModelFailure
from domain.ports import (
    Clock,
    LoadsAhead,
    ModelRuntime,
    ServingObserver,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain.principal import Principal
from domain.services.batcher import BatchPolicy, DynamicBatcher
from domain.services.inference import Outcome, finished_change, predict, run_from
from domain.services.recording import record_statistics, statistics_of
from domain.services.submissions import (
    MAX_IDEMPOTENCY_KEY,
    SubmissionRequest,
    _active_model,
    _check_assets,
    _new_submission,
    create_submission,
)
from domain.services.waiting import SubmissionWatch, wait_until_finished
from domain.submissions import FinishedRun, Result, Submission
from domain.validation import schema_errors

logger = logging.getLogger(__name__)

Answer = tuple[Submission, Result | None]

# runtime_config keys a model's manifest may set its own batching with.
MAX_BATCH_SIZE_KEY = "max_batch_size"
MAX_BATCH_DELAY_KEY = "max_batch_delay_ms"
# Runs of a call whose cached model turned out stale at the write (registered again).
_ATTEMPTS = 3
_MAX_CACHED_MODELS = 1_000


class ModelChanged(Exception):
    """The group's model was registered again or deactivated after it was read: its group
    wrote nothing, and its callers run again against the model as it is now."""


@dataclass(frozen=True, slots=True)
class ServingPolicy:
    batching: BatchPolicy = field(default_factory=BatchPolicy)
    # Per model, by "name:version" or "name"; these win over the model's runtime_config.
    by_model: Mapping[str, BatchPolicy] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    # batchInference of a model this process runs, while a worker loop here idles: the
    # accept waits this long for the batch's run (stored finished), else the loop takes the
    # run over; 0: never run at accept.
    batch_inline_seconds: float = 0.1

    def for_model(self, model: Model) -> BatchPolicy:
        for key in (f"{model.name}:{model.version}", model.name):
            if key in self.by_model:
                return self.by_model[key]
        size = model.runtime_config.get(MAX_BATCH_SIZE_KEY)
        delay = model.runtime_config.get(MAX_BATCH_DELAY_KEY)
        policy = self.batching
        if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            policy = replace(policy, max_batch_size=size)
        if isinstance(delay, int | float) and not isinstance(delay, bool) and delay >= 0:
            policy = replace(policy, max_delay_seconds=delay / 1000)
        return policy


@dataclass(frozen=True, slots=True)
class Call:
    """One caller's request in a group: its submission as created (PENDING), its assets."""

    submission: Submission
    asset_ids: Sequence[UUID] = ()


class SynchronousInference:
    """runInference's use case; one per process, made by the composition root."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        runtimes: Mapping[str, ModelRuntime],
        policy: ServingPolicy,
        *,
        clock: Clock,
        watch: SubmissionWatch,
        reads: UnitOfWorkFactory | None = None,
        group_writes: UnitOfWorkFactory | None = None,
        observer: ServingObserver | None = None,
        ticks: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`group_writes`: units of work for a group's one-statement write, autocommit from
        the start (else `uow`'s, which the write puts in autocommit)."""
        self._uow = uow
        self._reads = reads or uow
        self._group_writes = group_writes or uow
        self._runtimes = runtimes
        self._policy = policy
        self._clock = clock
        self._watch = watch
        self._observer = observer
        self._ticks = ticks
        self._batcher: DynamicBatcher[Model, Call, Answer] = DynamicBatcher(
            self._answer_group, on_wait=self._waited, ticks=ticks
        )
        # Active models as last read: a plain call reads nothing before its group's write,
        # which inserts nothing unless the model is still as read (ModelChanged otherwise).
        self._models: dict[UUID, Model] = {}

    async def run(self, principal: Principal, request: SubmissionRequest) -> Answer:
        """The submission finished (or, past the timeout, as it is) with its result."""
        arrived = self._ticks()
        key = request.idempotency_key
        if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidInput(
                {"input.idempotencyKey": f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"}
            )
        for attempt in range(1, _ATTEMPTS + 1):
            model, earlier = await self._checked(principal, request)
            if earlier is not None:
                return earlier
            if model.runtime not in self._runtimes:
                return await self._through_the_queue(principal, request)
            call = Call(_new_submission(principal, model, request, self._clock), request.asset_ids)
            # Keyed by the model as read, so that a group never mixes two readings of it.
            lane = (model.id, model.updated_at)
            try:
                answer = await self._batcher.submit(
                    lane, model, self._policy.for_model(model), call
                )
                break
            except ModelChanged:
                if self._models.get(model.id) is model:
                    del self._models[model.id]
                if attempt == _ATTEMPTS:
                    raise Conflict("the model changed during the call; try again") from None
        if self._observer is not None:
            self._observer.answered(model.name, model.version, self._ticks() - arrived)
        return answer

    @property
    def inline_seconds(self) -> float:
        """domain.ports.BatchRunner: how long an accept waits for its batch's run."""
        return self._policy.batch_inline_seconds

    def start_batch(
        self, model: Model, batch: Sequence[Submission]
    ) -> asyncio.Future[list[Outcome]] | None:
        """domain.ports.BatchRunner: the batch's run as a group's (timeout, failures found
        input by input, answers checked, the model's max_batch_size kept), begun now, or
        None."""
        if self._policy.batch_inline_seconds <= 0 or model.runtime not in self._runtimes:
            return None
        started = self._ticks()
        running = asyncio.ensure_future(self._predict_in_chunks(model, batch))
        if self._observer is not None:
            observer = self._observer

            def ran(_: object) -> None:
                observer.ran(model.name, model.version, len(batch), self._ticks() - started)

            running.add_done_callback(ran)
        return running

    async def drain(self) -> None:
        """At shutdown: finish the groups already running, so their callers get answers."""
        await self._batcher.drain()

    async def _checked(
        self, principal: Principal, request: SubmissionRequest
    ) -> tuple[Model, Answer | None]:
        """The model, once the input and assets pass; the first answer if the key was used.
        A call with neither key nor assets reads nothing when the model is cached."""
        cached = self._models.get(request.model_id) if request.model_id else None
        if cached is not None and request.idempotency_key is None and not request.asset_ids:
            _check_input(cached, request)
            return cached, None
        async with self._reads() as uow:
            model = await _active_model(uow, request.model_id, "input.modelId")
            self._remember(model)
            _check_input(model, request)
            await _check_assets(uow, principal, request.asset_ids, "input.assetIds")
            if request.idempotency_key is None:
                return model, None
            keys = [(principal.user_id, request.idempotency_key)]
            [first] = await uow.submissions.get_by_idempotency_keys(keys)
            if first is None:
                return model, None
            [results] = await uow.results.list_for_submissions([first.id])
        return model, _replayed(first, results, model.id, request.input)

    def _remember(self, model: Model) -> None:
        if len(self._models) >= _MAX_CACHED_MODELS:
            self._models.clear()
        self._models[model.id] = model

    async def _through_the_queue(self, principal: Principal, request: SubmissionRequest) -> Answer:
        # Another process has this model's runtime: queue it, and wait to be woken.
        created = await create_submission(self._uow(), principal, request, clock=self._clock)
        return await wait_until_finished(
            self._reads, self._watch, principal, created.id, self._policy.timeout_seconds
        )

    def _waited(self, model: Model, seconds: float) -> None:
        if self._observer is not None:
            self._observer.waited(model.name, model.version, seconds)

    async def _answer_group(self, model: Model, calls: list[Call]) -> list[Answer | Exception]:
        started_at, started = self._clock(), self._ticks()
        outcomes = await self._predict(model, [c.submission for c in calls])
        if self._observer is not None:
            self._observer.ran(model.name, model.version, len(calls), self._ticks() - started)
        return await record_group(
            self._group_writes, model, calls, outcomes, started_at, self._clock()
        )

    async def _predict_in_chunks(self, model: Model, batch: Sequence[Submission]) -> list[Outcome]:
        """One call per `max_batch_size` inputs when the model declares it (what its runtime
        can take at once), else one call."""
        size = model.runtime_config.get(MAX_BATCH_SIZE_KEY)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            size = len(batch)
        outcomes: list[Outcome] = []
        for start in range(0, len(batch), size):
            outcomes += await self._predict(model, batch[start : start + size])
        return outcomes

    async def _predict(self, model: Model, batch: Sequence[Submission]) -> list[Outcome]:
        timeout = self._policy.timeout_seconds
        try:
            outcomes = await asyncio.wait_for(predict(self._runtimes, model, batch), timeout)
        except TimeoutError:
            failure = ModelFailure(
                f"the model did not answer within {timeout:g} s", is_transient=False
            )
            return [failure] * len(batch)
        except Exception:  # a runtime's bug: recorded as a failure, not lost with the group
            logger.exception("model %s %s failed unexpectedly", model.name, model.version)
            return [ModelFailure("the model failed unexpectedly", is_transient=False)] * len(batch)
        if len(outcomes) != len(batch):
            if len(batch) > 1:  # find the input it stumbles on
                return [o for s in batch for o in await self._predict(model, [s])]
            failure = ModelFailure(
                f"the model gave {len(outcomes)} answers for one input", is_transient=False
            )
            return [failure]
        return [_finite(outcome) for outcome in outcomes]


def _check_input(model: Model, request: SubmissionRequest) -> None:
    problems = schema_errors(model.input_schema, request.input, "input.input")
    if problems:
        raise InvalidInput(problems)


def _replayed(
    first: Submission, results: Sequence[Result], model_id: UUID, value: JSONValue
) -> Answer:
    if (first.model_id, first.input) != (model_id, value):
        # As createSubmission: another request under a used key is a client bug.
        raise Conflict(
            "this idempotencyKey was used for a request with another model or input; use a new key"
        )
    return first, (results[-1] if results else None)


def _is_finite(value: JSONValue) -> bool:
    """No NaN or infinity anywhere in it (a call per container, not per number)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        items: Iterable[JSONValue] = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return True
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if not _is_finite(item):
            return False
    return True


def _finite(outcome: Outcome) -> Outcome:
    """NaN or infinity cannot be stored as JSON nor sent as a GraphQL Float: that input fails."""
    if isinstance(outcome, ModelFailure):
        return outcome
    confidence = outcome.confidence
    if (
        (confidence is None or math.isfinite(confidence))
        and _is_finite(outcome.prediction)
        and all(math.isfinite(a.confidence) and _is_finite(a.value) for a in outcome.alternatives)
    ):
        return outcome
    return ModelFailure("the model answered with a number that is not finite", is_transient=False)


def _finished(
    submission: Submission, model: Model, outcome: Outcome, started: datetime, ended: datetime
) -> FinishedRun:
    """The submission as it ends, with the events a queued one would have had, in order."""
    running = run_from(submission, started)
    end = finished_change(submission, model, outcome, ended)
    changes = [
        SubmissionChange(EventType.SUBMISSION_CREATED, submission),
        SubmissionChange(EventType.SUBMISSION_UPDATED, running),
        end,
    ]
    return FinishedRun(end.submission, end.result, events_of(changes))


async def record_group(
    uow: UnitOfWorkFactory,
    model: Model,
    calls: Sequence[Call],
    outcomes: Sequence[Outcome],
    started: datetime,
    ended: datetime,
) -> list[Answer | Exception]:
    """Write the group with its statistics as one statement that commits on its own (no
    transaction block: one round trip): its submissions (already finished), results,
    events, assets and the model's rollup (see add_finished_runs). A call whose idempotency
    key was used meanwhile (a concurrent call with the same key) is answered with the first
    submission; the statement then counted none of the group, and the kept rows' tally is
    added by a second statement. Raises ModelChanged, writing nothing, when `model` is no
    longer as it was read."""
    finished = [
        _finished(c.submission, model, o, started, ended)
        for c, o in zip(calls, outcomes, strict=True)
    ]
    assets = {c.submission.id: c.asset_ids for c in calls if c.asset_ids}
    ran = [(c.submission, o) for c, o in zip(calls, outcomes, strict=True)]
    async with uow() as writer:
        writer.autocommit()
        inserted = await writer.submissions.add_finished_runs(
            finished, assets, model=model, tally=statistics_of(model, ran, ended)
        )
        if not inserted and not await _all_replays(writer, model, calls):
            raise ModelChanged(model.id)
        if inserted and len(inserted) < len(calls):
            # Only a race of one key's calls gets here (a used key is found before the
            # group): the kept rows' statistics, a moment after their work.
            kept = [(s, o) for s, o in ran if s.id in inserted]
            await record_statistics(writer, model, kept, ended)
        await writer.commit()
    kept_runs = [f for f in finished if f.submission.id in inserted]
    answers: dict[UUID, Answer | Exception] = {
        f.submission.id: (f.submission, f.result) for f in kept_runs
    }
    replays = [c.submission for c in calls if c.submission.id not in inserted]
    if replays:
        answers.update(await _first_answers(uow, replays))
    return [answers[c.submission.id] for c in calls]


async def _all_replays(writer: UnitOfWork, model: Model, calls: Sequence[Call]) -> bool:
    """Whether a group that inserted nothing was all used idempotency keys (else its model
    changed); read only when every call has a key."""
    if any(c.submission.idempotency_key is None for c in calls):
        return False
    [now] = await writer.models.get_many([model.id])
    return now is not None and now.is_active and now.updated_at == model.updated_at


async def _first_answers(
    uow: UnitOfWorkFactory, replays: Sequence[Submission]
) -> dict[UUID, Answer | Exception]:
    keys = [(s.owner_id, s.idempotency_key or "") for s in replays]
    async with uow() as reader:
        firsts = await reader.submissions.get_by_idempotency_keys(keys)
        found = [f.id for f in firsts if f is not None]
        results = dict(zip(found, await reader.results.list_for_submissions(found), strict=True))
    answers: dict[UUID, Answer | Exception] = {}
    for replay, first in zip(replays, firsts, strict=True):
        if first is None:  # the first one was erased meanwhile
            answers[replay.id] = Conflict("this idempotencyKey's submission is gone; use a new key")
            continue
        try:
            answers[replay.id] = _replayed(first, results[first.id], replay.model_id, replay.input)
        except Conflict as conflict:
            answers[replay.id] = conflict
    return answers


async def load_ahead(
    uow: UnitOfWork, runtimes: Mapping[str, ModelRuntime], stop: asyncio.Event | None = None
) -> list[Model]:
    """Load every active model whose runtime can (LoadsAhead), one after another, before
    anyone asks: a process's first prediction of a local model otherwise waits for its
    artifact (~1.3 s for a scikit-learn one here). A model that fails to load is logged and
    left to its first prediction, which answers that failure in the contract's terms.
    Returns the models loaded."""
    async with uow:
        active = await uow.models.list_active()
    loaded: list[Model] = []
    for model in active:
        runtime = runtimes.get(model.runtime)
        if not isinstance(runtime, LoadsAhead) or (stop is not None and stop.is_set()):
            continue
        try:
            await runtime.load(model)
        except ModelFailure as failure:
            logger.warning("model %s %s not loaded ahead: %s", model.name, model.version, failure)
            continue
        loaded.append(model)
    return loaded
