"""runInference's use case against fakes: one predict call and one group write per group,
each caller its own answer, failures per input, timeouts, idempotency, the queue fallback."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.errors import Conflict, InvalidInput
from domain.events import Event, EventType
from domain.models import JSONValue, Model, ModelFailure
from domain.monitoring import Tally
from domain.ports import ModelRuntime
from domain.principal import Principal
from domain.services.batcher import BatchPolicy
from domain.services.serving import ServingPolicy, SynchronousInference
from domain.services.submissions import SubmissionRequest
from domain.services.waiting import SubmissionWatch
from domain.submissions import FinishedRun, Prediction, Submission, SubmissionStatus
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"x": {"type": "number"}},
    "required": ["x"],
}


def principal() -> Principal:
    ident = uuid.uuid4()
    return Principal(user_id=ident, subject=f"sub-{ident}", groups=(), is_admin=False)


def add_model(data: FakeData, runtime: str = "local", **config: JSONValue) -> Model:
    model = Model(
        id=uuid.uuid4(),
        name="m",
        version="1",
        description="",
        input_schema=SCHEMA,
        output_schema={},
        runtime=runtime,
        runtime_config=dict(config),
    )
    data.models[model.id] = model
    return model


@dataclass
class Runtime:
    """Predicts x * 2; x == 13 fails (for that input alone), x == 99 answers NaN; while
    `gate` is cleared it never answers."""

    calls: list[list[JSONValue]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        self.calls.append(list(inputs))
        await self.gate.wait()
        if any(i["x"] == 13 for i in inputs):
            raise ModelFailure("13 is unlucky", is_transient=False)
        return [
            Prediction({"y": math.nan if i["x"] == 99 else i["x"] * 2}, 0.5, (), 1) for i in inputs
        ]


@dataclass
class Observer:
    seen: list[tuple[str, str, str, float]] = field(default_factory=list)

    def waited(self, name: str, version: str, seconds: float) -> None:
        self.seen.append(("waited", name, version, 1))

    def ran(self, name: str, version: str, size: int, seconds: float) -> None:
        self.seen.append(("ran", name, version, size))

    def answered(self, name: str, version: str, seconds: float) -> None:
        self.seen.append(("answered", name, version, 1))


@dataclass
class Writes:
    """A unit-of-work factory over `data` that counts the group writes."""

    data: FakeData
    group_writes: int = 0
    model_reads: int = 0
    # Per group write: whether its unit of work commits each statement alone.
    autocommitted: list[bool] = field(default_factory=list)

    def __call__(self) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.data)
        original = uow.submissions.add_finished_runs
        read_models = uow.models.get_many

        async def counted(
            runs: Sequence[FinishedRun],
            asset_ids: Mapping[uuid.UUID, Sequence[uuid.UUID]],
            *,
            model: Model | None = None,
            tally: Tally | None = None,
        ) -> set[uuid.UUID]:
            self.group_writes += 1
            self.autocommitted.append(uow.autocommits)
            return await original(runs, asset_ids, model=model, tally=tally)

        async def models_read(ids: Sequence[uuid.UUID]) -> list[Model | None]:
            self.model_reads += 1
            return await read_models(ids)

        uow.submissions.add_finished_runs = counted  # type: ignore[method-assign]  # a spy
        uow.models.get_many = models_read  # type: ignore[method-assign]  # a spy
        return uow


def service(
    data: FakeData,
    runtimes: dict[str, ModelRuntime],
    *,
    timeout: float = 30.0,
    watch: SubmissionWatch | None = None,
    observer: Observer | None = None,
    batching: BatchPolicy | None = None,
    batch_inline: float = 0.1,
) -> tuple[SynchronousInference, Writes]:
    writes = Writes(data)
    policy = ServingPolicy(
        batching or BatchPolicy(), timeout_seconds=timeout, batch_inline_seconds=batch_inline
    )
    inference = SynchronousInference(
        writes,
        runtimes,
        policy,
        clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)),
        watch=watch or SubmissionWatch(),
        observer=observer,
    )
    return inference, writes


def arriving_together(calls: int) -> BatchPolicy:
    """Batching that holds a group until `calls` callers are in it (a lone caller on an idle
    key would otherwise run at once, alone): for tests of what a group of several does."""
    return BatchPolicy(max_batch_size=calls, max_delay_seconds=5.0)


def events_of(data: FakeData, subject: uuid.UUID) -> list[tuple[EventType, JSONValue]]:
    return [(e.type, e.payload.get("status")) for e in data.events if e.subject_id == subject]


async def test_concurrent_calls_are_one_predict_call_and_one_group_write() -> None:
    data, runtime = FakeData(), Runtime()
    model = add_model(data)
    inference, writes = service(data, {"local": runtime}, batching=arriving_together(3))
    who = [principal() for _ in range(3)]

    answers = await asyncio.gather(
        *(inference.run(p, SubmissionRequest(model.id, {"x": n})) for n, p in enumerate(who))
    )

    assert runtime.calls == [[{"x": 0}, {"x": 1}, {"x": 2}]]
    assert writes.group_writes == 1
    for n, (submission, result) in enumerate(answers):
        assert submission.owner_id == who[n].user_id  # each caller its own answer
        assert (submission.status, submission.attempts) == (SubmissionStatus.SUCCEEDED, 1)
        assert result is not None
        assert result.prediction == {"y": n * 2}
        assert data.submissions[submission.id].submission == submission
        assert data.results[result.id] == result
        assert events_of(data, submission.id) == [
            (EventType.SUBMISSION_CREATED, "PENDING"),
            (EventType.SUBMISSION_UPDATED, "RUNNING"),
            (EventType.SUBMISSION_SUCCEEDED, "SUCCEEDED"),
        ]
        assert [e.type for e in data.events if e.subject_id == result.id] == [
            EventType.RESULT_CREATED
        ]


async def test_the_succeeded_event_carries_the_result() -> None:
    data = FakeData()
    model = add_model(data)
    inference, _ = service(data, {"local": Runtime()})

    _, result = await inference.run(principal(), SubmissionRequest(model.id, {"x": 4}))

    assert result is not None
    [succeeded] = [e for e in data.events if e.type is EventType.SUBMISSION_SUCCEEDED]
    assert succeeded.payload["prediction"] == {"y": 8}
    assert succeeded.payload["attempts"] == 1


async def test_one_failing_input_fails_only_its_own_submission() -> None:
    data, runtime = FakeData(), Runtime()
    model = add_model(data)
    inference, writes = service(data, {"local": runtime}, batching=arriving_together(3))

    answers = await asyncio.gather(
        *(inference.run(principal(), SubmissionRequest(model.id, {"x": x})) for x in (1, 13, 99))
    )

    [(good, good_result), (bad, bad_result), (nan, nan_result)] = answers
    assert good.status is SubmissionStatus.SUCCEEDED
    assert good_result is not None
    assert (bad.status, bad_result) == (SubmissionStatus.FAILED, None)
    assert bad.error is not None
    assert "13 is unlucky" in bad.error
    assert (nan.status, nan_result) == (SubmissionStatus.FAILED, None)
    assert nan.error == "the model answered with a number that is not finite"
    assert events_of(data, bad.id) == [
        (EventType.SUBMISSION_CREATED, "PENDING"),
        (EventType.SUBMISSION_UPDATED, "RUNNING"),
        (EventType.SUBMISSION_FAILED, "FAILED"),
    ]
    assert writes.group_writes == 1
    assert len(data.results) == 1


async def test_a_model_past_the_timeout_is_recorded_failed() -> None:
    data, runtime = FakeData(), Runtime()
    runtime.gate.clear()  # never answers
    model = add_model(data)
    inference, _ = service(data, {"local": runtime}, timeout=0.01)

    submission, result = await inference.run(principal(), SubmissionRequest(model.id, {"x": 1}))

    assert (submission.status, result) == (SubmissionStatus.FAILED, None)
    assert submission.error == "the model did not answer within 0.01 s"
    assert data.submissions[submission.id].submission.status is SubmissionStatus.FAILED


async def test_invalid_input_is_refused_and_changes_nothing() -> None:
    data, runtime = FakeData(), Runtime()
    model = add_model(data)
    inference, _ = service(data, {"local": runtime})

    with pytest.raises(InvalidInput) as refused:
        await inference.run(principal(), SubmissionRequest(model.id, {"x": "one"}))

    assert "input.input.x" in refused.value.fields
    assert (runtime.calls, data.submissions, data.events) == ([], {}, [])


async def test_an_idempotency_key_replayed_returns_the_first_answer_without_predicting() -> None:
    data, runtime = FakeData(), Runtime()
    model = add_model(data)
    inference, _ = service(data, {"local": runtime})
    who = principal()
    request = SubmissionRequest(model.id, {"x": 3}, idempotency_key="k-1")

    first = await inference.run(who, request)
    again = await inference.run(who, request)

    assert again == first
    assert len(runtime.calls) == 1
    with pytest.raises(Conflict):
        await inference.run(who, replace(request, input={"x": 4}))


async def test_concurrent_calls_with_one_key_give_one_submission() -> None:
    data = FakeData()
    model = add_model(data)
    inference, _ = service(data, {"local": Runtime()})
    who = principal()
    request = SubmissionRequest(model.id, {"x": 3}, idempotency_key="burst")

    answers = await asyncio.gather(*(inference.run(who, request) for _ in range(4)))

    assert len({submission.id for submission, _ in answers}) == 1
    assert len(data.submissions) == 1
    assert len(data.results) == 1
    assert all(result is not None and result.prediction == {"y": 6} for _, result in answers)


def counted(data: FakeData) -> tuple[int, int]:
    """Predictions and failures in every rollup row."""
    rows = data.tallies.values()
    return sum(t.predictions for t in rows), sum(t.failures for t in rows)


async def test_a_group_and_its_statistics_are_one_write_that_commits_alone() -> None:
    data = FakeData()
    model = add_model(data)
    inference, writes = service(data, {"local": Runtime()}, batching=arriving_together(2))
    who = principal()

    await asyncio.gather(
        *(inference.run(who, SubmissionRequest(model.id, {"x": x})) for x in (1, 13))
    )

    assert writes.group_writes == 1
    assert writes.autocommitted == [True]
    assert counted(data) == (1, 1)  # 13 fails, and counts as a failure


async def test_a_group_with_a_replayed_key_counts_only_the_rows_it_wrote() -> None:
    data = FakeData()
    model = add_model(data)
    inference, writes = service(data, {"local": Runtime()}, batching=arriving_together(4))
    who = principal()
    keyed = SubmissionRequest(model.id, {"x": 3}, idempotency_key="burst")
    calls = [keyed, keyed, keyed, SubmissionRequest(model.id, {"x": 4})]

    await asyncio.gather(*(inference.run(who, request) for request in calls))

    assert writes.group_writes == 1  # one group: the key's first call and the plain call
    assert len(data.submissions) == 2
    assert counted(data) == (2, 0)


async def test_the_observer_hears_wait_model_time_batch_size_and_latency() -> None:
    data, observer = FakeData(), Observer()
    model = add_model(data)
    inference, _ = service(
        data, {"local": Runtime()}, observer=observer, batching=arriving_together(2)
    )

    await asyncio.gather(
        *(inference.run(principal(), SubmissionRequest(model.id, {"x": x})) for x in (1, 2))
    )

    assert sorted(observer.seen) == [
        ("answered", "m", "1", 1),
        ("answered", "m", "1", 1),
        ("ran", "m", "1", 2),
        ("waited", "m", "1", 1),
        ("waited", "m", "1", 1),
    ]


def test_batching_per_model_by_setting_then_runtime_config() -> None:
    data = FakeData()
    default = BatchPolicy(max_batch_size=32)
    by_name = BatchPolicy(max_batch_size=4)
    plain, configured = add_model(data), add_model(data, max_batch_size=8, max_batch_delay_ms=2)
    other = replace(configured, name="other")

    policy = ServingPolicy(default, {"m": by_name})
    assert policy.for_model(plain) == by_name
    assert policy.for_model(configured) == by_name  # the operator's setting wins
    assert ServingPolicy(default).for_model(plain) == default
    assert ServingPolicy(default).for_model(other) == BatchPolicy(8, 0.002)
    exact = ServingPolicy(default, {"m": by_name, "m:1": BatchPolicy(max_batch_size=2)})
    assert exact.for_model(plain).max_batch_size == 2


async def test_a_model_without_a_runtime_here_is_queued_and_woken_when_it_finishes() -> None:
    data, watch = FakeData(), SubmissionWatch(fallback_seconds=3600.0)
    model = add_model(data, runtime="sagemaker")
    inference, _ = service(data, {"local": Runtime()}, watch=watch, timeout=3600.0)

    waiting = asyncio.create_task(inference.run(principal(), SubmissionRequest(model.id, {"x": 1})))
    await settled_until(lambda: bool(data.submissions))
    [row] = data.submissions.values()
    assert row.submission.status is SubmissionStatus.PENDING
    row.submission = replace(row.submission, status=SubmissionStatus.SUCCEEDED)
    watch.notify([event(EventType.SUBMISSION_SUCCEEDED, row.submission.id)])

    submission, _ = await asyncio.wait_for(waiting, 10)
    assert submission.status is SubmissionStatus.SUCCEEDED


async def test_a_lost_wake_up_still_finishes_by_reading_again() -> None:
    data, watch = FakeData(), SubmissionWatch(fallback_seconds=0.01)
    model = add_model(data, runtime="sagemaker")
    inference, _ = service(data, {}, watch=watch, timeout=3600.0)

    waiting = asyncio.create_task(inference.run(principal(), SubmissionRequest(model.id, {"x": 1})))
    await settled_until(lambda: bool(data.submissions))
    [row] = data.submissions.values()
    row.submission = replace(row.submission, status=SubmissionStatus.FAILED)  # no notify

    submission, _ = await asyncio.wait_for(waiting, 10)
    assert submission.status is SubmissionStatus.FAILED


async def test_without_a_runtime_here_the_timeout_answers_it_pending() -> None:
    data = FakeData()
    model = add_model(data, runtime="sagemaker")
    inference, _ = service(data, {}, timeout=0.01)

    submission, result = await inference.run(principal(), SubmissionRequest(model.id, {"x": 1}))

    assert (submission.status, result) == (SubmissionStatus.PENDING, None)


def event(kind: EventType, subject: uuid.UUID) -> Event:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Event(1, kind, uuid.uuid4(), subject, {}, now)


async def settled_until(condition: Any, turns: int = 1000) -> None:
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


async def test_a_model_read_once_is_not_read_again_for_a_plain_call() -> None:
    data = FakeData()
    model = add_model(data)
    inference, writes = service(data, {"local": Runtime()})

    for x in (1, 2, 3):
        submission, _ = await inference.run(principal(), SubmissionRequest(model.id, {"x": x}))
        assert submission.status is SubmissionStatus.SUCCEEDED

    assert (writes.model_reads, writes.group_writes) == (1, 3)


async def test_a_model_registered_again_after_it_was_read_serves_the_call_as_it_is_now() -> None:
    data, runtime = FakeData(), Runtime()
    model = add_model(data)
    inference, writes = service(data, {"local": runtime})
    await inference.run(principal(), SubmissionRequest(model.id, {"x": 1}))
    stored = len(data.submissions)
    # Another process registers it again with a schema this input no longer passes.
    schema = {**SCHEMA, "required": ["x", "z"]}
    data.models[model.id] = replace(
        model, input_schema=schema, updated_at=datetime(2026, 1, 2, tzinfo=UTC)
    )

    with pytest.raises(InvalidInput):
        await inference.run(principal(), SubmissionRequest(model.id, {"x": 2}))

    assert len(data.submissions) == stored  # the group run against the stale copy wrote nothing
    assert writes.model_reads == 2


async def test_a_model_deactivated_after_it_was_read_is_refused() -> None:
    data = FakeData()
    model = add_model(data)
    inference, _ = service(data, {"local": Runtime()})
    await inference.run(principal(), SubmissionRequest(model.id, {"x": 1}))
    data.models[model.id] = replace(model, is_active=False)

    with pytest.raises(InvalidInput, match="no active model"):
        await inference.run(principal(), SubmissionRequest(model.id, {"x": 2}))

    assert len(data.submissions) == 1


def pending(model: Model, *inputs: float) -> list[Submission]:
    """A batch as create_batch accepts it, before it is stored."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Submission(
            uuid.uuid4(),
            uuid.uuid4(),
            model.id,
            {"x": x},
            SubmissionStatus.PENDING,
            None,
            0,
            None,
            at,
            at,
        )
        for x in inputs
    ]


async def test_a_batch_runs_here_with_each_input_checked_as_a_groups() -> None:
    data, runtime, observer = FakeData(), Runtime(), Observer()
    model = add_model(data)
    inference, writes = service(data, {"local": runtime}, observer=observer, batch_inline=0.25)

    running = inference.start_batch(model, pending(model, 1, 13, 99))

    assert running is not None
    first, unlucky, not_finite = await running
    assert isinstance(first, Prediction)
    assert first.prediction == {"y": 2}
    assert isinstance(unlucky, ModelFailure)
    assert "unlucky" in str(unlucky)  # the failing input found alone, the others kept
    assert isinstance(not_finite, ModelFailure)
    assert "not finite" in str(not_finite)
    assert ("ran", "m", "1", 3) in observer.seen
    assert writes.group_writes == 0  # the caller (create_batch) writes the batch
    assert inference.inline_seconds == 0.25


async def test_a_batch_is_not_run_here_without_its_runtime_or_when_turned_off() -> None:
    data, runtime = FakeData(), Runtime()
    model, remote = add_model(data), add_model(data, runtime="sagemaker")
    inference, _ = service(data, {"local": runtime})
    never, _ = service(data, {"local": runtime}, batch_inline=0)

    assert inference.start_batch(remote, pending(remote, 1)) is None  # no runtime here
    assert never.start_batch(model, pending(model, 1)) is None  # turned off
    assert runtime.calls == []


async def test_a_batch_run_here_keeps_the_models_own_batch_size() -> None:
    data, runtime = FakeData(), Runtime()
    model = add_model(data, max_batch_size=2)
    inference, _ = service(data, {"local": runtime})

    running = inference.start_batch(model, pending(model, 1, 2, 3, 4, 5))

    assert running is not None
    outcomes = await running
    assert [len(call) for call in runtime.calls] == [2, 2, 1]
    assert [o.prediction for o in outcomes if isinstance(o, Prediction)] == [
        {"y": 2 * x} for x in (1, 2, 3, 4, 5)
    ]
