"""The history arguments of `submissions` (on Query and User): filter and order."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.history import EVERY_SUBMISSION, SubmissionOrder
from domain.history import SubmissionFilter as SubmissionFilterValue
from graph.execution.loads import filter_value
from graph.schema.metadata import MetadataEntryInput
from graph.schema.nodes import described_enum

described_enum(
    SubmissionOrder,
    name="SubmissionOrder",
    description="The order of a submissions list, by creation time.",
    values={
        "CREATED_AT_DESC": "Newest first (the default).",
        "CREATED_AT_ASC": "Oldest first.",
    },
)

DEFAULT_ORDER = SubmissionOrder.CREATED_AT_DESC


@strawberry.input(
    description="Which submissions: those matching every field given; both time bounds are "
    "exclusive."
)
class SubmissionFilter:
    model_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Only submissions to this model (a Model's global id); BAD_USER_INPUT "
        "for an id of another type.",
    )
    created_after: datetime | None = strawberry.field(
        default=None, description="Only submissions created after this moment."
    )
    created_before: datetime | None = strawberry.field(
        default=None,
        description="Only submissions created before this moment; BAD_USER_INPUT unless it "
        "is after `createdAfter`.",
    )
    metadata: MetadataEntryInput | None = strawberry.field(
        default=None,
        description="Only submissions whose metadata holds this key with exactly this value.",
    )


def from_input(given: SubmissionFilter | None) -> SubmissionFilterValue:
    if given is None:
        return EVERY_SUBMISSION
    pair = None if given.metadata is None else (given.metadata.key, given.metadata.value)
    return filter_value(given.model_id, given.created_after, given.created_before, pair)
