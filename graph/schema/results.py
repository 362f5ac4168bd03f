"""Results: the Result type (with its alternatives) and the result lookup."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.scalars import JSON

from domain.submissions import Result
from graph.execution import loads
from graph.schema.declarations import Entity, Source, declared, identifier, stored, to_one
from graph.schema.nodes import AppInfo, Node, by_id

if TYPE_CHECKING:
    from graph.schema.submissions import SubmissionType

# graph/schema/submissions.py imports this module (a submission lists its results).
LazySubmission = Annotated["SubmissionType", strawberry.lazy("graph.schema.submissions")]


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
    submission: LazySubmission = to_one(
        "submission", key="submission_id", load=loads.submissions_by_id
    )


@strawberry.type
class ResultQueries:
    @declared(Source("result", loads.results_by_id, "Result"))
    async def result(self, info: AppInfo, id: strawberry.ID) -> ResultType | None:
        return await by_id(info, id, "Result", loads.results_by_id, ResultType.from_entity)
