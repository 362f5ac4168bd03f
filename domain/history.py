"""What a history list shows: which of a user's submissions, and in which order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.errors import InvalidInput


class SubmissionOrder(StrEnum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"

    @property
    def is_descending(self) -> bool:
        return self is SubmissionOrder.CREATED_AT_DESC


@dataclass(frozen=True, slots=True)
class SubmissionFilter:
    """Beyond the status: one model, and a window of creation times (both ends exclusive)."""

    model_id: UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @classmethod
    def checked(
        cls,
        model_id: UUID | None,
        created_after: datetime | None,
        created_before: datetime | None,
        path: str = "filter",
    ) -> SubmissionFilter:
        problems: dict[str, str] = {}
        for name, moment in (("createdAfter", created_after), ("createdBefore", created_before)):
            if moment is not None and moment.tzinfo is None:
                problems[f"{path}.{name}"] = "must carry a time zone (RFC 3339)"
        if problems:
            raise InvalidInput(problems)
        if created_after and created_before and created_after >= created_before:
            raise InvalidInput({f"{path}.createdBefore": "must be later than createdAfter"})
        return cls(model_id=model_id, created_after=created_after, created_before=created_before)


EVERY_SUBMISSION = SubmissionFilter()
