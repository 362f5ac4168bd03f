"""The Query root: lookups by id, the viewer's lists, the admin's user list, the model catalogue."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import strawberry

from domain.assets import AssetStatus
from domain.errors import InvalidInput, NotFound
from domain.history import SubmissionOrder
from domain.services import owned, users, webhooks
from domain.submissions import SubmissionStatus
from domain.users import UserFilter as UserFilterValue
from graph import history
from graph.accounts import AccountQueries, load_api_key
from graph.batches import BatchQueries, BatchType
from graph.declarations import Paged, ReferenceOnly, Source, declared
from graph.execution import loads
from graph.execution.specs import LoadFn
from graph.ids import from_global_id, page_request, parse_id
from graph.types import (
    AppInfo,
    AssetType,
    Connection,
    ModelType,
    Node,
    ResultType,
    SubmissionType,
    UserType,
    assets_of,
    connection,
    load_user,
    submissions_of,
)
from graph.webhooks import (
    WebhookDeliveryType,
    WebhookEndpointType,
    WebhookQueries,
    load_webhook_delivery,
    load_webhook_endpoint,
)

MAX_NODE_IDS = 100


@strawberry.input
class UserFilter:
    email_contains: str | None = None
    is_active: bool | None = None


# The level load (graph/execution/loads.py) of each type whose nodes it finds by id.
_BY_ID: dict[str, tuple[LoadFn, Callable[[Any], Node]]] = {
    "User": (loads.users_by_id, UserType.from_entity),
    "Asset": (loads.assets_by_id, AssetType.from_entity),
    "Submission": (loads.submissions_by_id, SubmissionType.from_entity),
    "Result": (loads.results_by_id, ResultType.from_entity),
    "Model": (loads.models_by_id, ModelType.from_entity),
}


async def _load_node(info: AppInfo, type_name: str, ident: UUID) -> Node | None:
    loaders = info.context.loaders
    if type_name in _BY_ID:
        load, to_node = _BY_ID[type_name]
        found = await loaders.level(load).load(ident)
        return to_node(found) if found else None
    if type_name == "WebhookEndpoint":
        return await load_webhook_endpoint(info, ident)
    if type_name == "WebhookDelivery":
        return await load_webhook_delivery(info, ident)
    if type_name == "Batch":
        batch = await loaders.batch_by_id.load(ident)
        return BatchType.from_entity(batch) if batch else None
    if type_name == "ApiKey":
        return await load_api_key(info, ident)
    return None


async def _load_many(info: AppInfo, type_name: str, idents: list[UUID]) -> Sequence[Node | None]:
    """Nodes of one type in one batched read (one statement), in `idents` order."""
    loaders, ctx = info.context.loaders, info.context
    if type_name == "WebhookEndpoint":
        endpoints = await webhooks.get_endpoints(ctx.uow(), ctx.principal, idents)
        return [WebhookEndpointType.from_entity(e) if e else None for e in endpoints]
    if type_name == "WebhookDelivery":
        deliveries = await webhooks.get_deliveries(ctx.uow(), ctx.principal, idents)
        return [WebhookDeliveryType.from_entity(d) if d else None for d in deliveries]
    if type_name == "Batch":
        found = await loaders.batch_by_id.load_many(idents)
        return [BatchType.from_entity(b) if b else None for b in found]
    if type_name == "ApiKey":  # a viewer has a handful: one read each
        return [await load_api_key(info, i) for i in idents]
    if type_name not in _BY_ID:
        return [None] * len(idents)
    load, to_node = _BY_ID[type_name]
    return [to_node(e) if e else None for e in await loaders.level(load).load_many(idents)]


async def _load_nodes(info: AppInfo, decoded: list[tuple[str, UUID]]) -> list[Node | None]:
    """One batched read per type named, not one per id."""
    by_type: dict[str, dict[UUID, None]] = {}
    for type_name, ident in decoded:
        by_type.setdefault(type_name, {})[ident] = None  # an ordered set
    found: dict[tuple[str, UUID], Node | None] = {}
    for type_name, unique in by_type.items():
        idents = list(unique)
        nodes = await _load_many(info, type_name, idents)
        found.update(zip(((type_name, i) for i in idents), nodes, strict=True))
    return [found[key] for key in decoded]


async def _require(info: AppInfo, global_id: str, expected: str) -> Node:
    ident = parse_id(global_id, expected)
    node = await _load_node(info, expected, ident) if ident else None
    if node is None:
        raise NotFound(expected, global_id)
    return node


_ABSTRACT = "an abstract type"
_USERS = Paged(
    "users", loads.user_page, loads.user_count, loads.user_page_arguments, loads.user_window
)
_VIEWER_ASSETS = Paged(
    "assets",
    loads.for_the_viewer(loads.asset_pages, "viewer_asset_page"),
    loads.for_the_viewer(loads.asset_counts, "viewer_asset_count"),
    loads.asset_page_arguments,
    loads.asset_window,
)
_VIEWER_SUBMISSIONS = Paged(
    "submissions",
    loads.for_the_viewer(loads.submission_pages, "viewer_submission_page"),
    loads.for_the_viewer(loads.submission_counts, "viewer_submission_count"),
    loads.submission_page_arguments,
    loads.submission_window,
)


@strawberry.type
class Query(WebhookQueries, BatchQueries, AccountQueries):
    @declared(ReferenceOnly(_ABSTRACT), description="Any object by its global id.")
    async def node(self, info: AppInfo, id: strawberry.ID) -> Node | None:
        type_name, ident = from_global_id(id)
        node = await _load_node(info, type_name, ident)
        if node is None:
            raise NotFound(type_name, id)
        return node

    @declared(
        ReferenceOnly(_ABSTRACT),
        description="Objects by global id (at most 100), null for those the caller cannot see.",
    )
    async def nodes(self, info: AppInfo, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_NODE_IDS:
            raise InvalidInput({"ids": f"at most {MAX_NODE_IDS} ids, got {len(ids)}"})
        decoded = [from_global_id(i, f"ids.{n}") for n, i in enumerate(ids)]
        return await _load_nodes(info, decoded)

    @declared(Source("viewer", loads.viewer), description="The signed-in user.")
    async def viewer(self, info: AppInfo) -> UserType:
        return await load_user(info, info.context.principal.user_id)

    @declared(
        Source("user", loads.users_by_id, "User"),
        description="A user: the viewer, or anyone for administrators.",
    )
    async def user(self, info: AppInfo, id: strawberry.ID) -> UserType | None:
        node = await _require(info, id, "User")
        assert isinstance(node, UserType)
        return node

    @declared(_USERS, description="Every user, for administrators.")
    async def users(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> Connection[UserType]:
        ctx = info.context
        value = UserFilterValue(
            email_contains=filter.email_contains if filter else None,
            is_active=filter.is_active if filter else None,
        )
        page = await users.list_users(ctx.uow(), ctx.principal, page_request(first, after), value)
        return connection(
            page,
            UserType.from_entity,
            lambda: users.count_users(ctx.uow(), ctx.principal, value),
        )

    @declared(Source("asset", loads.assets_by_id, "Asset"))
    async def asset(self, info: AppInfo, id: strawberry.ID) -> AssetType | None:
        node = await _require(info, id, "Asset")
        assert isinstance(node, AssetType)
        return node

    @declared(_VIEWER_ASSETS, description="The viewer's assets.")
    async def assets(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: AssetStatus | None = None,
    ) -> Connection[AssetType]:
        return await assets_of(info, info.context.principal.user_id, first, after, status)

    @declared(Source("submission", loads.submissions_by_id, "Submission"))
    async def submission(self, info: AppInfo, id: strawberry.ID) -> SubmissionType | None:
        node = await _require(info, id, "Submission")
        assert isinstance(node, SubmissionType)
        return node

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

    @declared(Source("result", loads.results_by_id, "Result"))
    async def result(self, info: AppInfo, id: strawberry.ID) -> ResultType | None:
        node = await _require(info, id, "Result")
        assert isinstance(node, ResultType)
        return node

    @declared(Source("models", loads.active_models), description="The active models.")
    async def models(self, info: AppInfo) -> list[ModelType]:
        ctx = info.context
        _ = ctx.principal
        return [ModelType.from_entity(m) for m in await owned.list_active_models(ctx.uow())]

    @declared(Source("model", loads.models_by_id, "Model"))
    async def model(self, info: AppInfo, id: strawberry.ID) -> ModelType | None:
        node = await _require(info, id, "Model")
        assert isinstance(node, ModelType)
        return node
