"""Feedback on results, and the sums model quality is computed from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.models import JSONValue
from domain.quality import ClassCount, Feedback, ValueErrors
from persistence.batching import any_of
from persistence.tables import result_feedback

_f = result_feedback.c


def _window(model_id: UUID, start: datetime, end: datetime) -> list[sa.ColumnElement[bool]]:
    return [_f.model_id == model_id, _f.result_created_at >= start, _f.result_created_at < end]


class SqlFeedbackRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(self, feedback: Feedback) -> None:
        values = {
            "result_id": feedback.result_id,
            "model_id": feedback.model_id,
            "label": feedback.label,
            "predicted_class": feedback.predicted_class,
            "true_class": feedback.true_class,
            "predicted_value": feedback.predicted_value,
            "true_value": feedback.true_value,
            "result_created_at": feedback.result_created_at,
            "recorded_at": feedback.recorded_at,
        }
        fresh = insert(result_feedback).values(values)
        changed = ("label", "true_class", "true_value", "recorded_at")
        statement = fresh.on_conflict_do_update(
            index_elements=[_f.result_id], set_={name: fresh.excluded[name] for name in changed}
        )
        await self._conn.execute(statement)

    async def labels_for(self, result_ids: Sequence[UUID]) -> list[JSONValue | None]:
        if not result_ids:
            return []
        statement = sa.select(_f.result_id, _f.label).where(any_of(_f.result_id, result_ids))
        found = {row.result_id: row.label for row in await self._conn.execute(statement)}
        return [found.get(i) for i in result_ids]

    async def class_counts(
        self, model_id: UUID, start: datetime, end: datetime
    ) -> list[ClassCount]:
        statement = (
            sa.select(_f.predicted_class, _f.true_class, sa.func.count())
            .where(*_window(model_id, start, end), _f.true_class.is_not(None))
            .group_by(_f.predicted_class, _f.true_class)
        )
        rows = await self._conn.execute(statement)
        return [ClassCount(str(p), str(t), int(n)) for p, t, n in rows]

    async def value_errors(self, model_id: UUID, start: datetime, end: datetime) -> ValueErrors:
        error = _f.predicted_value - _f.true_value
        statement = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.func.abs(error)), 0.0),
            sa.func.coalesce(sa.func.sum(error * error), 0.0),
            sa.func.coalesce(sa.func.sum(_f.true_value), 0.0),
            sa.func.coalesce(sa.func.sum(_f.true_value * _f.true_value), 0.0),
        ).where(*_window(model_id, start, end), error.is_not(None))
        count, absolute, squared, true_sum, true_squared = (
            await self._conn.execute(statement)
        ).one()
        return ValueErrors(
            int(count), float(absolute), float(squared), float(true_sum), float(true_squared)
        )
