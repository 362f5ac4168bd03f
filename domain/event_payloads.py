"""What an event carries: its object's global ids and the state that changed, as of the event.

The payload is both the webhook body's `data` and the snapshot a subscription message is
built from, so a message shows its object as it was when the event happened even when the
row has moved on by the time the message is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from domain.assets import Asset, AssetStatus
from domain.events import EventType, NewEvent
from domain.ids import to_global_id
from domain.models import JSONValue
from domain.submissions import Result, Submission, SubmissionStatus

Payload = dict[str, JSONValue]


def result_fields(result: Result) -> Payload:
    return {
        "resultId": to_global_id("Result", result.id),
        "prediction": result.prediction,
        "confidence": result.confidence,
        "modelVersion": result.model_version,
    }


def submission_payload(submission: Submission, result: Result | None = None) -> Payload:
    payload: Payload = {
        "submissionId": to_global_id("Submission", submission.id),
        "status": submission.status.value,
        "error": submission.error,
        "attempts": submission.attempts,
        "updatedAt": submission.updated_at.isoformat(),
    }
    if submission.batch_id is not None:
        payload["batchId"] = to_global_id("Batch", submission.batch_id)
    if result is not None:
        payload.update(result_fields(result))
    return payload


def result_payload(result: Result) -> Payload:
    return {"submissionId": to_global_id("Submission", result.submission_id)} | result_fields(
        result
    )


@dataclass(frozen=True, slots=True)
class SubmissionChange:
    """One submission event whose payload the store may write itself (in bulk, in SQL):
    `submission_payload(submission, result)` under `kind`, then, with `announces_result`,
    the result's RESULT_CREATED. `events_of` is the meaning; a store must write the same."""

    kind: EventType
    submission: Submission
    result: Result | None = None
    announces_result: bool = False

    def __post_init__(self) -> None:
        result = self.result
        if result is not None and (result.submission_id, result.owner_id) != (
            self.submission.id,
            self.submission.owner_id,
        ):
            raise ValueError("a change's result must be its submission's")


def events_of(changes: Sequence[SubmissionChange]) -> list[NewEvent]:
    """The events the changes stand for, in order: each change's, then its result's."""
    told: list[NewEvent] = []
    for change in changes:
        submission, result = change.submission, change.result
        payload = submission_payload(submission, result)
        told.append(NewEvent(change.kind, submission.owner_id, submission.id, payload))
        if change.announces_result and result is not None:
            created = result_payload(result)
            told.append(NewEvent(EventType.RESULT_CREATED, submission.owner_id, result.id, created))
    return told


def asset_payload(asset: Asset) -> Payload:
    return {
        "assetId": to_global_id("Asset", asset.id),
        "status": asset.status.value,
        "updatedAt": asset.updated_at.isoformat(),
    }


def submission_as_of(submission: Submission, payload: Payload) -> Submission:
    """The submission read now, with the state its event recorded (older payloads: as read)."""
    if "updatedAt" not in payload:
        return submission
    return replace(
        submission,
        status=SubmissionStatus(str(payload["status"])),
        error=payload.get("error"),
        attempts=int(payload.get("attempts", submission.attempts)),
        updated_at=datetime.fromisoformat(str(payload["updatedAt"])),
    )


def asset_as_of(asset: Asset, payload: Payload) -> Asset:
    if "updatedAt" not in payload:
        return asset
    return replace(
        asset,
        status=AssetStatus(str(payload["status"])),
        updated_at=datetime.fromisoformat(str(payload["updatedAt"])),
    )
