"""Ports of model monitoring: its rollups and profiles, feedback, and alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from domain.model_alerts import AlertKind, AlertPolicy, ModelAlert
from domain.models import JSONValue
from domain.monitoring import Profile, Tally
from domain.pagination import Page, PageRequest
from domain.quality import ClassCount, Feedback, ValueErrors


class MonitoringRepository(Protocol):
    async def add_tally(self, tally: Tally) -> None:
        """Add to the model's row of the tally's minute in one statement (an upsert)."""
        ...

    async def tallies(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        """The model's minute rows with start <= minute < end, oldest first."""
        ...

    async def window_rows(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        """Rows that add up to the minutes in [start, end) (minute-aligned), each within one
        hour and dated at its start, oldest first: whole hours as one row each, so a day
        takes at most 24 + 2 x 59 rows."""
        ...

    async def earliest(self, model_id: UUID, limit: int) -> list[Tally]: ...
    async def get_profile(self, model_id: UUID) -> Profile | None: ...
    async def save_profile(self, model_id: UUID, profile: Profile, now: datetime) -> None:
        """Keep the first profile saved; a later one for the same model changes nothing."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete every row of a minute before `before`; how many went."""
        ...


class FeedbackRepository(Protocol):
    async def record(self, feedback: Feedback) -> None:
        """Insert, or replace the result's earlier feedback."""
        ...

    async def labels_for(self, result_ids: Sequence[UUID]) -> list[JSONValue | None]: ...
    async def class_counts(
        self, model_id: UUID, start: datetime, end: datetime
    ) -> list[ClassCount]: ...
    async def value_errors(self, model_id: UUID, start: datetime, end: datetime) -> ValueErrors: ...


class ModelAlertRepository(Protocol):
    async def policies_for(self, model_ids: Sequence[UUID]) -> list[AlertPolicy | None]: ...
    async def watched(self) -> list[AlertPolicy]:
        """Every policy that watches something."""
        ...

    async def save_policy(self, policy: AlertPolicy, now: datetime) -> None: ...
    async def add(self, alerts: Sequence[ModelAlert]) -> None: ...
    async def latest(self, model_id: UUID) -> dict[AlertKind, ModelAlert]:
        """The newest alert of each kind for the model; the model's alerts stay locked for
        the rest of the transaction, so concurrent checkers record each change once."""
        ...

    async def get_many(self, ids: Sequence[UUID]) -> list[ModelAlert | None]: ...
    async def page(self, model_id: UUID | None, request: PageRequest) -> Page[ModelAlert]:
        """Newest first."""
        ...

    async def count(self, model_id: UUID | None) -> int: ...
    async def admin_ids(self, admin_group: str) -> list[UUID]:
        """The active users in the administrators' group, who are told of alerts."""
        ...
