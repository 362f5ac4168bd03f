"""Small factories that insert rows directly, for tests that need data in PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from persistence import tables

_clock = itertools.count()
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def next_time() -> datetime:
    """Strictly increasing timestamps, so keyset order is creation order."""
    return BASE_TIME + timedelta(milliseconds=next(_clock))


async def insert(engine: AsyncEngine, table: sa.Table, **values: Any) -> UUID:
    values.setdefault("id", uuid.uuid4())
    if "created_at" in table.c:
        values.setdefault("created_at", next_time())
    if "updated_at" in table.c:
        values.setdefault("updated_at", values["created_at"])
    async with engine.begin() as conn:
        await conn.execute(sa.insert(table).values(**values))
    ident: UUID = values["id"]
    return ident


async def make_user(engine: AsyncEngine, email: str | None = None, **values: Any) -> UUID:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    values.setdefault("subject", f"sub-{email}")
    values.setdefault("name", email.split("@")[0])
    return await insert(engine, tables.users, email=email, **values)


async def make_model(engine: AsyncEngine, name: str = "iris", **values: Any) -> UUID:
    values.setdefault("version", "1.0.0")
    values.setdefault("input_schema", {"type": "object"})
    values.setdefault("output_schema", {"type": "object"})
    values.setdefault("runtime", "local")
    return await insert(engine, tables.models, name=name, **values)


async def make_submission(
    engine: AsyncEngine, owner_id: UUID, model_id: UUID, **values: Any
) -> UUID:
    values.setdefault("input", {"x": 1})
    values.setdefault("status", "SUCCEEDED")
    return await insert(engine, tables.submissions, owner_id=owner_id, model_id=model_id, **values)


async def make_result(engine: AsyncEngine, submission_id: UUID, **values: Any) -> UUID:
    values.setdefault("prediction", {"label": "setosa"})
    values.setdefault("confidence", 0.9)
    values.setdefault("alternatives", [{"value": "setosa", "confidence": 0.9}])
    values.setdefault("model_version", "1.0.0")
    values.setdefault("processing_time_ms", 3)
    return await insert(engine, tables.results, submission_id=submission_id, **values)


async def make_asset(engine: AsyncEngine, owner_id: UUID, **values: Any) -> UUID:
    asset_id = values.setdefault("id", uuid.uuid4())
    values.setdefault("file_name", "photo.png")
    values.setdefault("content_type", "image/png")
    values.setdefault("size_bytes", 1024)
    values.setdefault("status", "AVAILABLE")
    values.setdefault("object_key", f"assets/{owner_id}/{asset_id}/{values['file_name']}")
    return await insert(engine, tables.assets, owner_id=owner_id, **values)
