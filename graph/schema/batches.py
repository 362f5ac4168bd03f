"""GraphQL for batches and callbacks: the Batch type, its queries, mutations and subscription."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.batches import Batch, BatchStatus
from domain.errors import NotFound
from domain.events import Event, EventType
from domain.services import batches, callbacks, submissions
from domain.submissions import SubmissionStatus
from graph.ids import page_request, parse_id, required_id, to_global_id
from graph.schema.declarations import ReferenceOnly, declared, reference_only
from graph.schema.models import ModelType, load_model
from graph.schema.nodes import BATCHES, AppInfo, Connection, Node, connection
from graph.schema.submissions import SubmissionType, check_callback
from graph.schema.users import UserType, load_user

strawberry.enum(BatchStatus, name="BatchStatus")

# batchUpdated sends at most one message per interval; the events between are merged.
BATCH_MESSAGE_INTERVAL = 0.25
_BATCH_EVENTS = frozenset({EventType.BATCH_COMPLETED, EventType.BATCH_UPDATED})
_SUBMISSION_EVENTS = frozenset(
    {EventType.SUBMISSION_UPDATED, EventType.SUBMISSION_SUCCEEDED, EventType.SUBMISSION_FAILED}
)


@reference_only("batches: counted by status in the batch's read")
@strawberry.type(name="BatchCounts")
class BatchCountsType:
    pending: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


@reference_only(BATCHES)
@strawberry.type(name="Batch")
class BatchType(Node):
    size: int
    status: BatchStatus = strawberry.field(
        description="COMPLETED once every submission is finished."
    )
    counts: BatchCountsType
    callback_url: str | None
    created_at: datetime
    completed_at: datetime | None
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

    @strawberry.field
    async def owner(self, info: AppInfo) -> UserType:
        return await load_user(info, self.entity.owner_id)

    @strawberry.field
    async def model(self, info: AppInfo) -> ModelType:
        return await load_model(info, self.entity.model_id)

    @strawberry.field(
        description="Null once finished, or until this deployment has run the model: the "
        "work queued ahead of the batch plus its unfinished work, at the model's measured costs."
    )
    async def estimated_completion_at(self, info: AppInfo) -> datetime | None:
        ctx = info.context
        return await batches.estimate_completion(ctx.uow(), self.entity, clock=ctx.clock)

    @strawberry.field(description="In input order.")
    async def submissions(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: SubmissionStatus | None = None,
    ) -> Connection[SubmissionType]:
        ctx = info.context
        ids = [self.entity.id]
        request = page_request(first, after)
        [page] = await batches.list_submissions(ctx.uow(), ctx.principal, ids, request, status)

        async def count() -> int:
            [counted] = await batches.count_submissions(ctx.uow(), ctx.principal, ids, status)
            return counted

        return connection(page, SubmissionType.from_entity, count)


async def load_batch(info: AppInfo, batch_id: UUID) -> BatchType | None:
    batch = await info.context.loaders.batch_by_id.load(batch_id)
    return BatchType.from_entity(batch) if batch else None


async def batches_of(
    info: AppInfo, owner_id: UUID, first: int | None, after: str | None
) -> Connection[BatchType]:
    ctx = info.context
    page = await batches.list_batches(
        ctx.uow(), ctx.principal, owner_id, page_request(first, after)
    )
    return connection(
        page,
        BatchType.from_entity,
        lambda: batches.count_batches(ctx.uow(), ctx.principal, owner_id),
    )


@strawberry.type
class BatchPayload:
    batch: BatchType


@strawberry.type
class RotateCallbackSecretPayload:
    secret: str = strawberry.field(description='Shown once: "whsec_" + a base64 key.')


@strawberry.type
class BatchQueries:
    @declared(ReferenceOnly(BATCHES))
    async def batch(self, info: AppInfo, id: strawberry.ID) -> BatchType | None:
        found = await load_batch(info, required_id(id, "Batch"))
        if found is None:
            raise NotFound("Batch", id)
        return found

    @declared(ReferenceOnly(BATCHES), description="The viewer's batches, newest first.")
    async def batches(
        self, info: AppInfo, first: int | None = 20, after: str | None = None
    ) -> Connection[BatchType]:
        return await batches_of(info, info.context.principal.user_id, first, after)


@strawberry.input
class BatchInferenceInput:
    model_id: strawberry.ID
    inputs: list[JSON] = strawberry.field(description="1 to 1000 inputs.")
    callback_url: str | None = strawberry.field(
        default=None,
        description="POSTed once the whole batch is finished, with its id, status and counts; "
        "signed with the viewer's callback secret (see rotateCallbackSecret).",
    )


@strawberry.type
class BatchInferencePayload:
    submissions: list[SubmissionType] = strawberry.field(description="In input order, all PENDING.")
    batch: BatchType


@strawberry.type
class BatchMutations:
    @strawberry.mutation(description="Queue 1 to 1000 inputs for one model, all or none.")
    async def batch_inference(
        self, info: AppInfo, input: BatchInferenceInput
    ) -> BatchInferencePayload:
        ctx = info.context
        model_id = parse_id(input.model_id, "Model", "input.modelId")
        await check_callback(info, input.callback_url)
        stored = await submissions.create_batch(
            ctx.uow(),
            ctx.principal,
            model_id,
            input.inputs,
            clock=ctx.clock,
            callback_url=input.callback_url,
        )
        assert stored[0].batch_id is not None, "create_batch always makes a batch"
        batch = await load_batch(info, stored[0].batch_id)
        assert batch is not None, "the viewer sees the batch just made"
        return BatchInferencePayload(
            submissions=[SubmissionType.from_entity(s) for s in stored], batch=batch
        )

    @strawberry.mutation(description="Cancel what is still PENDING; what is RUNNING finishes.")
    async def cancel_batch(self, info: AppInfo, id: strawberry.ID) -> BatchPayload:
        ctx = info.context
        batch = await batches.cancel_batch(
            ctx.uow(), ctx.principal, required_id(id, "Batch"), clock=ctx.clock
        )
        return BatchPayload(batch=BatchType.from_entity(batch))

    @strawberry.mutation(
        description="Create the viewer's callback secret the first time, replace it after."
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
        "finished batch (COMPLETED or CANCELLED), after which the subscription completes."
    )
    async def batch_updated(
        self, info: AppInfo, id: strawberry.ID
    ) -> AsyncGenerator[BatchType, None]:
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
