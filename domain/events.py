"""Domain events: what changed, appended to the outbox in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.models import JSONValue


class EventType(StrEnum):
    SUBMISSION_CREATED = "SUBMISSION_CREATED"
    SUBMISSION_SUCCEEDED = "SUBMISSION_SUCCEEDED"
    SUBMISSION_FAILED = "SUBMISSION_FAILED"
    RESULT_CREATED = "RESULT_CREATED"
    ASSET_AVAILABLE = "ASSET_AVAILABLE"
    ASSET_DELETED = "ASSET_DELETED"
    # Internal: other status changes (RUNNING, CANCELLED, retried) that subscribers see
    # but that are not webhook event types.
    SUBMISSION_UPDATED = "SUBMISSION_UPDATED"

    @property
    def is_webhook_event(self) -> bool:
        return self is not EventType.SUBMISSION_UPDATED

    @property
    def wire_name(self) -> str:
        """The name in webhook bodies: SUBMISSION_SUCCEEDED -> submission.succeeded."""
        subject, _, change = self.value.lower().partition("_")
        return f"{subject}.{change}"


@dataclass(frozen=True, slots=True)
class NewEvent:
    type: EventType
    owner_id: UUID
    subject_id: UUID
    payload: dict[str, JSONValue]


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: EventType
    owner_id: UUID
    subject_id: UUID
    payload: dict[str, JSONValue]
    created_at: datetime
