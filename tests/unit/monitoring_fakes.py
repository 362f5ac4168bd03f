"""In-memory fakes of model monitoring's ports, over FakeData (tests/unit/fakes.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from domain.model_alerts import AlertKind, AlertPolicy, ModelAlert
from domain.models import JSONValue
from domain.monitoring import Profile, Tally, add_counts
from domain.pagination import Page, PageRequest, keyset_of
from domain.quality import ClassCount, Feedback, ValueErrors

if TYPE_CHECKING:
    from tests.unit.fakes import FakeData


class FakeMonitoringRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def add_tally(self, tally: Tally) -> None:
        key = (tally.model_id, tally.minute)
        old = self._data.tallies.get(key)
        if old is not None:
            tally = Tally(
                tally.model_id,
                tally.minute,
                old.predictions + tally.predictions,
                old.failures + tally.failures,
                add_counts(old.model_ms, tally.model_ms),
                add_counts(old.end_to_end_ms, tally.end_to_end_ms),
                add_counts(old.output, tally.output),
                add_counts(old.features, tally.features),
            )
        self._data.tallies[key] = tally

    async def tallies(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        found = [
            t for (m, at), t in self._data.tallies.items() if m == model_id and start <= at < end
        ]
        return sorted(found, key=lambda t: t.minute)

    async def window_rows(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        return await self.tallies(model_id, start, end)  # minute rows add up the same

    async def earliest(self, model_id: UUID, limit: int) -> list[Tally]:
        found = [t for (m, _), t in self._data.tallies.items() if m == model_id]
        return sorted(found, key=lambda t: t.minute)[:limit]

    async def get_profile(self, model_id: UUID) -> Profile | None:
        return self._data.profiles.get(model_id)

    async def save_profile(self, model_id: UUID, profile: Profile, now: datetime) -> None:
        self._data.profiles.setdefault(model_id, profile)

    async def prune(self, before: datetime) -> int:
        gone = [key for key in self._data.tallies if key[1] < before]
        for key in gone:
            del self._data.tallies[key]
        return len(gone)


class FakeFeedbackRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def record(self, feedback: Feedback) -> None:
        self._data.feedback[feedback.result_id] = feedback

    async def labels_for(self, result_ids: Sequence[UUID]) -> list[JSONValue | None]:
        found = [self._data.feedback.get(i) for i in result_ids]
        return [None if f is None else f.label for f in found]

    def _window(self, model_id: UUID, start: datetime, end: datetime) -> list[Feedback]:
        return [
            f
            for f in self._data.feedback.values()
            if f.model_id == model_id and start <= f.result_created_at < end
        ]

    async def class_counts(
        self, model_id: UUID, start: datetime, end: datetime
    ) -> list[ClassCount]:
        counts: dict[tuple[str, str], int] = {}
        for f in self._window(model_id, start, end):
            if f.true_class is not None:
                key = (str(f.predicted_class), f.true_class)
                counts[key] = counts.get(key, 0) + 1
        return [ClassCount(p, t, n) for (p, t), n in counts.items()]

    async def value_errors(self, model_id: UUID, start: datetime, end: datetime) -> ValueErrors:
        pairs = [
            (f.predicted_value, f.true_value)
            for f in self._window(model_id, start, end)
            if f.predicted_value is not None and f.true_value is not None
        ]
        return ValueErrors(
            len(pairs),
            sum(abs(p - t) for p, t in pairs),
            sum((p - t) ** 2 for p, t in pairs),
            sum(t for _, t in pairs),
            sum(t * t for _, t in pairs),
        )


class FakeModelAlertRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def policies_for(self, model_ids: Sequence[UUID]) -> list[AlertPolicy | None]:
        return [self._data.policies.get(i) for i in model_ids]

    async def watched(self) -> list[AlertPolicy]:
        return [p for p in self._data.policies.values() if p.is_watching]

    async def save_policy(self, policy: AlertPolicy, now: datetime) -> None:
        self._data.policies[policy.model_id] = policy

    async def add(self, alerts: Sequence[ModelAlert]) -> None:
        self._data.alerts.extend(alerts)

    async def latest(self, model_id: UUID) -> dict[AlertKind, ModelAlert]:
        latest: dict[AlertKind, ModelAlert] = {}
        for alert in sorted(self._data.alerts, key=keyset_of):
            if alert.model_id == model_id:
                latest[alert.kind] = alert
        return latest

    async def get_many(self, ids: Sequence[UUID]) -> list[ModelAlert | None]:
        by_id = {a.id: a for a in self._data.alerts}
        return [by_id.get(i) for i in ids]

    def _of(self, model_id: UUID | None) -> list[ModelAlert]:
        return [a for a in self._data.alerts if model_id is None or a.model_id == model_id]

    async def page(self, model_id: UUID | None, request: PageRequest) -> Page[ModelAlert]:
        ordered = sorted(self._of(model_id), key=keyset_of, reverse=True)
        if request.after is not None:
            after = request.after
            ordered = [a for a in ordered if keyset_of(a) < after]
        return Page.from_overfetch(ordered[: request.first + 1], request)

    async def count(self, model_id: UUID | None) -> int:
        return len(self._of(model_id))

    async def admin_ids(self, admin_group: str) -> list[UUID]:
        return [u.id for u in self._data.users.values() if u.is_active and admin_group in u.groups]
