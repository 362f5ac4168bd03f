"""GraphQL for feedback and model alerts: the ModelAlert type, modelAlerts, submitFeedback,
setModelAlertPolicy and the modelAlertRaised subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.drift import DriftStatus
from domain.errors import Forbidden
from domain.events import Event, EventType
from domain.model_alerts import AlertKind, AlertPolicy, AlertState, ModelAlert
from domain.services import feedback, model_alerts
from graph.execution.declarations import ReferenceOnly, declared, reference_only
from graph.ids import from_global_id, required_id, to_global_id
from graph.schema.models import ModelType, load_model
from graph.schema.monitoring_types import MONITORING
from graph.schema.nodes import (
    After,
    AppInfo,
    Before,
    Connection,
    First,
    Last,
    Node,
    Paging,
    connection,
)
from graph.schema.results import ResultType

ModelIdArgument = Annotated[
    strawberry.ID | None,
    strawberry.argument(description="A model's global id to see its alerts alone; null: all."),
]


@reference_only(MONITORING)
@strawberry.type(
    name="ModelAlert",
    description="A model's alert raised or cleared. Administrators only.",
)
class ModelAlertType(Node):
    kind: AlertKind = strawberry.field(description="What is watched.")
    state: AlertState = strawberry.field(description="RAISED when crossed, CLEARED when back.")
    value: float = strawberry.field(description="The watched value when it changed.")
    threshold: float = strawberry.field(description="The policy's threshold it was held to.")
    at: datetime = strawberry.field(description="When the check saw the change.")
    entity: strawberry.Private[ModelAlert]

    @classmethod
    def from_entity(cls, alert: ModelAlert) -> ModelAlertType:
        return cls(
            id=strawberry.ID(to_global_id("ModelAlert", alert.id)),
            kind=alert.kind,
            state=alert.state,
            value=alert.value,
            threshold=alert.threshold,
            at=alert.at,
            entity=alert,
        )

    @strawberry.field(description="The model version it is about.")
    async def model(self, info: AppInfo) -> ModelType:
        return await load_model(info, self.entity.model_id)


async def load_model_alert(info: AppInfo, alert_id: UUID) -> ModelAlertType | None:
    ctx = info.context
    [found] = await model_alerts.get_alerts(ctx.uow(), ctx.principal, [alert_id])
    return None if found is None else ModelAlertType.from_entity(found)


def _model_id(given: strawberry.ID | None, path: str) -> UUID | None:
    return None if given is None else required_id(given, "Model", path)


@strawberry.type
class ModelAlertQueries:
    @declared(
        ReferenceOnly(MONITORING),
        description="Model alerts, newest first; with `modelId`, that model's. Administrators "
        "only (FORBIDDEN otherwise).",
    )
    async def model_alerts(
        self,
        info: AppInfo,
        model_id: ModelIdArgument = None,
        first: First = 20,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> Connection[ModelAlertType]:
        ctx = info.context
        request = Paging(first, after, last, before).request("ModelAlert", descending=True)
        model = _model_id(model_id, "modelId")
        page, total = await model_alerts.list_alerts(ctx.uow(), ctx.principal, model, request)

        async def count() -> int:
            return total

        return connection(page, ModelAlertType.from_entity, count, "ModelAlert")


@strawberry.input(description="The true label or value of a result.")
class SubmitFeedbackInput:
    result_id: strawberry.ID = strawberry.field(description="The result's global id.")
    label: JSON = strawberry.field(
        description="A class of the model, or a finite number for a regressor; BAD_USER_INPUT "
        "on `input.label` otherwise."
    )


@strawberry.type(description="The result the feedback was recorded for.")
class SubmitFeedbackPayload:
    result: ResultType = strawberry.field(description="The result, with its `feedback`.")


@strawberry.input(description="A model's alert thresholds; a null one is not watched.")
class SetModelAlertPolicyInput:
    model_id: strawberry.ID = strawberry.field(description="The model's global id.")
    latency_p95_ms: float | None = strawberry.field(
        default=None, description="p95 end-to-end latency limit in ms, over 5 minutes."
    )
    error_rate: float | None = strawberry.field(
        default=None, description="Error rate limit, 0 to 1, over 5 minutes."
    )
    drift: DriftStatus | None = strawberry.field(
        default=None, description="Alert at this drift status or worse (OK, WARNING, DRIFT)."
    )
    min_accuracy: float | None = strawberry.field(
        default=None, description="Lowest accuracy, 0 to 1, over the last hour's feedback."
    )
    min_r2: float | None = strawberry.field(
        default=None, description="Lowest R^2 for a regressor, over the last hour's feedback."
    )


@strawberry.type(description="The model whose alert policy was set.")
class SetModelAlertPolicyPayload:
    model: ModelType = strawberry.field(description="The model, with its `alertPolicy`.")


@strawberry.type
class ModelAlertMutations:
    @strawberry.mutation(
        description="Record the true label (or value) of one of the viewer's results; again "
        "replaces it. NOT_FOUND for a result the viewer cannot see, FORBIDDEN to an "
        "administrator for another user's, BAD_USER_INPUT on `input.label` for a label the "
        "model cannot give."
    )
    async def submit_feedback(
        self,
        info: AppInfo,
        input: Annotated[SubmitFeedbackInput, strawberry.argument(description="The label.")],
    ) -> SubmitFeedbackPayload:
        ctx = info.context
        result_id = required_id(input.result_id, "Result", "input.resultId")
        result = await feedback.submit_feedback(
            ctx.uow(), ctx.principal, result_id, input.label, clock=ctx.clock
        )
        return SubmitFeedbackPayload(result=ResultType.from_entity(result))

    @strawberry.mutation(
        description="Set a model's alert thresholds (all of them: a null one stops being "
        "watched). Administrators only; BAD_USER_INPUT naming a threshold out of range."
    )
    async def set_model_alert_policy(
        self,
        info: AppInfo,
        input: Annotated[
            SetModelAlertPolicyInput, strawberry.argument(description="The thresholds.")
        ],
    ) -> SetModelAlertPolicyPayload:
        ctx = info.context
        policy = AlertPolicy(
            required_id(input.model_id, "Model", "input.modelId"),
            latency_p95_ms=input.latency_p95_ms,
            error_rate=input.error_rate,
            drift=input.drift,
            min_accuracy=input.min_accuracy,
            min_r2=input.min_r2,
        )
        model = await model_alerts.set_alert_policy(
            ctx.uow(), ctx.principal, policy, clock=ctx.clock
        )
        return SetModelAlertPolicyPayload(model=ModelType.from_entity(model))


def _alert_of(event: Event) -> ModelAlert:
    """The alert as the event tells it (its snapshot), without a read."""
    p = event.payload
    _, model_id = from_global_id(str(p["modelId"]))
    return ModelAlert(
        event.subject_id,
        model_id,
        AlertKind(p["kind"]),
        AlertState(p["state"]),
        float(p["value"]),
        float(p["threshold"]),
        datetime.fromisoformat(str(p["at"])),
    )


def _alerts_for(user_id: UUID, model_id: str | None) -> Callable[[Event], bool]:
    def matches(e: Event) -> bool:
        if e.type is not EventType.MODEL_ALERT or e.owner_id != user_id:
            return False
        return model_id is None or e.payload.get("modelId") == model_id

    return matches


@strawberry.type
class ModelAlertSubscriptions:
    @strawberry.subscription(
        description="Model alerts as they are raised and cleared (RAISED and CLEARED), each "
        "once; with `modelId`, that model's. Administrators only (FORBIDDEN otherwise)."
    )
    async def model_alert_raised(
        self, info: AppInfo, model_id: ModelIdArgument = None
    ) -> AsyncGenerator[ModelAlertType, None]:
        from graph.schema.subscriptions import event_stream  # the Subscription root imports us

        principal = info.context.principal
        if not principal.is_admin:
            raise Forbidden("only administrators may follow model alerts")
        wanted = _model_id(model_id, "modelId")
        shown = None if wanted is None else to_global_id("Model", wanted)
        async for event in event_stream(info, _alerts_for(principal.user_id, shown)):
            yield ModelAlertType.from_entity(_alert_of(event))
