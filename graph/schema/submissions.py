"""Submissions: the Submission type, the viewer's history, creating and steering submissions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain import projections as p
from domain.errors import InvalidInput
from domain.history import SubmissionOrder
from domain.services import callbacks, submissions
from domain.services.submissions import SubmissionRequest
from domain.submissions import Submission, SubmissionStatus
from graph.execution import loads
from graph.execution.context import Context
from graph.execution.declarations import (
    Entity,
    ReferenceOnly,
    Source,
    ToMany,
    ToOne,
    declared,
    identifier,
    stored,
    to_many,
    to_one,
)
from graph.ids import parse_id, required_id
from graph.schema import history
from graph.schema.assets import AssetType
from graph.schema.metadata import METADATA_INPUT, MetadataEntry, MetadataEntryInput
from graph.schema.metadata import from_input as metadata_from_input
from graph.schema.models import ModelType
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
    by_id,
    of_the_viewer,
    paged_connection,
)
from graph.schema.results import ResultType
from graph.schema.users import (
    OWNED_SUBMISSIONS,
    SubmissionFilterArgument,
    SubmissionOrderArgument,
    SubmissionStatusArgument,
    UserType,
)

if TYPE_CHECKING:
    from graph.schema.batches import BatchType

# graph/schema/batches.py imports this module (a batch lists its submissions).
LazyBatch = Annotated["BatchType", strawberry.lazy("graph.schema.batches")]

SubmissionId = Annotated[
    strawberry.ID, strawberry.argument(description="The submission's global id.")
]
MODEL_ID = "The model to run, a Model's global id; BAD_USER_INPUT unless it names an active model."
INPUT = (
    "The input: a JSON value valid against the model's `inputSchema`, at most 256 KiB "
    "serialised by default; BAD_USER_INPUT naming each failing path."
)
ASSET_IDS = (
    "Assets to attach (global ids): at most 20, distinct, the viewer's own and AVAILABLE; "
    "BAD_USER_INPUT otherwise."
)


@strawberry.type(
    name="Submission",
    description="One input run through one model: PENDING, RUNNING, then SUCCEEDED, FAILED "
    "or CANCELLED. Visible to its owner and administrators.",
)
class SubmissionType(Node, Entity):
    id: strawberry.ID = identifier()
    input: JSON = strawberry.field(description="The input as submitted.")
    status: SubmissionStatus = strawberry.field(description="Where it is in its life.")
    error: str | None = strawberry.field(
        description="Why the last attempt failed: set when FAILED, and also after a transient "
        "failure that will be tried again; null otherwise."
    )
    attempts: int = strawberry.field(
        description="How many times a worker has started it; a transient failure is tried "
        "again, up to 3 attempts by default. retrySubmission sets it back to 0."
    )
    created_at: datetime = strawberry.field(description="When it was submitted.")
    updated_at: datetime = strawberry.field(description="When its status last changed.")
    entity: strawberry.Private[Submission]
    # False for a subscription message about a moment before the submission succeeded: its
    # results did not exist then, even when they do by the time the message is resolved.
    has_results: strawberry.Private[bool] = True
    owner: UserType = to_one("owner_id", load=loads.users_by_id, description="Who submitted it.")
    model: ModelType = to_one(
        "model_id", load=loads.models_by_id, description="The model it runs on."
    )
    assets: list[AssetType] = to_many(
        loads.assets_of_submissions,
        through=p.Through("SubmissionAsset", "submission_id", "asset_id", "position"),
        description="The assets attached to it.",
    )
    metadata: list[MetadataEntry] = stored(
        "metadata",
        description="The key/value labels it was created with, sorted by key; empty when none.",
    )

    @classmethod
    def as_of(cls, submission: Submission) -> SubmissionType:
        """The submission as an event recorded it (only SUCCEEDED ones have results)."""
        message = cls.from_entity(submission)
        message.has_results = submission.status is SubmissionStatus.SUCCEEDED
        return message

    # results and latestResult read one load: a document asking for both reads once.
    @declared(
        ToMany(loads.results_of_submissions, "submission_id"),
        description="Its results, oldest first; empty until it succeeds.",
    )
    async def results(self, info: AppInfo) -> list[ResultType]:
        if not self.has_results:
            return []
        loader = info.context.loaders.level(loads.results_of_submissions)
        return [ResultType.from_entity(r) for r in await loader.load(self.entity.id)]

    @declared(
        ToOne(
            "id",
            loads.latest_results_of_submissions,
            target_key="submission_id",
            order=p.NEWEST_FIRST,
        ),
        description="Its newest result; null until it succeeds.",
    )
    async def latest_result(self, info: AppInfo) -> ResultType | None:
        if not self.has_results:
            return None
        loader = info.context.loaders.level(loads.results_of_submissions)
        results = await loader.load(self.entity.id)
        return ResultType.from_entity(results[-1]) if results else None

    @declared(ReferenceOnly(BATCHES), description="Null unless made by batchInference.")
    async def batch(self, info: AppInfo) -> LazyBatch | None:
        from graph.schema.batches import load_batch

        if self.entity.batch_id is None:
            return None
        return await load_batch(info, self.entity.batch_id)


async def submissions_of(
    info: AppInfo,
    owner_id: UUID,
    paging: Paging,
    status: SubmissionStatus | None,
    given: history.SubmissionFilter | None = None,
    order: SubmissionOrder | None = history.DEFAULT_ORDER,
) -> Connection[SubmissionType]:
    request = paging.ordered("Submission", order, history.DEFAULT_ORDER)
    key = (owner_id, (request, status, history.from_input(given)))
    return await paged_connection(
        info, OWNED_SUBMISSIONS, key, SubmissionType.from_entity, "Submission"
    )


_VIEWER_SUBMISSIONS = of_the_viewer(OWNED_SUBMISSIONS, "submission")


@strawberry.type
class SubmissionQueries:
    @declared(
        Source(loads.submissions_by_id, "Submission"),
        description="A submission by id; NOT_FOUND when the viewer cannot see it.",
    )
    async def submission(self, info: AppInfo, id: SubmissionId) -> SubmissionType | None:
        load = loads.submissions_by_id
        return await by_id(info, id, "Submission", load, SubmissionType.from_entity)

    @declared(
        _VIEWER_SUBMISSIONS,
        description="The viewer's submissions, newest first unless `orderBy` says otherwise. "
        "BAD_USER_INPUT for a bad `filter`.",
    )
    async def submissions(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        status: SubmissionStatusArgument = None,
        filter: SubmissionFilterArgument = None,
        order_by: SubmissionOrderArgument = history.DEFAULT_ORDER,
        last: Last = None,
        before: Before = None,
    ) -> Connection[SubmissionType]:
        viewer = info.context.principal.user_id
        paging = Paging(first, after, last, before)
        return await submissions_of(info, viewer, paging, status, filter, order_by)


@strawberry.input(description="One input to queue for a model.")
class CreateSubmissionInput:
    model_id: strawberry.ID = strawberry.field(description=MODEL_ID)
    input: JSON = strawberry.field(description=INPUT)
    asset_ids: list[strawberry.ID] | None = strawberry.field(
        default_factory=list, description=ASSET_IDS
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="1 to 200 characters: the same key from the same caller returns the first "
        "submission instead of a second one; with another model or input it is CONFLICT.",
    )
    callback_url: str | None = strawberry.field(
        default=None,
        description="POSTed once the submission is finished, with it and its latest result; "
        "signed with the viewer's callback secret (see rotateCallbackSecret). An http(s) URL "
        "of at most 2,048 characters on a public host; BAD_USER_INPUT otherwise or without a "
        "callback secret.",
    )
    metadata: list[MetadataEntryInput] | None = strawberry.field(
        default=None, description=METADATA_INPUT
    )


@strawberry.input(description="One input to run on a model, waiting for the result.")
class RunInferenceInput:
    model_id: strawberry.ID = strawberry.field(description=MODEL_ID)
    input: JSON = strawberry.field(description=INPUT)
    asset_ids: list[strawberry.ID] | None = strawberry.field(
        default_factory=list, description=ASSET_IDS
    )
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key from the same caller returns the first submission and its "
        "result: retry with it after a lost answer, and the prediction is not made twice. "
        "CONFLICT when the key was used with another model or input.",
    )
    metadata: list[MetadataEntryInput] | None = strawberry.field(
        default=None, description=METADATA_INPUT
    )


@strawberry.type(description="The submission a mutation made or changed.")
class SubmissionPayload:
    submission: SubmissionType = strawberry.field(description="The submission as it is now.")


@strawberry.type(
    description="runInference's answer, once the submission finished or the wait ran out."
)
class RunInferencePayload:
    submission: SubmissionType = strawberry.field(
        description="The submission: finished, or still PENDING or RUNNING if the wait ran out "
        "(follow it with submissionUpdated)."
    )
    result: ResultType | None = strawberry.field(
        description="Its result; null unless it SUCCEEDED within the wait."
    )


def _request(
    model_id: strawberry.ID,
    value: JSON,
    asset_ids: list[strawberry.ID] | None,
    idempotency_key: str | None = None,
    metadata: list[MetadataEntryInput] | None = None,
) -> SubmissionRequest:
    labels = metadata_from_input(metadata)
    ids = [parse_id(a, "Asset", f"input.assetIds.{n}") for n, a in enumerate(asset_ids or [])]
    missing = {f"input.assetIds.{n}": "names no asset" for n, i in enumerate(ids) if i is None}
    if missing:
        raise InvalidInput(missing)
    return SubmissionRequest(
        model_id=parse_id(model_id, "Model", "input.modelId"),
        input=value,
        asset_ids=[i for i in ids if i is not None],
        idempotency_key=idempotency_key,
        metadata=labels,
    )


def inference_request(input: RunInferenceInput) -> SubmissionRequest:
    """runInference's request (the resolver's, and graph/transport/inference_lane.py's)."""
    return _request(
        input.model_id, input.input, input.asset_ids, input.idempotency_key, input.metadata
    )


async def check_callback(ctx: Context, url: str | None) -> None:
    if url is None:
        return
    if ctx.webhooks is None:
        raise RuntimeError("webhooks are not configured: AppDependencies.webhooks is missing")
    await callbacks.check_callback_url(
        ctx.uow(), ctx.webhooks.guard, ctx.principal, url, "input.callbackUrl"
    )


@strawberry.type
class SubmissionMutations:
    @strawberry.mutation(
        description="Queue one input for a model; returns the submission PENDING (or the first "
        "one again for a repeated idempotencyKey). BAD_USER_INPUT for a bad model, input, "
        "assets or callbackUrl; CONFLICT for a key reused with another request; RATE_LIMITED "
        "when the viewer's inference budget is spent."
    )
    async def create_submission(
        self,
        info: AppInfo,
        input: Annotated[CreateSubmissionInput, strawberry.argument(description="What to run.")],
    ) -> SubmissionPayload:
        ctx = info.context
        request = _request(
            input.model_id, input.input, input.asset_ids, input.idempotency_key, input.metadata
        )
        await check_callback(info.context, input.callback_url)
        request = replace(request, callback_url=input.callback_url)
        submission = await submissions.create_submission(
            ctx.uow(), ctx.principal, request, clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))

    @strawberry.mutation(
        description="Run the model now, in this process, and answer once the submission and "
        "its result are stored; FAILED with the reason when the model fails or does not answer "
        "within the server's timeout (30 seconds by default). BAD_USER_INPUT for a bad model, "
        "input or assets; CONFLICT for an idempotencyKey reused with another input; "
        "RATE_LIMITED when the viewer's inference budget is spent."
    )
    async def run_inference(
        self,
        info: AppInfo,
        input: Annotated[RunInferenceInput, strawberry.argument(description="What to run.")],
    ) -> RunInferencePayload:
        ctx = info.context
        if ctx.inference is None:
            raise RuntimeError("AppDependencies.inference is missing: runInference cannot run")
        answered, ctx.inference_answer = ctx.inference_answer, None  # the lane ran it already
        submission, result = answered or await ctx.inference.run(
            ctx.principal, inference_request(input)
        )
        return RunInferencePayload(
            submission=SubmissionType.from_entity(submission),
            result=ResultType.from_entity(result) if result else None,
        )

    @strawberry.mutation(
        description="PENDING -> CANCELLED; CONFLICT in any other status. NOT_FOUND when the "
        "viewer cannot see it; FORBIDDEN to an administrator for another user's."
    )
    async def cancel_submission(self, info: AppInfo, id: SubmissionId) -> SubmissionPayload:
        ctx = info.context
        submission = await submissions.cancel_submission(
            ctx.uow(), ctx.principal, required_id(id, "Submission"), clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))

    @strawberry.mutation(
        description="FAILED -> PENDING, with `attempts` back to 0; CONFLICT in any other "
        "status. NOT_FOUND when the viewer cannot see it; FORBIDDEN to an administrator for "
        "another user's."
    )
    async def retry_submission(self, info: AppInfo, id: SubmissionId) -> SubmissionPayload:
        ctx = info.context
        submission = await submissions.retry_submission(
            ctx.uow(), ctx.principal, required_id(id, "Submission"), clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))
