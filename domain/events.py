"""Domain events: what changed, appended to the outbox in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.ids import to_global_id
from domain.models import JSONValue


class EventType(StrEnum):
    SUBMISSION_CREATED = "SUBMISSION_CREATED"
    SUBMISSION_SUCCEEDED = "SUBMISSION_SUCCEEDED"
    SUBMISSION_FAILED = "SUBMISSION_FAILED"
    RESULT_CREATED = "RESULT_CREATED"
    ASSET_AVAILABLE = "ASSET_AVAILABLE"
    ASSET_DELETED = "ASSET_DELETED"
    # Every submission of a batch is finished (the batch is COMPLETED or CANCELLED).
    BATCH_COMPLETED = "BATCH_COMPLETED"
    # A model's alert was raised or cleared; one event per administrator (its owner).
    MODEL_ALERT = "MODEL_ALERT"
    # Internal: a batch changed without a submission changing (cancelBatch with none PENDING).
    BATCH_UPDATED = "BATCH_UPDATED"
    # Internal: other status changes (RUNNING, CANCELLED, retried) that subscribers see
    # but that are not webhook event types.
    SUBMISSION_UPDATED = "SUBMISSION_UPDATED"
    # Internal: a principal's access ended (a user deactivated; later, a key revoked).
    # Every process closes that principal's sockets when it sees one.
    PRINCIPAL_REVOKED = "PRINCIPAL_REVOKED"

    @property
    def is_webhook_event(self) -> bool:
        return self not in _INTERNAL

    @property
    def wire_name(self) -> str:
        """The name in webhook bodies: SUBMISSION_SUCCEEDED -> submission.succeeded."""
        subject, _, change = self.value.lower().partition("_")
        return f"{subject}.{change}"


_INTERNAL = frozenset(
    {EventType.SUBMISSION_UPDATED, EventType.PRINCIPAL_REVOKED, EventType.BATCH_UPDATED}
)


def principal_revoked(user_id: UUID, reason: str) -> NewEvent:
    """Owner and subject are the user whose sockets must close."""
    return NewEvent(
        type=EventType.PRINCIPAL_REVOKED,
        owner_id=user_id,
        subject_id=user_id,
        payload={"userId": to_global_id("User", user_id), "reason": reason},
    )


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
