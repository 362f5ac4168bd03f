"""Models: the Model type and the catalogue of active models."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain import projections as p
from domain.errors import NotFound
from domain.models import Model
from domain.services import model_alerts, monitoring, owned
from graph.execution import loads
from graph.execution.declarations import Entity, ReferenceOnly, Source, declared, identifier
from graph.schema.monitoring_types import (
    MONITORING,
    ModelAlertPolicy,
    ModelDrift,
    ModelQuality,
    ModelStats,
    StatsWindow,
    window_of,
)
from graph.schema.nodes import AppInfo, Node, by_id

Window = Annotated[
    StatsWindow | None,
    strawberry.argument(description="The window; default the last hour."),
]
ADMINS = " Administrators only (FORBIDDEN otherwise): it aggregates every caller's traffic."


@strawberry.type(
    name="Model",
    description="A registered machine-learning model that submissions run on.",
)
class ModelType(Node, Entity):
    id: strawberry.ID = identifier()
    name: str = strawberry.field(description="The model's name, e.g. `iris-species`.")
    version: str = strawberry.field(
        description="This model's version; results record the version that made them."
    )
    description: str = strawberry.field(description="What the model does, in words.")
    input_schema: JSON = strawberry.field(
        description="The JSON Schema (draft 2020-12) a submission's `input` must satisfy; "
        "an input that fails it is BAD_USER_INPUT naming each failing path."
    )
    output_schema: JSON = strawberry.field(
        description="The JSON Schema of a result's `prediction` for this model."
    )
    entity: strawberry.Private[Model]

    @declared(
        ReferenceOnly(MONITORING),
        description="Counts, error rate, throughput, latency percentiles and the prediction "
        "distribution over the window, from per-minute rollups." + ADMINS,
    )
    async def stats(self, info: AppInfo, window: Window = None) -> ModelStats:
        ctx = info.context
        checked = window_of(window, ctx.monitoring, ctx.clock())
        found = await monitoring.model_stats(ctx.uow(), ctx.principal, self.entity, checked)
        return ModelStats.of(found)

    @declared(
        ReferenceOnly(MONITORING),
        description="Per input feature and for the output: PSI and KS against the model's "
        "reference, a status, and the drift share." + ADMINS,
    )
    async def drift(self, info: AppInfo, window: Window = None) -> ModelDrift:
        ctx = info.context
        checked = window_of(window, ctx.monitoring, ctx.clock())
        found = await monitoring.model_drift(
            ctx.uow(), ctx.principal, self.entity, checked, ctx.monitoring
        )
        return ModelDrift.of(found)

    @declared(
        ReferenceOnly(MONITORING),
        description="Accuracy and macro F1 (classifiers) or MAE and RMSE (regressors) over "
        "the results created in the window that have feedback." + ADMINS,
    )
    async def quality(self, info: AppInfo, window: Window = None) -> ModelQuality:
        ctx = info.context
        checked = window_of(window, ctx.monitoring, ctx.clock())
        found = await monitoring.model_quality(ctx.uow(), ctx.principal, self.entity, checked)
        return ModelQuality.of(found)

    @declared(
        ReferenceOnly(MONITORING),
        description="The thresholds that raise this model's alerts." + ADMINS,
    )
    async def alert_policy(self, info: AppInfo) -> ModelAlertPolicy:
        ctx = info.context
        [policy] = await model_alerts.alert_policies(ctx.uow(), ctx.principal, [self.entity.id])
        return ModelAlertPolicy.of(policy)


async def load_model(info: AppInfo, model_id: UUID) -> ModelType:
    model = await info.context.loaders.level(loads.models_by_id).load(model_id)
    if model is None:
        raise NotFound("Model", model_id)
    return ModelType.from_entity(model)


@strawberry.type
class ModelQueries:
    @declared(
        Source(
            loads.active_models,
            where=(p.Match("is_active", True),),
            order=(p.Sort("name"), *p.BY_CREATION),
        ),
        description="The active models, the ones submissions can use.",
    )
    async def models(self, info: AppInfo) -> list[ModelType]:
        ctx = info.context
        _ = ctx.principal
        return [ModelType.from_entity(m) for m in await owned.list_active_models(ctx.uow())]

    @declared(
        Source(loads.models_by_id, "Model"),
        description="A model by id; NOT_FOUND for an id that names no model.",
    )
    async def model(
        self,
        info: AppInfo,
        id: Annotated[strawberry.ID, strawberry.argument(description="The model's global id.")],
    ) -> ModelType | None:
        return await by_id(info, id, "Model", loads.models_by_id, ModelType.from_entity)
