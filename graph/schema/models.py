"""Models: the Model type and the catalogue of active models."""

from __future__ import annotations

from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.errors import NotFound
from domain.models import Model
from domain.services import owned
from graph.execution import loads
from graph.schema.declarations import Entity, Source, declared, identifier
from graph.schema.nodes import AppInfo, Node, by_id


@strawberry.type(name="Model")
class ModelType(Node, Entity):
    id: strawberry.ID = identifier()
    name: str
    version: str
    description: str
    input_schema: JSON
    output_schema: JSON
    entity: strawberry.Private[Model]


async def load_model(info: AppInfo, model_id: UUID) -> ModelType:
    model = await info.context.loaders.level(loads.models_by_id).load(model_id)
    if model is None:
        raise NotFound("Model", model_id)
    return ModelType.from_entity(model)


@strawberry.type
class ModelQueries:
    @declared(Source("models", loads.active_models), description="The active models.")
    async def models(self, info: AppInfo) -> list[ModelType]:
        ctx = info.context
        _ = ctx.principal
        return [ModelType.from_entity(m) for m in await owned.list_active_models(ctx.uow())]

    @declared(Source("model", loads.models_by_id, "Model"))
    async def model(self, info: AppInfo, id: strawberry.ID) -> ModelType | None:
        return await by_id(info, id, "Model", loads.models_by_id, ModelType.from_entity)
