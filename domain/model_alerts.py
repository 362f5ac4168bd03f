"""Alert policies per model and the alerts they raise: once when crossed, once when cleared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.drift import DriftStatus


class AlertKind(StrEnum):
    LATENCY = "LATENCY"
    ERROR_RATE = "ERROR_RATE"
    DRIFT = "DRIFT"
    QUALITY = "QUALITY"


class AlertState(StrEnum):
    RAISED = "RAISED"
    CLEARED = "CLEARED"


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """What is watched for one model; None: not watched."""

    model_id: UUID
    latency_p95_ms: float | None = None
    error_rate: float | None = None
    drift: DriftStatus | None = None
    min_accuracy: float | None = None
    min_r2: float | None = None

    @property
    def is_watching(self) -> bool:
        limits = (self.latency_p95_ms, self.error_rate, self.drift)
        return any(v is not None for v in (*limits, self.min_accuracy, self.min_r2))


@dataclass(frozen=True, slots=True)
class ModelAlert:
    id: UUID
    model_id: UUID
    kind: AlertKind
    state: AlertState
    value: float
    threshold: float
    at: datetime

    @property
    def created_at(self) -> datetime:  # the keyset its list pages on
        return self.at


@dataclass(frozen=True, slots=True)
class Reading:
    """One watched value now: whether it is over its threshold (or under, for quality)."""

    kind: AlertKind
    value: float
    threshold: float
    is_crossed: bool


def changes(
    readings: list[Reading], latest: dict[AlertKind, ModelAlert]
) -> list[tuple[Reading, AlertState]]:
    """The alerts to record: a crossed reading whose kind is not RAISED yet, and a reading
    back within bounds whose kind is RAISED. Anything else records nothing (no storm)."""
    found = []
    for reading in readings:
        last = latest.get(reading.kind)
        is_raised = last is not None and last.state is AlertState.RAISED
        if reading.is_crossed and not is_raised:
            found.append((reading, AlertState.RAISED))
        elif not reading.is_crossed and is_raised:
            found.append((reading, AlertState.CLEARED))
    return found
