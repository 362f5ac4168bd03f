"""GraphQL for batches and callbacks: the Batch type, its queries, mutations and subscription."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.batches import Batch, BatchStatus
from domain.errors import NotFound
from domain.events import Event, EventType
from domain.services import batches, callbacks, submissions
from domain.submissions import Submission
from graph.execution.context import Context
from graph.execution.declarations import ReferenceOnly, declared, reference_only
from graph.ids import parse_id, required_id, to_global_id
from graph.schema.metadata import METADATA_INPUT, MetadataEntryInput
from graph.schema.metadata import from_input as metadata_from_input
from graph.schema.models import ModelType, load_model
from graph.schema.nodes import (
    BATCHES,
    After,
    AppInfo,
    Before,
    Connection,
    First,
    Last,
    Node,
    Paging,
    connection,
    described_enum,
)
from graph.schema.orders import BatchOrder, BatchOrderArgument
from graph.schema.submissions import MODEL_ID, SubmissionType, check_callback
from graph.schema.users import SubmissionStatusArgument, UserType, load_user

described_enum(
    BatchStatus,
    name="BatchStatus",
    description="Where a batch is in its life.",
    values={
        "PENDING": "No submission of the batch has been picked up by a worker yet.",
        "RUNNING": "Some submissions have been picked up; not all are finished.",
        "COMPLETED": "Every submission is finished; `completedAt` is set.",
        "CANCELLED": "cancelBatch cancelled what was PENDING; what was RUNNING still finishes.",
    },
)
BatchId = Annotated[strawberry.ID, strawberry.argument(description="The batch's global id.")]

# batchUpdated sends at most one message per interval; the events between are merged.
BATCH_MESSAGE_INTERVAL = 0.25
_BATCH_EVENTS = frozenset({EventType.BATCH_COMPLETED, EventType.BATCH_UPDATED})
_SUBMISSION_EVENTS = frozenset(
    {EventType.SUBMISSION_UPDATED, EventType.SUBMISSION_SUCCEEDED, EventType.SUBMISSION_FAILED}
)


@reference_only("batches: counted by status in the batch's read")
@strawberry.type(
    name="BatchCounts",
    description="How many of a batch's submissions are in each status, exact when read.",
)
class BatchCountsType:
    pending: int = strawberry.field(description="Submissions waiting for a worker.")
    running: int = strawberry.field(description="Submissions being run.")
    succeeded: int = strawberry.field(description="Submissions finished with a result.")
    failed: int = strawberry.field(description="Submissions finished without a result.")
    cancelled: int = strawberry.field(description="Submissions cancelled before they ran.")


@reference_only(BATCHES)
@strawberry.type(
    name="Batch",
    description="The submissions of one batchInference, followed as one object. Visible to "
    "its owner and administrators.",
)
class BatchType(Node):
    size: int = strawberry.field(description="How many inputs (submissions) it holds, 1 to 1000.")
    status: BatchStatus = strawberry.field(
        description="COMPLETED once every submission is finished."
    )
    counts: BatchCountsType = strawberry.field(description="Its submissions by status.")
    callback_url: str | None = strawberry.field(
        description="Where the batch's callback is POSTed once it is finished; null for none."
    )
    created_at: datetime = strawberry.field(description="When batchInference made it.")
    completed_at: datetime | None = strawberry.field(
        description="When its last submission finished; null until then."
    )
    entity: strawberry.Private[Batch]

    @classmethod
    def from_entity(cls, batch: Batch) -> BatchType:
        c = batch.counts
        return cls(
            id=strawberry.ID(to_global_id("Batch", batch.id)),
            size=batch.size,
            status=batch.status,
            counts=BatchCountsType(
                pending=c.pending,
                running=c.running,
                succeeded=c.succeeded,
                failed=c.failed,
                cancelled=c.cancelled,
            ),
            callback_url=batch.callback_url,
            created_at=batch.created_at,
            completed_at=batch.completed_at,
            entity=batch,
        )

    @strawberry.field(description="Who made it.")
    async def owner(self, info: AppInfo) -> UserType:
        return await load_user(info, self.entity.owner_id)

    @strawberry.field(description="The model its submissions run on.")
    async def model(self, info: AppInfo) -> ModelType:
        return await load_model(info, self.entity.model_id)

    @strawberry.field(
        description="Null once finished, or until this deployment has run the model: the "
        "work queued ahead of the batch plus its unfinished work, at the model's measured costs."
    )
    async def estimated_completion_at(self, info: AppInfo) -> datetime | None:
        ctx = info.context
        return await batches.estimate_completion(ctx.uow(), self.entity, clock=ctx.clock)

    @strawberry.field(description="Its submissions, in input order.")
    async def submissions(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        status: SubmissionStatusArgument = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[SubmissionType]:
        ctx = info.context
        ids = [self.entity.id]
        request = Paging(first, after, last, before).request("Submission")
        [page] = await batches.list_submissions(ctx.uow(), ctx.principal, ids, request, status)

        async def count() -> int:
            [counted] = await batches.count_submissions(ctx.uow(), ctx.principal, ids, status)
            return counted

        return connection(page, SubmissionType.from_entity, count, "Submission")


async def load_batch(info: AppInfo, batch_id: UUID) -> BatchType | None:
    batch = await info.context.loaders.batch_by_id.load(batch_id)
    return BatchType.from_entity(batch) if batch else None


async def batches_of(
    info: AppInfo, owner_id: UUID, paging: Paging, order: BatchOrder | None
) -> Connection[BatchType]:
    ctx = info.context
    request = paging.ordered("Batch", order, BatchOrder.CREATED_AT_DESC)
    page = await batches.list_batches(ctx.uow(), ctx.principal, owner_id, request)
    return connection(
        page,
        BatchType.from_entity,
        lambda: batches.count_batches(ctx.uow(), ctx.principal, owner_id),
        "Batch",
    )


@strawberry.type(description="The batch a mutation changed.")
class BatchPayload:
    batch: BatchType = strawberry.field(description="The batch as it is now.")


@strawberry.type(description="The viewer's new callback secret.")
class RotateCallbackSecretPayload:
    secret: str = strawberry.field(
        description='Shown once: "whsec_" + a base64 key; verify callback signatures with it.'
    )


@strawberry.type
class BatchQueries:
    @declared(
        ReferenceOnly(BATCHES),
        description="A batch by id; NOT_FOUND when the viewer cannot see it.",
    )
    async def batch(self, info: AppInfo, id: BatchId) -> BatchType | None:
        found = await load_batch(info, required_id(id, "Batch"))
        if found is None:
            raise NotFound("Batch", id)
        return found

    @declared(
        ReferenceOnly(BATCHES),
        description="The viewer's batches, newest first unless `orderBy` says otherwise.",
    )
    async def batches(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        last: Last = None,
        before: Before = None,
        order_by: BatchOrderArgument = BatchOrder.CREATED_AT_DESC,
    ) -> Connection[BatchType]:
        paging = Paging(first, after, last, before)
        return await batches_of(info, info.context.principal.user_id, paging, order_by)


@strawberry.input(description="Many inputs to queue for one model, as one batch.")
class BatchInferenceInput:
    model_id: strawberry.ID = strawberry.field(description=MODEL_ID)
    inputs: list[JSON] = strawberry.field(
        description="1 to 1000 inputs, each valid against the model's `inputSchema`; "
        "BAD_USER_INPUT naming each failing one (`input.inputs.3`), and then none is queued."
    )
    callback_url: str | None = strawberry.field(
        default=None,
        description="POSTed once the whole batch is finished, with its id, status and counts; "
        "signed with the viewer's callback secret (see rotateCallbackSecret). BAD_USER_INPUT "
        "without a secret or for a URL the server refuses.",
    )
    metadata: list[MetadataEntryInput] | None = strawberry.field(
        default=None, description=f"Put on every submission of the batch. {METADATA_INPUT}"
    )


@strawberry.type(description="What batchInference queued.")
class BatchInferencePayload:
    submissions: list[SubmissionType] = strawberry.field(description="In input order, all PENDING.")
    batch_id: strawberry.Private[UUID]

    @strawberry.field(description="The batch that follows them.")
    async def batch(self, info: AppInfo) -> BatchType:
        # Read only when asked for: a client that wants only the ids waits for no read.
        batch = await load_batch(info, self.batch_id)
        assert batch is not None, "the viewer sees the batch just made"
        return batch


async def queue_batch(ctx: Context, input: BatchInferenceInput) -> list[Submission]:
    """batchInference's use case: the submissions as accepted (the resolver's, and
    graph/transport/batch_lane.py's; the batch is read only when the payload asks for it)."""
    model_id = parse_id(input.model_id, "Model", "input.modelId")
    labels = metadata_from_input(input.metadata)
    await check_callback(ctx, input.callback_url)
    return await submissions.create_batch(
        ctx.uow(),
        ctx.principal,
        model_id,
        input.inputs,
        clock=ctx.clock,
        callback_url=input.callback_url,
        metadata=labels,
        runner=ctx.inference,
    )


@strawberry.type
class BatchMutations:
    @strawberry.mutation(
        description="Queue 1 to 1000 inputs for one model, all or none, as one batch. "
        "BAD_USER_INPUT for a bad model, input or callbackUrl; RATE_LIMITED when the viewer's "
        "inference budget (one per input) is spent."
    )
    async def batch_inference(
        self,
        info: AppInfo,
        input: Annotated[BatchInferenceInput, strawberry.argument(description="What to run.")],
    ) -> BatchInferencePayload:
        answered, info.context.batch_answer = info.context.batch_answer, None  # the lane ran it
        stored = answered[0] if answered is not None else await queue_batch(info.context, input)
        assert stored[0].batch_id is not None, "create_batch always makes a batch"
        return BatchInferencePayload(
            submissions=[SubmissionType.from_entity(s) for s in stored], batch_id=stored[0].batch_id
        )

    @strawberry.mutation(
        description="Cancel what is still PENDING and make the batch CANCELLED; what is "
        "RUNNING finishes. CONFLICT once finished or cancelled; NOT_FOUND when the viewer "
        "cannot see it; FORBIDDEN to an administrator for another user's."
    )
    async def cancel_batch(self, info: AppInfo, id: BatchId) -> BatchPayload:
        ctx = info.context
        batch = await batches.cancel_batch(
            ctx.uow(), ctx.principal, required_id(id, "Batch"), clock=ctx.clock
        )
        return BatchPayload(batch=BatchType.from_entity(batch))

    @strawberry.mutation(
        description="Create the viewer's callback secret the first time, replace it after; "
        "callbacks not yet sent are signed with the new one. Needed before any callbackUrl."
    )
    async def rotate_callback_secret(self, info: AppInfo) -> RotateCallbackSecretPayload:
        ctx = info.context
        secret = await callbacks.rotate_secret(ctx.uow(), ctx.principal, clock=ctx.clock)
        return RotateCallbackSecretPayload(secret=secret)


def _about_batch(batch_id: UUID) -> Callable[[Event], bool]:
    wanted = to_global_id("Batch", batch_id)

    def matches(e: Event) -> bool:
        if e.type in _BATCH_EVENTS:
            return e.subject_id == batch_id
        return e.type in _SUBMISSION_EVENTS and e.payload.get("batchId") == wanted

    return matches


async def _pump(source: AsyncIterator[Event], into: asyncio.Queue[Event | Exception]) -> None:
    try:
        async for event in source:
            await into.put(event)
    except Exception as error:  # handed to the subscription, which raises it
        await into.put(error)


async def _next_burst(queue: asyncio.Queue[Event | Exception], not_before: float) -> list[Event]:
    """The next event and every one that arrives until `not_before` (the coalescing window);
    a BATCH_COMPLETED ends the burst at once, so the terminal message is never held back."""
    loop = asyncio.get_running_loop()
    burst: list[Event] = []
    while True:
        timeout = None if not burst else not_before - loop.time()
        if timeout is not None and timeout <= 0:
            return burst
        try:
            item = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            return burst
        if isinstance(item, Exception):
            raise item
        burst.append(item)
        if item.type is EventType.BATCH_COMPLETED:
            return burst


@strawberry.type
class BatchSubscriptions:
    @strawberry.subscription(
        description="A batch's counts and status: the first message is the batch as it is "
        "now, then its changes, at most four messages a second; the last message is the "
        "finished batch (COMPLETED or CANCELLED), after which the subscription completes. "
        "NOT_FOUND for an id the viewer cannot see."
    )
    async def batch_updated(self, info: AppInfo, id: BatchId) -> AsyncGenerator[BatchType, None]:
        from graph.schema.subscriptions import event_stream  # the Subscription root imports us

        ctx = info.context
        batch_id = required_id(id, "Batch")
        [found] = await batches.get_batches(ctx.uow(), ctx.principal, [batch_id])
        if found is None:
            raise NotFound("Batch", id)
        queue: asyncio.Queue[Event | Exception] = asyncio.Queue()
        pump = asyncio.create_task(_pump(event_stream(info, _about_batch(batch_id)), queue))
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(0)  # the pump subscribes; a change from now on is heard
            [found] = await batches.get_batches(ctx.uow(), ctx.principal, [batch_id])
            sent = None
            last_sent = loop.time()
            while found is not None:
                if found != sent:  # a change the first message showed already is not news
                    with ctx.message():
                        yield BatchType.from_entity(found)
                    sent, last_sent = found, loop.time()
                if found.is_finished:
                    return
                await _next_burst(queue, last_sent + BATCH_MESSAGE_INTERVAL)
                [found] = await batches.get_batches(ctx.uow(), ctx.principal, [batch_id])
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
