"""Submission use cases against fakes: schema validation, idempotency, batches, cancel and retry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.assets import Asset, AssetStatus
from domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.events import EventType
from domain.ids import to_global_id
from domain.models import Model, ModelFailure
from domain.principal import Principal
from domain.services import submissions
from domain.services.submissions import SubmissionRequest
from domain.submissions import Prediction, Submission, SubmissionStatus
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"x": {"type": "number", "minimum": 0}, "label": {"type": "string"}},
    "required": ["x"],
    "additionalProperties": False,
}
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def principal(user_id: UUID | None = None, *, is_admin: bool = False) -> Principal:
    ident = user_id or uuid.uuid4()
    return Principal(user_id=ident, subject=f"sub-{ident}", groups=(), is_admin=is_admin)


def add_model(data: FakeData, *, is_active: bool = True) -> Model:
    model = Model(
        id=uuid.uuid4(),
        name="m",
        version="1",
        description="",
        input_schema=SCHEMA,
        output_schema={},
        runtime="local",
        is_active=is_active,
    )
    data.models[model.id] = model
    return model


def add_asset(data: FakeData, owner: Principal, status: AssetStatus) -> Asset:
    asset = Asset(
        id=uuid.uuid4(),
        owner_id=owner.user_id,
        file_name="a.png",
        content_type="image/png",
        size_bytes=3,
        status=status,
        object_key=f"assets/{uuid.uuid4()}",
        upload_expires_at=None,
        created_at=NOW,
        updated_at=NOW,
    )
    data.assets[asset.id] = asset
    return asset


async def create(data: FakeData, who: Principal, request: SubmissionRequest) -> Submission:
    return await submissions.create_submission(
        FakeUnitOfWork(data), who, request, clock=FakeClock()
    )


async def test_create_stores_a_pending_submission_and_its_event() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)

    created = await create(data, who, SubmissionRequest(model.id, {"x": 1}))

    assert created.status is SubmissionStatus.PENDING
    assert (created.owner_id, created.model_id, created.attempts) == (who.user_id, model.id, 0)
    assert data.submissions[created.id].submission == created
    assert [e.type for e in data.events] == [EventType.SUBMISSION_CREATED]


async def test_create_validates_input_against_the_model_schema() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)

    with pytest.raises(InvalidInput) as raised:
        await create(data, who, SubmissionRequest(model.id, {"x": -1, "label": 3}))

    assert set(raised.value.fields) == {"input.input.x", "input.input.label"}
    assert data.submissions == {}
    assert data.events == []


async def test_create_names_missing_and_extra_properties_at_the_input_root() -> None:
    data = FakeData()
    model = add_model(data)

    with pytest.raises(InvalidInput) as raised:
        await create(data, principal(), SubmissionRequest(model.id, {"y": 1}))

    assert list(raised.value.fields) == ["input.input"]


@pytest.mark.parametrize("model_known", [False, True])
async def test_create_for_unknown_or_inactive_model_is_invalid_input(model_known: bool) -> None:
    data = FakeData()
    model_id = add_model(data, is_active=False).id if model_known else None

    with pytest.raises(InvalidInput) as raised:
        await create(data, principal(), SubmissionRequest(model_id, {"x": 1}))

    assert list(raised.value.fields) == ["input.modelId"]


async def test_same_idempotency_key_returns_the_first_submission() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)

    first = await create(data, who, SubmissionRequest(model.id, {"x": 1}, idempotency_key="k"))
    second = await create(data, who, SubmissionRequest(model.id, {"x": 1}, idempotency_key="k"))

    assert second == first
    assert len(data.submissions) == 1
    assert len(data.events) == 1


@pytest.mark.parametrize("changed", ["input", "model"])
async def test_same_idempotency_key_with_another_model_or_input_is_conflict(changed: str) -> None:
    data, who = FakeData(), principal()
    model, other = add_model(data), add_model(data)
    await create(data, who, SubmissionRequest(model.id, {"x": 1}, idempotency_key="k"))
    replay = (
        SubmissionRequest(model.id, {"x": 2}, idempotency_key="k")
        if changed == "input"
        else SubmissionRequest(other.id, {"x": 1}, idempotency_key="k")
    )

    with pytest.raises(Conflict, match="idempotencyKey"):
        await create(data, who, replay)

    assert len(data.submissions) == 1


async def test_same_idempotency_key_of_two_callers_gives_two_submissions() -> None:
    data = FakeData()
    model = add_model(data)
    request = SubmissionRequest(model.id, {"x": 1}, idempotency_key="k")

    first = await create(data, principal(), request)
    second = await create(data, principal(), request)

    assert first.id != second.id


@pytest.mark.parametrize("key", ["", "k" * 201])
async def test_idempotency_key_length_is_checked(key: str) -> None:
    data = FakeData()
    model = add_model(data)

    with pytest.raises(InvalidInput) as raised:
        await create(data, principal(), SubmissionRequest(model.id, {"x": 1}, idempotency_key=key))

    assert list(raised.value.fields) == ["input.idempotencyKey"]


async def test_create_links_own_available_assets() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)
    asset = add_asset(data, who, AssetStatus.AVAILABLE)

    created = await create(data, who, SubmissionRequest(model.id, {"x": 1}, [asset.id]))

    assert data.submission_assets[created.id] == [asset.id]


async def test_create_refuses_others_missing_and_unavailable_assets_by_position() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)
    ok = add_asset(data, who, AssetStatus.AVAILABLE)
    others = add_asset(data, principal(), AssetStatus.AVAILABLE)
    pending = add_asset(data, who, AssetStatus.PENDING_UPLOAD)
    ids = [ok.id, others.id, pending.id, uuid.uuid4()]

    with pytest.raises(InvalidInput) as raised:
        await create(data, who, SubmissionRequest(model.id, {"x": 1}, ids))

    assert set(raised.value.fields) == {"input.assetIds.1", "input.assetIds.2", "input.assetIds.3"}
    assert raised.value.fields["input.assetIds.1"] == (
        f"asset {to_global_id('Asset', others.id)} not found"
    ), "the message names the API's id, not the raw UUID"
    assert data.submissions == {}


async def test_create_refuses_an_admins_use_of_someone_elses_asset() -> None:
    data = FakeData()
    model = add_model(data)
    others = add_asset(data, principal(), AssetStatus.AVAILABLE)

    with pytest.raises(InvalidInput):
        await create(
            data, principal(is_admin=True), SubmissionRequest(model.id, {"x": 1}, [others.id])
        )


async def test_create_refuses_a_repeated_asset() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)
    asset = add_asset(data, who, AssetStatus.AVAILABLE)

    with pytest.raises(InvalidInput):
        await create(data, who, SubmissionRequest(model.id, {"x": 1}, [asset.id, asset.id]))


async def test_batch_stores_all_in_input_order_with_increasing_times() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)
    inputs = [{"x": n} for n in (3, 1, 2)]

    stored = await submissions.create_batch(
        FakeUnitOfWork(data), who, model.id, inputs, clock=FakeClock()
    )

    assert [s.input for s in stored] == inputs
    assert [s.created_at for s in stored] == sorted({s.created_at for s in stored})
    assert {s.status for s in stored} == {SubmissionStatus.PENDING}
    assert len(data.submissions) == 3
    assert len(data.events) == 3


async def test_batch_names_each_bad_index_and_stores_nothing() -> None:
    data = FakeData()
    model = add_model(data)
    inputs: list[Any] = [{"x": 1}, {"x": -1}, {"x": 2}, "nope", {"x": 3}]

    with pytest.raises(InvalidInput) as raised:
        await submissions.create_batch(
            FakeUnitOfWork(data), principal(), model.id, inputs, clock=FakeClock()
        )

    assert set(raised.value.fields) == {"input.inputs.1.x", "input.inputs.3"}
    assert data.submissions == {}


@pytest.mark.parametrize("size", [0, 1001])
async def test_batch_size_must_be_1_to_1000(size: int) -> None:
    data = FakeData()
    model = add_model(data)

    with pytest.raises(InvalidInput) as raised:
        await submissions.create_batch(
            FakeUnitOfWork(data), principal(), model.id, [{"x": 1}] * size, clock=FakeClock()
        )

    assert list(raised.value.fields) == ["input.inputs"]


async def stored(data: FakeData, who: Principal, status: SubmissionStatus) -> Submission:
    model = add_model(data)
    created = await create(data, who, SubmissionRequest(model.id, {"x": 1}))
    row = data.submissions[created.id]
    row.submission = replace(row.submission, status=status, attempts=2, error="e")
    return row.submission


async def test_cancel_of_pending_submission_cancels() -> None:
    data, who = FakeData(), principal()
    pending = await stored(data, who, SubmissionStatus.PENDING)

    cancelled = await submissions.cancel_submission(
        FakeUnitOfWork(data), who, pending.id, clock=FakeClock()
    )

    assert cancelled.status is SubmissionStatus.CANCELLED
    assert data.submissions[pending.id].submission.status is SubmissionStatus.CANCELLED
    assert data.events[-1].type is EventType.SUBMISSION_UPDATED


@pytest.mark.parametrize(
    "status",
    [
        SubmissionStatus.RUNNING,
        SubmissionStatus.SUCCEEDED,
        SubmissionStatus.FAILED,
        SubmissionStatus.CANCELLED,
    ],
)
async def test_cancel_of_non_pending_submission_is_conflict(status: SubmissionStatus) -> None:
    data, who = FakeData(), principal()
    submission = await stored(data, who, status)

    with pytest.raises(Conflict):
        await submissions.cancel_submission(
            FakeUnitOfWork(data), who, submission.id, clock=FakeClock()
        )
    assert data.submissions[submission.id].submission.status is status


async def test_retry_of_failed_submission_is_pending_without_attempts_or_error() -> None:
    data, who = FakeData(), principal()
    failed = await stored(data, who, SubmissionStatus.FAILED)

    retried = await submissions.retry_submission(
        FakeUnitOfWork(data), who, failed.id, clock=FakeClock()
    )

    assert (retried.status, retried.attempts, retried.error) == (SubmissionStatus.PENDING, 0, None)


@pytest.mark.parametrize(
    "status",
    [
        SubmissionStatus.PENDING,
        SubmissionStatus.RUNNING,
        SubmissionStatus.SUCCEEDED,
        SubmissionStatus.CANCELLED,
    ],
)
async def test_retry_of_non_failed_submission_is_conflict(status: SubmissionStatus) -> None:
    data, who = FakeData(), principal()
    submission = await stored(data, who, status)

    with pytest.raises(Conflict):
        await submissions.retry_submission(
            FakeUnitOfWork(data), who, submission.id, clock=FakeClock()
        )


async def test_cancel_of_anothers_submission_is_not_found_and_forbidden_to_admins() -> None:
    data, owner = FakeData(), principal()
    pending = await stored(data, owner, SubmissionStatus.PENDING)
    failed = await stored(data, owner, SubmissionStatus.FAILED)

    with pytest.raises(NotFound):
        await submissions.cancel_submission(
            FakeUnitOfWork(data), principal(), pending.id, clock=FakeClock()
        )
    admin = principal(is_admin=True)
    with pytest.raises(Forbidden):
        await submissions.cancel_submission(
            FakeUnitOfWork(data), admin, pending.id, clock=FakeClock()
        )
    with pytest.raises(Forbidden):
        await submissions.retry_submission(
            FakeUnitOfWork(data), admin, failed.id, clock=FakeClock()
        )
    assert data.submissions[pending.id].submission.status is SubmissionStatus.PENDING
    assert data.submissions[failed.id].submission.status is SubmissionStatus.FAILED


def _entity(status: SubmissionStatus) -> Submission:
    return Submission(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        input={},
        status=status,
        error="boom" if status is SubmissionStatus.FAILED else None,
        attempts=3,
        idempotency_key=None,
        created_at=NOW,
        updated_at=NOW,
    )


def test_entity_cancel_and_retry_follow_the_state_machine() -> None:
    later = datetime(2026, 2, 1, tzinfo=UTC)

    cancelled = _entity(SubmissionStatus.PENDING).cancelled(later)
    retried = _entity(SubmissionStatus.FAILED).retried(later)

    assert (cancelled.status, cancelled.updated_at) == (SubmissionStatus.CANCELLED, later)
    assert (retried.status, retried.attempts, retried.error) == (SubmissionStatus.PENDING, 0, None)
    with pytest.raises(Conflict, match="RUNNING"):
        _entity(SubmissionStatus.RUNNING).cancelled(later)
    with pytest.raises(Conflict, match="SUCCEEDED"):
        _entity(SubmissionStatus.SUCCEEDED).retried(later)
    assert _entity(SubmissionStatus.CANCELLED).is_finished
    assert not _entity(SubmissionStatus.RUNNING).is_finished


class HeldLoop:
    """A LocalWorkers with one idle loop (or none): records what it is handed."""

    def __init__(self, *, is_idle: bool = True) -> None:
        self.is_idle = is_idle
        self.reserved = 0
        self.handed: list[
            tuple[list[Submission], datetime, Awaitable[Sequence[Prediction | ModelFailure]] | None]
        ] = []

    def reserve(self, runtime: str) -> timedelta | None:
        if not self.is_idle or runtime != "local":
            return None
        self.reserved += 1
        return timedelta(seconds=60)

    def hand(
        self,
        claimed: Sequence[Submission],
        started: datetime,
        running: Awaitable[Sequence[Prediction | ModelFailure]] | None = None,
    ) -> None:
        self.reserved -= 1
        self.handed.append((list(claimed), started, running))

    def release(self) -> None:
        self.reserved -= 1


async def test_a_batch_accepted_by_an_idle_loop_is_stored_claimed_and_handed_over() -> None:
    data, who, loop = FakeData(), principal(), HeldLoop()
    model = add_model(data)
    uow = FakeUnitOfWork(data)
    uow.local_workers = loop

    accepted = await submissions.create_batch(
        uow, who, model.id, [{"x": 1}, {"x": 2}], clock=FakeClock(NOW)
    )

    assert {s.status for s in accepted} == {SubmissionStatus.PENDING}  # the payload's view
    [(claimed, started, _)] = loop.handed
    assert [s.id for s in claimed] == [s.id for s in accepted]
    assert {(s.status, s.attempts) for s in claimed} == {(SubmissionStatus.RUNNING, 1)}
    assert started == NOW + timedelta(microseconds=1)
    for s in accepted:
        row = data.submissions[s.id]
        assert row.submission.status is SubmissionStatus.RUNNING
        assert row.lease_expires_at == started + timedelta(seconds=60)
    told = [(e.subject_id, e.type, e.payload["status"]) for e in data.events]
    for s in accepted:  # each submission's PENDING, then its RUNNING, once each
        assert [(t, status) for i, t, status in told if i == s.id] == [
            (EventType.SUBMISSION_CREATED, "PENDING"),
            (EventType.SUBMISSION_UPDATED, "RUNNING"),
        ]
    assert loop.reserved == 0


async def test_a_batch_is_left_to_the_queue_when_no_loop_idles_or_the_runtime_is_elsewhere() -> (
    None
):
    data, who = FakeData(), principal()
    model = add_model(data)
    elsewhere = replace(model, id=uuid.uuid4(), runtime="sagemaker")
    data.models[elsewhere.id] = elsewhere
    for loop, model_id in ((HeldLoop(is_idle=False), model.id), (HeldLoop(), elsewhere.id)):
        uow = FakeUnitOfWork(data)
        uow.local_workers = loop
        accepted = await submissions.create_batch(uow, who, model_id, [{"x": 1}], clock=FakeClock())
        assert loop.handed == []
        assert data.submissions[accepted[0].id].submission.status is SubmissionStatus.PENDING
        assert data.submissions[accepted[0].id].lease_expires_at is None


class Runner:
    """A BatchRunner: x > 100 fails for good, x == 7 fails for now, else y = 2x; it runs
    nothing with `runs` off, and its runs end only once `gate` is set."""

    def __init__(self, *, runs: bool = True, inline_seconds: float = 1.0) -> None:
        self.runs = runs
        self.inline_seconds = inline_seconds
        self.calls: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    def start_batch(
        self, model: Model, batch: Sequence[Submission]
    ) -> asyncio.Future[list[Prediction | ModelFailure]] | None:
        if not self.runs:
            return None
        self.calls.append(len(batch))
        return asyncio.ensure_future(self._run(batch))

    async def _run(self, batch: Sequence[Submission]) -> list[Prediction | ModelFailure]:
        await self.gate.wait()
        return [_outcome(s.input["x"]) for s in batch]


def _outcome(x: float) -> Prediction | ModelFailure:
    if x > 100:
        return ModelFailure("too big", is_transient=False)
    if x == 7:
        return ModelFailure("busy", is_transient=True)
    return Prediction({"y": x * 2}, 0.5, (), 1)


async def test_a_batch_run_at_accept_is_stored_finished_as_a_queued_one_ends() -> None:
    data, who, loop, runner = FakeData(), principal(), HeldLoop(), Runner()
    model = add_model(data)
    uow = FakeUnitOfWork(data)
    uow.local_workers = loop

    accepted = await submissions.create_batch(
        uow, who, model.id, [{"x": 1}, {"x": 200}], clock=FakeClock(NOW), runner=runner
    )

    assert runner.calls == [2]
    assert {s.status for s in accepted} == {SubmissionStatus.PENDING}  # the payload's view
    assert (loop.handed, loop.reserved) == ([], 0)  # the held loop is free again
    done, failed = (data.submissions[s.id].submission for s in accepted)
    assert (done.status, done.attempts, done.error) == (SubmissionStatus.SUCCEEDED, 1, None)
    assert (failed.status, failed.attempts) == (SubmissionStatus.FAILED, 1)
    assert "too big" in str(failed.error)
    assert [r.prediction for r in data.results.values() if r.submission_id == done.id] == [{"y": 2}]
    told = [(e.subject_id, e.type, e.payload.get("status")) for e in data.events]
    ends = {done.id: EventType.SUBMISSION_SUCCEEDED, failed.id: EventType.SUBMISSION_FAILED}
    for s in accepted:  # each submission's statuses once and in order, as a queued one's
        assert [(t, status) for i, t, status in told if i == s.id] == [
            (EventType.SUBMISSION_CREATED, "PENDING"),
            (EventType.SUBMISSION_UPDATED, "RUNNING"),
            (ends[s.id], ends[s.id].value.removeprefix("SUBMISSION_")),
        ]
    [result] = [r for r in data.results.values() if r.submission_id == done.id]
    assert [t for i, t, _ in told if i == result.id] == [EventType.RESULT_CREATED]
    [batch] = data.batches.values()
    assert [t for i, t, _ in told if i == batch.id] == [EventType.BATCH_COMPLETED]
    assert model.id in data.timings  # the model's throughput learned from the run


async def test_a_batch_not_run_here_is_claimed_and_one_without_an_idle_loop_is_queued() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)
    declines, busy_runner = Runner(runs=False), Runner()
    for loop, runner in ((HeldLoop(), declines), (HeldLoop(is_idle=False), busy_runner)):
        uow = FakeUnitOfWork(data)
        uow.local_workers = loop
        [accepted] = await submissions.create_batch(
            uow, who, model.id, [{"x": 1}], clock=FakeClock(NOW), runner=runner
        )
        expected = SubmissionStatus.RUNNING if loop.is_idle else SubmissionStatus.PENDING
        assert data.submissions[accepted.id].submission.status is expected
        assert [run for _, _, run in loop.handed] == ([None] if loop.is_idle else [])
        assert loop.reserved == 0
    assert busy_runner.calls == []  # a busy process runs nothing at accept
    assert data.results == {}


async def test_a_run_past_the_wait_or_with_a_passing_failure_goes_to_the_loop() -> None:
    data, who = FakeData(), principal()
    model = add_model(data)
    slow, passing = Runner(inline_seconds=0.01), Runner()
    slow.gate.clear()
    for runner, inputs in ((slow, [{"x": 1}]), (passing, [{"x": 1}, {"x": 7}])):
        loop = HeldLoop()
        uow = FakeUnitOfWork(data)
        uow.local_workers = loop
        accepted = await submissions.create_batch(
            uow, who, model.id, inputs, clock=FakeClock(NOW), runner=runner
        )
        [(claimed, _, running)] = loop.handed  # stored claimed, handed with its run
        assert [s.id for s in claimed] == [s.id for s in accepted]
        assert {data.submissions[s.id].submission.status for s in accepted} == {
            SubmissionStatus.RUNNING
        }
        assert running is not None
        slow.gate.set()
        assert [type(o) for o in await running] == [type(_outcome(i["x"])) for i in inputs]
    assert data.results == {}
    assert (slow.calls, passing.calls) == ([1], [2])  # each run begun once


@pytest.mark.parametrize("runner", [None, Runner()], ids=["claimed", "run at accept"])
async def test_a_batch_that_fails_to_commit_stores_nothing_and_frees_its_loop(
    runner: Runner | None,
) -> None:
    data, who, loop = FakeData(), principal(), HeldLoop()
    model = add_model(data)
    uow = FakeUnitOfWork(data)
    uow.local_workers = loop

    async def refuse() -> None:
        raise RuntimeError("the database went away")

    uow.commit = refuse  # type: ignore[method-assign] # a commit that fails, for this test
    with pytest.raises(RuntimeError):
        await submissions.create_batch(
            uow, who, model.id, [{"x": 1}], clock=FakeClock(), runner=runner
        )

    assert (loop.reserved, loop.handed) == (0, [])
    assert (data.submissions, data.results, data.events) == ({}, {}, [])
