"""Any object by its global id: Query.node and Query.nodes, over every entity module."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any
from uuid import UUID

import strawberry

from domain.errors import InvalidInput, NotFound
from domain.services import webhooks
from graph.execution import loads
from graph.execution.declarations import ReferenceOnly, declared
from graph.execution.specs import LoadFn
from graph.ids import from_global_id
from graph.schema.accounts import load_api_key
from graph.schema.assets import AssetType
from graph.schema.batches import BatchType
from graph.schema.model_alerts import load_model_alert
from graph.schema.models import ModelType
from graph.schema.nodes import AppInfo, Node
from graph.schema.results import ResultType
from graph.schema.submissions import SubmissionType
from graph.schema.users import UserType
from graph.schema.webhooks import (
    WebhookDeliveryType,
    WebhookEndpointType,
    load_webhook_delivery,
    load_webhook_endpoint,
)

MAX_NODE_IDS = 100
_ABSTRACT = "an abstract type"

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
    if type_name == "ModelAlert":
        return await load_model_alert(info, ident)
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
    if type_name == "ModelAlert":
        return [await load_model_alert(info, i) for i in idents]
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


@strawberry.type
class NodeQueries:
    @declared(
        ReferenceOnly(_ABSTRACT),
        description="Any object by its global id. NOT_FOUND when the caller cannot see it; "
        "BAD_USER_INPUT for a string that is not an id of this API.",
    )
    async def node(
        self,
        info: AppInfo,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        type_name, ident = from_global_id(id)
        node = await _load_node(info, type_name, ident)
        if node is None:
            raise NotFound(type_name, id)
        return node

    @declared(
        ReferenceOnly(_ABSTRACT),
        description="Objects by global id, in the order given, null for those the caller "
        "cannot see. BAD_USER_INPUT for more than 100 ids or a string that is not an id.",
    )
    async def nodes(
        self,
        info: AppInfo,
        ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="At most 100 global ids.")
        ],
    ) -> list[Node | None]:
        if len(ids) > MAX_NODE_IDS:
            raise InvalidInput({"ids": f"at most {MAX_NODE_IDS} ids, got {len(ids)}"})
        decoded = [from_global_id(i, f"ids.{n}") for n, i in enumerate(ids)]
        return await _load_nodes(info, decoded)
