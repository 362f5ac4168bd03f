"""What a history list shows: which of a user's submissions, and in which order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.errors import InvalidInput
from domain.submissions import MAX_METADATA_VALUE, MetadataEntry, metadata_key_problem


class SubmissionOrder(StrEnum):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"

    @property
    def is_descending(self) -> bool:
        return self is SubmissionOrder.CREATED_AT_DESC


@dataclass(frozen=True, slots=True)
class SubmissionFilter:
    """Beyond the status: one model, a window of creation times (both ends exclusive), and
    one metadata pair."""

    model_id: UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    metadata: MetadataEntry | None = None

    @classmethod
    def checked(
        cls,
        model_id: UUID | None,
        created_after: datetime | None,
        created_before: datetime | None,
        path: str = "filter",
        metadata: tuple[str, str] | None = None,
    ) -> SubmissionFilter:
        problems: dict[str, str] = {}
        for name, moment in (("createdAfter", created_after), ("createdBefore", created_before)):
            if moment is not None and moment.tzinfo is None:
                problems[f"{path}.{name}"] = "must carry a time zone (RFC 3339)"
        if metadata is not None:
            key_problem = metadata_key_problem(metadata[0])
            if key_problem is not None:
                problems[f"{path}.metadata.key"] = key_problem
            if len(metadata[1]) > MAX_METADATA_VALUE:
                problems[f"{path}.metadata.value"] = (
                    f"must be at most {MAX_METADATA_VALUE} characters"
                )
        if problems:
            raise InvalidInput(problems)
        if created_after and created_before and created_after >= created_before:
            raise InvalidInput({f"{path}.createdBefore": "must be later than createdAfter"})
        pair = None if metadata is None else MetadataEntry(*metadata)
        return cls(model_id, created_after, created_before, pair)


EVERY_SUBMISSION = SubmissionFilter()
