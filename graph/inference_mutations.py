"""Mutations for assets and inference: uploads, submissions, synchronous and batch inference."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from domain.errors import InvalidInput
from domain.services import assets, callbacks, inference, submissions
from domain.services.submissions import SubmissionRequest
from graph.batches import BatchType, load_batch
from graph.ids import parse_id, required_id
from graph.types import AppInfo, AssetType, ResultType, SubmissionType


@strawberry.input
class RequestAssetUploadInput:
    file_name: str
    content_type: str
    size_bytes: int


@strawberry.type
class RequestAssetUploadPayload:
    asset: AssetType
    upload_url: str = strawberry.field(description="PUT the bytes here.")
    upload_headers: JSON = strawberry.field(description="Headers the PUT must carry.")
    expires_at: datetime


@strawberry.type
class AssetPayload:
    asset: AssetType


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
class SubmissionPayload:
    submission: SubmissionType


@strawberry.type
class RunInferencePayload:
    submission: SubmissionType
    result: ResultType | None


@strawberry.type
class BatchInferencePayload:
    submissions: list[SubmissionType] = strawberry.field(description="In input order, all PENDING.")
    batch: BatchType


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


async def _check_callback(info: AppInfo, url: str | None) -> None:
    if url is None:
        return
    ctx = info.context
    if ctx.webhooks is None:
        raise RuntimeError("webhooks are not configured: AppDependencies.webhooks is missing")
    await callbacks.check_callback_url(
        ctx.uow(), ctx.webhooks.guard, ctx.principal, url, "input.callbackUrl"
    )


@strawberry.type
class InferenceMutations:
    @strawberry.mutation(description="Reserve an asset and get a URL to PUT its bytes to.")
    async def request_asset_upload(
        self, info: AppInfo, input: RequestAssetUploadInput
    ) -> RequestAssetUploadPayload:
        ctx = info.context
        asset, upload = await assets.request_upload(
            ctx.uow(),
            ctx.blobs,
            ctx.principal,
            file_name=input.file_name,
            content_type=input.content_type,
            size_bytes=input.size_bytes,
            policy=ctx.upload_policy,
            clock=ctx.clock,
        )
        return RequestAssetUploadPayload(
            asset=AssetType.from_entity(asset),
            upload_url=upload.url,
            upload_headers=JSON(upload.headers),
            expires_at=upload.expires_at,
        )

    @strawberry.mutation(description="Check the bytes are there: PENDING_UPLOAD -> AVAILABLE.")
    async def complete_asset_upload(self, info: AppInfo, id: strawberry.ID) -> AssetPayload:
        ctx = info.context
        asset = await assets.complete_upload(
            ctx.uow(), ctx.blobs, ctx.principal, required_id(id, "Asset"), clock=ctx.clock
        )
        return AssetPayload(asset=AssetType.from_entity(asset))

    @strawberry.mutation(description="Delete an asset and its bytes.")
    async def delete_asset(self, info: AppInfo, id: strawberry.ID) -> AssetPayload:
        ctx = info.context
        asset = await assets.delete_asset(
            ctx.uow(), ctx.blobs, ctx.principal, required_id(id, "Asset"), clock=ctx.clock
        )
        return AssetPayload(asset=AssetType.from_entity(asset))

    @strawberry.mutation(description="Queue an inference request; returns it PENDING.")
    async def create_submission(
        self, info: AppInfo, input: CreateSubmissionInput
    ) -> SubmissionPayload:
        ctx = info.context
        request = _request(input.model_id, input.input, input.asset_ids, input.idempotency_key)
        await _check_callback(info, input.callback_url)
        request = replace(request, callback_url=input.callback_url)
        submission = await submissions.create_submission(
            ctx.uow(), ctx.principal, request, clock=ctx.clock
        )
        return SubmissionPayload(submission=SubmissionType.from_entity(submission))

    @strawberry.mutation(description="Submit and wait for the result, up to the server's timeout.")
    async def run_inference(self, info: AppInfo, input: RunInferenceInput) -> RunInferencePayload:
        ctx = info.context
        request = _request(input.model_id, input.input, input.asset_ids)
        created = await submissions.create_submission(
            ctx.uow(), ctx.principal, request, clock=ctx.clock
        )
        submission, result = await inference.wait_until_finished(
            ctx.uow, ctx.principal, created.id, timeout_seconds=ctx.run_inference_timeout
        )
        return RunInferencePayload(
            submission=SubmissionType.from_entity(submission),
            result=ResultType.from_entity(result) if result else None,
        )

    @strawberry.mutation(description="Queue 1 to 1000 inputs for one model, all or none.")
    async def batch_inference(
        self, info: AppInfo, input: BatchInferenceInput
    ) -> BatchInferencePayload:
        ctx = info.context
        model_id = parse_id(input.model_id, "Model", "input.modelId")
        await _check_callback(info, input.callback_url)
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
