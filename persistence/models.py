"""The models repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.batches import KEEP_PER_CHUNK
from domain.models import Model, ModelDefinition
from domain.monitoring import Tally
from persistence.batching import Row, any_key, rows_for_keys
from persistence.driver import reusable
from persistence.monitoring import tally_upsert, tally_values
from persistence.tables import model_timings, models

# The columns _model reads, in the order it unpacks them.
_COLUMNS = (
    models.c.id,
    models.c.name,
    models.c.version,
    models.c.description,
    models.c.input_schema,
    models.c.output_schema,
    models.c.runtime,
    models.c.runtime_config,
    models.c.is_active,
    models.c.created_at,
    models.c.updated_at,
)


def _model(row: Row) -> Model:
    (
        id_,
        name,
        version,
        description,
        input_schema,
        output_schema,
        runtime,
        runtime_config,
        is_active,
        created_at,
        updated_at,
    ) = row
    return Model(
        id=id_,
        name=name,
        version=version,
        description=description,
        input_schema=input_schema,
        output_schema=output_schema,
        runtime=runtime,
        runtime_config=runtime_config,
        is_active=is_active,
        created_at=created_at,
        updated_at=updated_at,
    )


_by_id = reusable(sa.select(*_COLUMNS).where(any_key(models.c.id)))


def _timings_upsert() -> sa.Insert:
    """WorkTimings.add in one statement: the first chunk inserts the row, later ones decay
    the sums and add theirs (values bound as model_id, rows, seconds, now)."""
    rows = sa.bindparam("rows", type_=sa.Float)
    seconds = sa.bindparam("seconds", type_=sa.Float)
    fresh = insert(model_timings).values(
        model_id=sa.bindparam("model_id", type_=sa.Uuid),
        chunks=1.0,
        rows=rows,
        seconds=seconds,
        rows_squared=rows * rows,
        rows_seconds=rows * seconds,
        largest_chunk=sa.cast(rows, sa.Integer),
        updated_at=sa.bindparam("now", type_=sa.DateTime(timezone=True)),
    )
    old, new, keep = model_timings.c, fresh.excluded, KEEP_PER_CHUNK
    return fresh.on_conflict_do_update(
        index_elements=[model_timings.c.model_id],
        set_={
            "chunks": old.chunks * keep + new.chunks,
            "rows": old.rows * keep + new.rows,
            "seconds": old.seconds * keep + new.seconds,
            "rows_squared": old.rows_squared * keep + new.rows_squared,
            "rows_seconds": old.rows_seconds * keep + new.rows_seconds,
            "largest_chunk": sa.func.greatest(old.largest_chunk, new.largest_chunk),
            "updated_at": new.updated_at,
        },
    )


_record_work = _timings_upsert()
# The chunk's statistics in the same statement: one round trip, not two.
_record_work_and_tally = _record_work.add_cte(tally_upsert().cte("tally_counted"))


class SqlModelRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_many(self, ids: Sequence[UUID]) -> list[Model | None]:
        return await rows_for_keys(self._conn, _by_id, ids, _model)

    async def register(self, definitions: Sequence[ModelDefinition]) -> list[Model]:
        if not definitions:
            return []
        rows = [
            {
                "name": d.name,
                "version": d.version,
                "description": d.description,
                "input_schema": d.input_schema,
                "output_schema": d.output_schema,
                "runtime": d.runtime,
                "runtime_config": d.runtime_config,
            }
            for d in definitions
        ]
        upsert = insert(models).values(rows)
        statement = upsert.on_conflict_do_update(
            index_elements=[models.c.name, models.c.version],
            set_={
                "description": upsert.excluded.description,
                "input_schema": upsert.excluded.input_schema,
                "output_schema": upsert.excluded.output_schema,
                "runtime": upsert.excluded.runtime,
                "runtime_config": upsert.excluded.runtime_config,
                "is_active": True,
                "updated_at": sa.func.now(),
            },
        ).returning(*_COLUMNS)
        return [_model(row) for row in await self._conn.execute(statement)]

    async def record_work(
        self,
        model_id: UUID,
        rows: int,
        took: timedelta,
        now: datetime,
        *,
        tally: Tally | None = None,
    ) -> None:
        values = {"model_id": model_id, "rows": rows, "seconds": took.total_seconds(), "now": now}
        if tally is None:
            await self._conn.execute(_record_work, values)
        else:
            await self._conn.execute(_record_work_and_tally, values | tally_values(tally))

    async def list_active(self) -> list[Model]:
        statement = (
            sa.select(*_COLUMNS)
            .where(models.c.is_active)
            .order_by(models.c.name, models.c.created_at, models.c.id)
        )
        return [_model(row) for row in await self._conn.execute(statement)]
