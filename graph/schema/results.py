"""Results: the Result type (with its alternatives) and the result lookup."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from domain.submissions import Result
from graph.execution import loads
from graph.execution.declarations import (
    Entity,
    ReferenceOnly,
    Source,
    declared,
    identifier,
    stored,
    to_one,
)
from graph.schema.nodes import AppInfo, Node, by_id

if TYPE_CHECKING:
    from graph.schema.submissions import SubmissionType

# graph/schema/submissions.py imports this module (a submission lists its results).
LazySubmission = Annotated["SubmissionType", strawberry.lazy("graph.schema.submissions")]


@strawberry.type(description="One candidate answer of a model, with its confidence.")
class Alternative(Entity):
    value: JSON = strawberry.field(description="The candidate, e.g. a class label.")
    confidence: float = strawberry.field(description="The model's confidence in it, 0 to 1.")


@strawberry.type(
    name="Result",
    description="What a model answered for a submission. Visible to the submission's owner "
    "and administrators.",
)
class ResultType(Node, Entity):
    id: strawberry.ID = identifier()
    prediction: JSON = strawberry.field(
        description="The model's answer, shaped by the model's `outputSchema`."
    )
    confidence: float | None = strawberry.field(
        description="The model's confidence in the prediction, 0 to 1; null when the model "
        "gives none."
    )
    alternatives: list[Alternative] = stored(
        "alternatives",
        description="The candidates the model weighed, each with its confidence; empty when "
        "the model gives none.",
    )
    model_version: str = strawberry.field(description="The version of the model that answered.")
    processing_time_ms: int = strawberry.field(
        description="How long the model took for this input, in milliseconds."
    )
    created_at: datetime = strawberry.field(description="When the result was recorded.")
    entity: strawberry.Private[Result]

    @declared(
        ReferenceOnly("model monitoring: feedback is read by the reference executor"),
        description="The true label or value its owner recorded (submitFeedback); null until then.",
    )
    async def feedback(self, info: AppInfo) -> JSON | None:
        label: JSON | None = await info.context.loaders.level(loads.feedback_of_results).load(
            self.entity.id
        )
        return label

    submission: LazySubmission = to_one(
        "submission_id",
        load=loads.submissions_by_id,
        description="The submission it answers.",
    )


@strawberry.type
class ResultQueries:
    @declared(
        Source(loads.results_by_id, "Result"),
        description="A result by id; NOT_FOUND when the viewer cannot see it.",
    )
    async def result(
        self,
        info: AppInfo,
        id: Annotated[strawberry.ID, strawberry.argument(description="The result's global id.")],
    ) -> ResultType | None:
        return await by_id(info, id, "Result", loads.results_by_id, ResultType.from_entity)
