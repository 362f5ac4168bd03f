"""GraphQL object types for users, assets, models, submissions and results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Generic, TypeVar
from uuid import UUID

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from domain.assets import Asset, AssetStatus
from domain.errors import NotFound
from domain.history import SubmissionOrder
from domain.models import Model
from domain.pagination import Keyed, Page, PageRequest, keyset_of
from domain.submissions import Result, Submission, SubmissionStatus
from domain.users import User
from graph import history
from graph.execution.context import Context
from graph.ids import from_cursor, to_cursor, to_global_id

# The domain's enums are the GraphQL enums: same names, same values.
strawberry.enum(AssetStatus, name="AssetStatus")
strawberry.enum(SubmissionStatus, name="SubmissionStatus")

AppInfo = Info[Context, None]

if TYPE_CHECKING:
    from graph.batches import BatchType

# Batch types live in graph/batches.py, which imports this module.
LazyBatch = Annotated["BatchType", strawberry.lazy("graph.batches")]


@strawberry.interface(name="Node", description="An object with a globally unique, opaque id.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


N = TypeVar("N")


@strawberry.type
class Edge(Generic[N]):
    cursor: str
    node: N


@strawberry.type
class Connection(Generic[N]):
    edges: list[Edge[N]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Counted only when selected.")
    async def total_count(self) -> int:
        return await self.count()


E = TypeVar("E", bound=Keyed)


def connection(
    page: Page[E], to_node: Callable[[E], N], count: Callable[[], Awaitable[int]]
) -> Connection[N]:
    edges = [Edge(cursor=to_cursor(keyset_of(item)), node=to_node(item)) for item in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next_page,
            has_previous_page=page.has_previous_page,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


def page_request(first: int | None, after: str | None, *, descending: bool = False) -> PageRequest:
    return PageRequest.checked(first, from_cursor(after), descending=descending)


@strawberry.type(name="User")
class UserType(Node):
    email: str
    name: str
    language: str
    is_active: bool
    groups: list[str]
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[User]

    @classmethod
    def from_entity(cls, user: User) -> UserType:
        return cls(
            id=strawberry.ID(to_global_id("User", user.id)),
            email=user.email,
            name=user.name,
            language=user.language,
            is_active=user.is_active,
            groups=list(user.groups),
            created_at=user.created_at,
            updated_at=user.updated_at,
            entity=user,
        )

    @strawberry.field
    async def assets(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: AssetStatus | None = None,
    ) -> Connection[AssetType]:
        return await assets_of(info, self.entity.id, first, after, status)

    @strawberry.field
    async def submissions(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: SubmissionStatus | None = None,
        filter: history.SubmissionFilter | None = None,
        order_by: SubmissionOrder | None = history.DEFAULT_ORDER,
    ) -> Connection[SubmissionType]:
        return await submissions_of(info, self.entity.id, first, after, status, filter, order_by)

    @strawberry.field(description="Newest first.")
    async def batches(
        self, info: AppInfo, first: int | None = 20, after: str | None = None
    ) -> Connection[LazyBatch]:
        from graph.batches import batches_of

        return await batches_of(info, self.entity.id, first, after)


async def assets_of(
    info: AppInfo, owner_id: UUID, first: int | None, after: str | None, status: AssetStatus | None
) -> Connection[AssetType]:
    """Newest first, as people read their own lists."""
    loaders = info.context.loaders
    request = page_request(first, after, descending=True)
    page = await loaders.asset_page_by_owner.load((owner_id, (request, status)))
    return connection(
        page,
        AssetType.from_entity,
        lambda: loaders.asset_count_by_owner.load((owner_id, status)),
    )


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
    where = history.from_input(given)
    page = await loaders.submission_page_by_owner.load((owner_id, (request, status, where)))
    return connection(
        page,
        SubmissionType.from_entity,
        lambda: loaders.submission_count_by_owner.load((owner_id, (status, where))),
    )


async def load_user(info: AppInfo, user_id: UUID) -> UserType:
    user = await info.context.loaders.user_by_id.load(user_id)
    if user is None:
        raise NotFound("User", user_id)
    return UserType.from_entity(user)


async def load_model(info: AppInfo, model_id: UUID) -> ModelType:
    model = await info.context.loaders.model_by_id.load(model_id)
    if model is None:
        raise NotFound("Model", model_id)
    return ModelType.from_entity(model)


@strawberry.type(name="Asset")
class AssetType(Node):
    file_name: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[Asset]

    @classmethod
    def from_entity(cls, asset: Asset) -> AssetType:
        return cls(
            id=strawberry.ID(to_global_id("Asset", asset.id)),
            file_name=asset.file_name,
            content_type=asset.content_type,
            size_bytes=asset.size_bytes,
            status=asset.status,
            created_at=asset.created_at,
            updated_at=asset.updated_at,
            entity=asset,
        )

    @strawberry.field
    async def owner(self, info: AppInfo) -> UserType:
        return await load_user(info, self.entity.owner_id)

    @strawberry.field(description="A short-lived URL to fetch the bytes; null unless AVAILABLE.")
    async def download_url(self, info: AppInfo) -> str | None:
        if self.entity.status is not AssetStatus.AVAILABLE:
            return None
        ctx = info.context
        return await ctx.blobs.presign_download(
            self.entity.object_key, expires_in=ctx.download_url_ttl, file_name=self.entity.file_name
        )


@strawberry.type(name="Model")
class ModelType(Node):
    name: str
    version: str
    description: str
    input_schema: JSON
    output_schema: JSON

    @classmethod
    def from_entity(cls, model: Model) -> ModelType:
        return cls(
            id=strawberry.ID(to_global_id("Model", model.id)),
            name=model.name,
            version=model.version,
            description=model.description,
            input_schema=JSON(model.input_schema),
            output_schema=JSON(model.output_schema),
        )


@strawberry.type(name="Submission")
class SubmissionType(Node):
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

    @classmethod
    def as_of(cls, submission: Submission) -> SubmissionType:
        """The submission as an event recorded it (only SUCCEEDED ones have results)."""
        message = cls.from_entity(submission)
        message.has_results = submission.status is SubmissionStatus.SUCCEEDED
        return message

    @classmethod
    def from_entity(cls, submission: Submission) -> SubmissionType:
        return cls(
            id=strawberry.ID(to_global_id("Submission", submission.id)),
            input=JSON(submission.input),
            status=submission.status,
            error=submission.error,
            attempts=submission.attempts,
            created_at=submission.created_at,
            updated_at=submission.updated_at,
            entity=submission,
        )

    @strawberry.field
    async def owner(self, info: AppInfo) -> UserType:
        return await load_user(info, self.entity.owner_id)

    @strawberry.field
    async def model(self, info: AppInfo) -> ModelType:
        return await load_model(info, self.entity.model_id)

    @strawberry.field
    async def assets(self, info: AppInfo) -> list[AssetType]:
        assets = await info.context.loaders.assets_by_submission.load(self.entity.id)
        return [AssetType.from_entity(a) for a in assets]

    @strawberry.field
    async def results(self, info: AppInfo) -> list[ResultType]:
        if not self.has_results:
            return []
        results = await info.context.loaders.results_by_submission.load(self.entity.id)
        return [ResultType.from_entity(r) for r in results]

    @strawberry.field(description="The newest result, if any.")
    async def latest_result(self, info: AppInfo) -> ResultType | None:
        if not self.has_results:
            return None
        results = await info.context.loaders.results_by_submission.load(self.entity.id)
        return ResultType.from_entity(results[-1]) if results else None

    @strawberry.field(description="Null unless made by batchInference.")
    async def batch(self, info: AppInfo) -> LazyBatch | None:
        from graph.batches import load_batch

        if self.entity.batch_id is None:
            return None
        return await load_batch(info, self.entity.batch_id)


@strawberry.type
class Alternative:
    value: JSON
    confidence: float


@strawberry.type(name="Result")
class ResultType(Node):
    prediction: JSON
    confidence: float | None
    alternatives: list[Alternative]
    model_version: str
    processing_time_ms: int
    created_at: datetime
    entity: strawberry.Private[Result]

    @classmethod
    def from_entity(cls, result: Result) -> ResultType:
        return cls(
            id=strawberry.ID(to_global_id("Result", result.id)),
            prediction=JSON(result.prediction),
            confidence=result.confidence,
            alternatives=[
                Alternative(value=JSON(a.value), confidence=a.confidence)
                for a in result.alternatives
            ],
            model_version=result.model_version,
            processing_time_ms=result.processing_time_ms,
            created_at=result.created_at,
            entity=result,
        )

    @strawberry.field
    async def submission(self, info: AppInfo) -> SubmissionType:
        submission = await info.context.loaders.submission_by_id.load(self.entity.submission_id)
        if submission is None:
            raise NotFound("Submission", self.entity.submission_id)
        return SubmissionType.from_entity(submission)
