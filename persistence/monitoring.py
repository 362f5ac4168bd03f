"""Model monitoring's rollups and reference profiles."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.monitoring import Profile, Tally
from persistence.batching import Row
from persistence.tables import model_profiles, model_stats

_ARRAYS = ("model_ms", "end_to_end_ms", "output", "features")
_COLUMNS = (
    model_stats.c.model_id,
    model_stats.c.minute,
    model_stats.c.predictions,
    model_stats.c.failures,
    *(model_stats.c[name] for name in _ARRAYS),
)


def _tally_upsert() -> sa.Executable:
    fresh = insert(model_stats)
    old, new = model_stats.c, fresh.excluded
    added = {name: sa.func.assay_add_counts(old[name], new[name]) for name in _ARRAYS}
    return fresh.on_conflict_do_update(
        index_elements=[old.model_id, old.minute],
        set_={
            "predictions": old.predictions + new.predictions,
            "failures": old.failures + new.failures,
            **added,
        },
    )


_ADD_TALLY = _tally_upsert()
_IN_WINDOW = (
    sa.select(*_COLUMNS)
    .where(
        model_stats.c.model_id == sa.bindparam("model_id", type_=sa.Uuid),
        model_stats.c.minute >= sa.bindparam("start", type_=sa.DateTime(timezone=True)),
        model_stats.c.minute < sa.bindparam("end", type_=sa.DateTime(timezone=True)),
    )
    .order_by(model_stats.c.minute)
)


def _tally(row: Row) -> Tally:
    model_id, minute, predictions, failures, model_ms, end_to_end, output, features = row
    return Tally(
        model_id,
        minute,
        predictions,
        failures,
        tuple(model_ms),
        tuple(end_to_end),
        tuple(output),
        tuple(features),
    )


class SqlMonitoringRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_tally(self, tally: Tally) -> None:
        values = {
            "model_id": tally.model_id,
            "minute": tally.minute,
            "predictions": tally.predictions,
            "failures": tally.failures,
            "model_ms": list(tally.model_ms),
            "end_to_end_ms": list(tally.end_to_end_ms),
            "output": list(tally.output),
            "features": list(tally.features),
        }
        await self._conn.execute(_ADD_TALLY, values)

    async def tallies(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        values = {"model_id": model_id, "start": start, "end": end}
        return [_tally(row) for row in await self._conn.execute(_IN_WINDOW, values)]

    async def earliest(self, model_id: UUID, limit: int) -> list[Tally]:
        statement = (
            sa.select(*_COLUMNS)
            .where(model_stats.c.model_id == model_id)
            .order_by(model_stats.c.minute)
            .limit(limit)
        )
        return [_tally(row) for row in await self._conn.execute(statement)]

    async def get_profile(self, model_id: UUID) -> Profile | None:
        statement = sa.select(model_profiles.c.features, model_profiles.c.output).where(
            model_profiles.c.model_id == model_id
        )
        row = (await self._conn.execute(statement)).first()
        if row is None:
            return None
        features = {name: tuple(counts) for name, counts in row.features.items()}
        return Profile(features, tuple(row.output), "predictions")

    async def save_profile(self, model_id: UUID, profile: Profile, now: datetime) -> None:
        statement = (
            insert(model_profiles)
            .values(
                model_id=model_id,
                features={name: list(counts) for name, counts in profile.features.items()},
                output=list(profile.output),
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=[model_profiles.c.model_id])
        )
        await self._conn.execute(statement)

    async def prune(self, before: datetime) -> int:
        result = await self._conn.execute(
            sa.delete(model_stats).where(model_stats.c.minute < before)
        )
        return int(result.rowcount)
