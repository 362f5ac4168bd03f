"""The models repository."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.models import Model, ModelDefinition
from persistence.batching import Row, any_of, rows_in_key_order
from persistence.tables import models


def _model(row: Row) -> Model:
    m = row._mapping
    return Model(
        id=m["id"],
        name=m["name"],
        version=m["version"],
        description=m["description"],
        input_schema=m["input_schema"],
        output_schema=m["output_schema"],
        runtime=m["runtime"],
        runtime_config=m["runtime_config"],
        is_active=m["is_active"],
        created_at=m["created_at"],
    )


class SqlModelRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_many(self, ids: Sequence[UUID]) -> list[Model | None]:
        statement = sa.select(models).where(any_of(models.c.id, ids))
        return await rows_in_key_order(self._conn, statement, ids, _model)

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
        ).returning(*models.c)
        return [_model(row) for row in await self._conn.execute(statement)]

    async def list_active(self) -> list[Model]:
        statement = (
            sa.select(models)
            .where(models.c.is_active)
            .order_by(models.c.name, models.c.created_at, models.c.id)
        )
        return [_model(row) for row in await self._conn.execute(statement)]
