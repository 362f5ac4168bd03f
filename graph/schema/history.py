"""The history arguments of `submissions` (on Query and User): filter and order."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from domain.errors import InvalidInput
from domain.history import EVERY_SUBMISSION, SubmissionOrder
from domain.history import SubmissionFilter as SubmissionFilterValue
from graph.ids import from_global_id

strawberry.enum(SubmissionOrder, name="SubmissionOrder")

DEFAULT_ORDER = SubmissionOrder.CREATED_AT_DESC


@strawberry.input(description="Which submissions: both time bounds are exclusive.")
class SubmissionFilter:
    model_id: strawberry.ID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def model_id_of(global_id: str | None, path: str = "filter.modelId") -> UUID | None:
    if global_id is None:
        return None
    type_name, ident = from_global_id(global_id, path)
    if type_name != "Model":
        raise InvalidInput({path: f"{global_id!r} is not a Model id"})
    return ident


def filter_value(
    model_id: str | None, created_after: datetime | None, created_before: datetime | None
) -> SubmissionFilterValue:
    """The domain's filter from the input's fields (the compiled path has them as a dict)."""
    if model_id is None and created_after is None and created_before is None:
        return EVERY_SUBMISSION
    return SubmissionFilterValue.checked(model_id_of(model_id), created_after, created_before)


def from_input(given: SubmissionFilter | None) -> SubmissionFilterValue:
    if given is None:
        return EVERY_SUBMISSION
    return filter_value(given.model_id, given.created_after, given.created_before)
