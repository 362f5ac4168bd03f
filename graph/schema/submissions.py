"""Submissions: the Submission type, the viewer's history, creating and steering submissions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.errors import InvalidInput
from domain.history import SubmissionOrder
from domain.services import callbacks, submissions
from domain.services.submissions import SubmissionRequest
from domain.submissions import Submission, SubmissionStatus
from graph.execution import loads
from graph.ids import page_request, parse_id, required_id
from graph.schema import history
from graph.schema.assets import AssetType
from graph.schema.declarations import (
    Entity,
    Paged,
    ReferenceOnly,
    Source,
    ToMany,
    ToOne,
    declared,
    identifier,
    to_many,
    to_one,
)
from graph.schema.models import ModelType
from graph.schema.nodes import BATCHES, AppInfo, Connection, Node, by_id, connection
from graph.schema.results import ResultType
from graph.schema.users import UserType

if TYPE_CHECKING:
    from graph.schema.batches import BatchType

# graph/schema/batches.py imports this module (a batch lists its submissions).
LazyBatch = Annotated["BatchType", strawberry.lazy("graph.schema.batches")]


@strawberry.type(name="Submission")
class SubmissionType(Node, Entity):
    id: strawberry.ID = identifier()
    input: JSON
    status: SubmissionStatus
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[Submission]
    # False for a subscription message about a moment before the submission succeeded: its
    # results did not exist then, even when they do by the time the message is resolved.
    has_results: strawberry.Private[bool] = True
    owner: UserType = to_one("owner", key="owner_id", load=loads.users_by_id)
    model: ModelType = to_one("model", key="model_id", load=loads.models_by_id)
    assets: list[AssetType] = to_many("assets", load=loads.assets_of_submissions)

    @classmethod
    def as_of(cls, submission: Submission) -> SubmissionType:
        """The submission as an event recorded it (only SUCCEEDED ones have results)."""
        message = cls.from_entity(submission)
        message.has_results = submission.status is SubmissionStatus.SUCCEEDED
        return message

    # results and latestResult read one load: a document asking for both reads once.
    @declared(ToMany("results", loads.results_of_submissions))
    async def results(self, info: AppInfo) -> list[ResultType]:
        if not self.has_results:
            return []
        loader = info.context.loaders.level(loads.results_of_submissions)
        return [ResultType.from_entity(r) for r in await loader.load(self.entity.id)]

    @declared(
        ToOne("latest_result", "id", loads.latest_results_of_submissions),
        description="The newest result, if any.",
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
    first: int | None,
    after: str | None,
    status: SubmissionStatus | None,
    given: history.SubmissionFilter | None = None,
    order: SubmissionOrder | None = history.DEFAULT_ORDER,
) -> Connection[SubmissionType]:
    loaders = info.context.loaders
    descending = (order or history.DEFAULT_ORDER).is_descending
    request = page_request(first, after, descending=descending)
    key = (owner_id, (request, status, history.from_input(given)))
    page = await loaders.paged(loads.submission_pages).load(key)
    return connection(
        page,
        SubmissionType.from_entity,
        lambda: loaders.paged(loads.submission_counts).load(key),
    )


_VIEWER_SUBMISSIONS = Paged(
    "submissions",
    loads.for_the_viewer(loads.submission_pages, "viewer_submission_page"),
    loads.for_the_viewer(loads.submission_counts, "viewer_submission_count"),
    loads.submission_page_arguments,
    loads.submission_window,
)


@strawberry.type
class SubmissionQueries:
    @declared(Source("submission", loads.submissions_by_id, "Submission"))
    async def submission(self, info: AppInfo, id: strawberry.ID) -> SubmissionType | None:
        load = loads.submissions_by_id
        return await by_id(info, id, "Submission", load, SubmissionType.from_entity)

    @declared(_VIEWER_SUBMISSIONS, description="The viewer's submissions.")
    async def submissions(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: SubmissionStatus | None = None,
        filter: history.SubmissionFilter | None = None,
        order_by: SubmissionOrder | None = history.DEFAULT_ORDER,
    ) -> Connection[SubmissionType]:
        viewer = info.context.principal.user_id
        return await submissions_of(info, viewer, first, after, status, filter, order_by)


@strawberry.input
class CreateSubmissionInput:
    model_id: strawberry.ID
    input: JSON
    asset_ids: list[strawberry.ID] | None = strawberry.field(default_factory=list)
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key from the same caller returns the first submission.",
    )
    callback_url: str | None = strawberry.field(
        default=None,
        description="POSTed once the submission is finished, with it and its latest result; "
        "signed with the viewer's callback secret (see rotateCallbackSecret).",
    )


@strawberry.input
class RunInferenceInput:
    model_id: strawberry.ID
    input: JSON
    asset_ids: list[strawberry.ID] | None = strawberry.field(default_factory=list)
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="The same key from the same caller returns the first submission and its "
        "result: retry with it after a lost answer, and the prediction is not made twice.",
    )


@strawberry.type
class SubmissionPayload:
    submission: SubmissionType


@strawberry.type
class RunInferencePayload:
    submission: SubmissionType
    result: ResultType | None


def _request(
    model_id: strawberry.ID,
    value: JSON,
    asset_ids: list[strawberry.ID] | None,
    idempotency_key: str | None = None,
) -> SubmissionRequest:
    ids = [parse_id(a, "Asset", f"input.assetIds.{n}") for n, a in enumerate(asset_ids or [])]
    missing = {f"input.assetIds.{n}": "names no asset" for n, i in enumerate(ids) if i is None}
    if missing:
        raise InvalidInput(missing)
    return SubmissionRequest(
        model_id=parse_id(model_id, "Model", "input.modelId"),
        input=value,
        asset_ids=[i for i in ids if i is not None],
        idempotency_key=idempotency_key,
    )


async def check_callback(info: AppInfo, url: str | None) -> None:
    if url is None:
        return
    ctx = info.context
    if ctx.webhooks is None:
        raise RuntimeError("webhooks are not configured: AppDependencies.webhooks is missing")
    await callbacks.check_callback_url(
        ctx.uow(), ctx.webhooks.guard, ctx.principal, url, "input.callbackUrl"
    )


@strawberry.type
class SubmissionMutations:
    @strawberry.mutation(description="Queue an inference request; returns it PENDING.")
    async def create_submission(
        self, info: AppInfo, input: CreateSubmissionInput
    ) -> SubmissionPayload:
        ctx = info.context
        request = _request(input.model_id, input.input, input.asset_ids, input.idempotency_key)
        await check_callback(info, input.callback_url)
        request = replace(request, callback_url=input.callback_url)
        submission = await submissions.create_submission(
            ctx.uow(), ctx.principal, request, clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))

    @strawberry.mutation(
        description="Run the model now and answer once the submission and its result are "
        "stored; FAILED with the reason when the model fails or does not answer in time."
    )
    async def run_inference(self, info: AppInfo, input: RunInferenceInput) -> RunInferencePayload:
        ctx = info.context
        if ctx.inference is None:
            raise RuntimeError("AppDependencies.inference is missing: runInference cannot run")
        request = _request(input.model_id, input.input, input.asset_ids, input.idempotency_key)
        submission, result = await ctx.inference.run(ctx.principal, request)
        return RunInferencePayload(
            submission=SubmissionType.from_entity(submission),
            result=ResultType.from_entity(result) if result else None,
        )

    @strawberry.mutation(description="PENDING -> CANCELLED; CONFLICT otherwise.")
    async def cancel_submission(self, info: AppInfo, id: strawberry.ID) -> SubmissionPayload:
        ctx = info.context
        submission = await submissions.cancel_submission(
            ctx.uow(), ctx.principal, required_id(id, "Submission"), clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))

    @strawberry.mutation(description="FAILED -> PENDING; CONFLICT otherwise.")
    async def retry_submission(self, info: AppInfo, id: strawberry.ID) -> SubmissionPayload:
        ctx = info.context
        submission = await submissions.retry_submission(
            ctx.uow(), ctx.principal, required_id(id, "Submission"), clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))
