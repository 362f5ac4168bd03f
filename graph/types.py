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
from domain.pagination import Keyed, Page, keyset_of
from domain.submissions import Result, Submission, SubmissionStatus
from domain.users import User
from graph import history
from graph.declarations import (
    Computed,
    Entity,
    Paged,
    ReferenceOnly,
    ToMany,
    ToOne,
    declared,
    identifier,
    stored,
    to_many,
    to_one,
)
from graph.execution import loads
from graph.execution.context import Context
from graph.ids import page_request, to_cursor

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


BATCHES = "batches: status, counts and estimate are derived, not yet declared"
_ASSETS = Paged(
    "assets", loads.asset_pages, loads.asset_counts, loads.asset_page_arguments, loads.asset_window
)
_SUBMISSIONS = Paged(
    "submissions",
    loads.submission_pages,
    loads.submission_counts,
    loads.submission_page_arguments,
    loads.submission_window,
)


@strawberry.type(name="User")
class UserType(Node, Entity):
    id: strawberry.ID = identifier()
    email: str
    name: str
    language: str
    is_active: bool
    groups: list[str]
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[User]

    @declared(_ASSETS)
    async def assets(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: AssetStatus | None = None,
    ) -> Connection[AssetType]:
        return await assets_of(info, self.entity.id, first, after, status)

    @declared(_SUBMISSIONS)
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

    @declared(ReferenceOnly(BATCHES), description="Newest first.")
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
    key = (owner_id, (page_request(first, after, descending=True), status))
    page = await loaders.paged(loads.asset_pages).load(key)
    return connection(
        page, AssetType.from_entity, lambda: loaders.paged(loads.asset_counts).load(key)
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
    key = (owner_id, (request, status, history.from_input(given)))
    page = await loaders.paged(loads.submission_pages).load(key)
    return connection(
        page,
        SubmissionType.from_entity,
        lambda: loaders.paged(loads.submission_counts).load(key),
    )


async def load_user(info: AppInfo, user_id: UUID) -> UserType:
    user = await info.context.loaders.level(loads.users_by_id).load(user_id)
    if user is None:
        raise NotFound("User", user_id)
    return UserType.from_entity(user)


async def load_model(info: AppInfo, model_id: UUID) -> ModelType:
    model = await info.context.loaders.level(loads.models_by_id).load(model_id)
    if model is None:
        raise NotFound("Model", model_id)
    return ModelType.from_entity(model)


@strawberry.type(name="Asset")
class AssetType(Node, Entity):
    id: strawberry.ID = identifier()
    file_name: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[Asset]
    owner: UserType = to_one("owner", key="owner_id", load=loads.users_by_id)

    @declared(
        Computed(loads.download_urls, "a URL signed in Python per request"),
        description="A short-lived URL to fetch the bytes; null unless AVAILABLE.",
    )
    async def download_url(self, info: AppInfo) -> str | None:
        url: str | None = await info.context.loaders.level(loads.download_urls).load(self.entity)
        return url


@strawberry.type(name="Model")
class ModelType(Node, Entity):
    id: strawberry.ID = identifier()
    name: str
    version: str
    description: str
    input_schema: JSON
    output_schema: JSON
    entity: strawberry.Private[Model]


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
        from graph.batches import load_batch

        if self.entity.batch_id is None:
            return None
        return await load_batch(info, self.entity.batch_id)


@strawberry.type
class Alternative(Entity):
    value: JSON
    confidence: float


@strawberry.type(name="Result")
class ResultType(Node, Entity):
    id: strawberry.ID = identifier()
    prediction: JSON
    confidence: float | None
    alternatives: list[Alternative] = stored("alternatives")
    model_version: str
    processing_time_ms: int
    created_at: datetime
    entity: strawberry.Private[Result]
    submission: SubmissionType = to_one(
        "submission", key="submission_id", load=loads.submissions_by_id
    )
