"""Model monitoring's rollups and reference profiles."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.monitoring import HOUR, MINUTE, Profile, Tally, hour_of, merged
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


# Rows of one minute (or hour) per model, written round robin: a process's two writers
# (two runInference groups in flight, or two queue workers) lock different rows. Reads sum them.
SHARDS = 2
_next_shard = itertools.count(random.randrange(SHARDS))  # noqa: S311 - spreading, not security

# The minute's row and the hour's in one statement, in PostgreSQL's own $n form: run through
# exec_driver_sql it skips SQLAlchemy's compilation and cache key, which cost about 2 ms a
# call on this two-row, array-valued upsert (measured: 2.7-3.5 ms against 0.6 ms).
_ADD_TALLY = """
INSERT INTO model_stats AS old
  (model_id, span, minute, shard, predictions, failures, model_ms, end_to_end_ms, output,
   features)
VALUES ($1, 60, $2, $10, $4, $5, $6::text::bigint[], $7::text::bigint[], $8::text::bigint[],
        $9::text::bigint[]),
       ($1, 3600, $3, $10, $4, $5, $6::text::bigint[], $7::text::bigint[], $8::text::bigint[],
        $9::text::bigint[])
ON CONFLICT (model_id, span, minute, shard) DO UPDATE SET
  predictions = old.predictions + excluded.predictions,
  failures = old.failures + excluded.failures,
  model_ms = assay_add_counts(old.model_ms, excluded.model_ms),
  end_to_end_ms = assay_add_counts(old.end_to_end_ms, excluded.end_to_end_ms),
  output = assay_add_counts(old.output, excluded.output),
  features = assay_add_counts(old.features, excluded.features)
"""
_when = sa.DateTime(timezone=True)


def tally_upsert(counted_if: sa.ColumnElement[bool] | None = None) -> sa.Insert:
    """_ADD_TALLY as a statement to put in another's WITH (the group's write, the chunk's
    timings), its values bound as s_<name> (see tally_values); with `counted_if`, it adds
    nothing unless that holds when the statement runs."""
    counts = postgresql.ARRAY(sa.BigInteger)
    values = [
        sa.bindparam("s_model_id", type_=sa.Uuid),
        sa.bindparam("s_shard", type_=sa.SmallInteger),
        sa.bindparam("s_predictions", type_=sa.BigInteger),
        sa.bindparam("s_failures", type_=sa.BigInteger),
        *(sa.cast(sa.bindparam(f"s_{name}", type_=sa.Text), counts) for name in _ARRAYS),
    ]
    spans = []
    for span, start in ((MINUTE, "s_minute"), (HOUR, "s_hour")):
        row = sa.select(
            values[0], sa.literal_column(str(span)), sa.bindparam(start, type_=_when), *values[1:]
        )
        spans.append(row if counted_if is None else row.where(counted_if))
    names = ["model_id", "span", "minute", "shard", "predictions", "failures", *_ARRAYS]
    fresh = insert(model_stats).from_select(names, sa.union_all(*spans))
    old, new = model_stats.c, fresh.excluded
    return fresh.on_conflict_do_update(
        index_elements=[old.model_id, old.span, old.minute, old.shard],
        set_={
            "predictions": old.predictions + new.predictions,
            "failures": old.failures + new.failures,
            **{
                name: sa.func.assay_add_counts(old[name], new[name], type_=counts)
                for name in _ARRAYS
            },
        },
    )


def tally_values(tally: Tally) -> dict[str, object]:
    """The bound values of tally_upsert, on the next shard."""
    return {
        "s_model_id": tally.model_id,
        "s_minute": tally.minute,
        "s_hour": hour_of(tally.minute),
        "s_shard": next(_next_shard) % SHARDS,
        "s_predictions": tally.predictions,
        "s_failures": tally.failures,
        "s_model_ms": counts_text(tally.model_ms),
        "s_end_to_end_ms": counts_text(tally.end_to_end_ms),
        "s_output": counts_text(tally.output),
        "s_features": counts_text(tally.features),
    }


def counts_text(counts: Sequence[int]) -> str:
    """A count array as PostgreSQL's text form, which the statements cast to bigint[]: as a
    list, asyncpg checks each of a tally's ~170 counts for nesting through collections.abc
    (the upsert alone, 1,000 calls: 167-179 -> 133-139 us of the caller's CPU a call)."""
    return "{" + ",".join(map(str, counts)) + "}"


_MINUTES = (
    sa.select(*_COLUMNS)
    .where(
        model_stats.c.model_id == sa.bindparam("model_id", type_=sa.Uuid),
        model_stats.c.span == MINUTE,
        model_stats.c.minute >= sa.bindparam("start", type_=_when),
        model_stats.c.minute < sa.bindparam("end", type_=_when),
    )
    .order_by(model_stats.c.minute)
)
_minute = model_stats.c.minute
_WINDOW = (
    sa.select(*_COLUMNS)
    .where(
        model_stats.c.model_id == sa.bindparam("model_id", type_=sa.Uuid),
        sa.or_(
            sa.and_(
                model_stats.c.span == HOUR,
                _minute >= sa.bindparam("hours_from", type_=_when),
                _minute < sa.bindparam("hours_to", type_=_when),
            ),
            sa.and_(
                model_stats.c.span == MINUTE,
                sa.or_(
                    sa.and_(
                        _minute >= sa.bindparam("start", type_=_when),
                        _minute < sa.bindparam("hours_from", type_=_when),
                    ),
                    sa.and_(
                        _minute >= sa.bindparam("hours_to", type_=_when),
                        _minute < sa.bindparam("end", type_=_when),
                    ),
                ),
            ),
        ),
    )
    .order_by(model_stats.c.minute)
)


def _hours_within(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole hours inside [start, end) (both minute-aligned), as [from, to)."""
    first = hour_of(start) if start == hour_of(start) else hour_of(start) + timedelta(hours=1)
    last = hour_of(end)
    return (first, last) if first < last else (end, end)


def _by_minute(model_id: UUID, rows: list[Tally]) -> list[Tally]:
    """One tally per minute from the shards' rows (ordered by minute)."""
    grouped: dict[datetime, list[Tally]] = {}
    for row in rows:
        grouped.setdefault(row.minute, []).append(row)
    return [
        parts[0] if len(parts) == 1 else merged(model_id, minute, parts)
        for minute, parts in grouped.items()
    ]


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
        arguments = (
            tally.model_id,
            tally.minute,
            hour_of(tally.minute),
            tally.predictions,
            tally.failures,
            counts_text(tally.model_ms),
            counts_text(tally.end_to_end_ms),
            counts_text(tally.output),
            counts_text(tally.features),
            next(_next_shard) % SHARDS,
        )
        await self._conn.exec_driver_sql(_ADD_TALLY, arguments)

    async def tallies(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        values = {"model_id": model_id, "start": start, "end": end}
        return _by_minute(
            model_id, [_tally(row) for row in await self._conn.execute(_MINUTES, values)]
        )

    async def window_rows(self, model_id: UUID, start: datetime, end: datetime) -> list[Tally]:
        hours_from, hours_to = _hours_within(start, end)
        values = {
            "model_id": model_id,
            "start": start,
            "end": end,
            "hours_from": hours_from,
            "hours_to": hours_to,
        }
        return [_tally(row) for row in await self._conn.execute(_WINDOW, values)]

    async def earliest(self, model_id: UUID, limit: int) -> list[Tally]:
        mine = [model_stats.c.model_id == model_id, model_stats.c.span == MINUTE]
        first_minutes = (
            sa.select(model_stats.c.minute)
            .where(*mine)
            .distinct()
            .order_by(model_stats.c.minute)
            .limit(limit)
        )
        statement = (
            sa.select(*_COLUMNS)
            .where(*mine, model_stats.c.minute.in_(first_minutes.scalar_subquery()))
            .order_by(model_stats.c.minute)
        )
        rows = await self._conn.execute(statement)
        return _by_minute(model_id, [_tally(row) for row in rows])

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
        # An hour's row goes once the whole hour is before `before`, with its last minute.
        hour_ended = before - timedelta(hours=1)
        expired = sa.or_(
            sa.and_(model_stats.c.span == MINUTE, model_stats.c.minute < before),
            sa.and_(model_stats.c.span == HOUR, model_stats.c.minute <= hour_ended),
        )
        result = await self._conn.execute(sa.delete(model_stats).where(expired))
        return int(result.rowcount)
