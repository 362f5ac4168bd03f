"""The callers' shared token buckets in PostgreSQL: the default store for one budget per caller
across the server processes on one database (the embedded one locally)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.ports import BudgetCharge

# One statement settles a batch: each row refills since its last charge, then pays `spent`.
# The inserted row carries burst - spent as `tokens`, so DO UPDATE reads the charge back as
# excluded.burst - excluded.tokens. Rows go in key order, so concurrent settles from several
# processes lock them in one order and never deadlock.
_SETTLE = sa.text(
    """
    INSERT INTO rate_limit_buckets AS b (bucket, key, tokens, per_second, burst, updated_at)
    SELECT c.bucket, c.key, c.burst - c.spent, c.per_second, c.burst, clock_timestamp()
    FROM unnest(:buckets, :keys, :spent, :per_second, :burst)
        AS c(bucket, key, spent, per_second, burst)
    ORDER BY c.bucket, c.key
    ON CONFLICT (bucket, key) DO UPDATE SET
        tokens = least(
            excluded.burst,
            least(
                excluded.burst,
                b.tokens + greatest(
                    0, extract(epoch FROM excluded.updated_at - b.updated_at)::float8
                ) * excluded.per_second
            ) - (excluded.burst - excluded.tokens)
        ),
        per_second = excluded.per_second,
        burst = excluded.burst,
        updated_at = excluded.updated_at
    RETURNING b.bucket, b.key, b.tokens
    """
).bindparams(
    sa.bindparam("buckets", type_=postgresql.ARRAY(sa.Text())),
    sa.bindparam("keys", type_=postgresql.ARRAY(sa.Text())),
    sa.bindparam("spent", type_=postgresql.ARRAY(sa.Float())),
    sa.bindparam("per_second", type_=postgresql.ARRAY(sa.Float())),
    sa.bindparam("burst", type_=postgresql.ARRAY(sa.Float())),
)

# A bucket full again is the same as no row: forget those a minute after they filled.
_FORGET_FULL = sa.text(
    """
    DELETE FROM rate_limit_buckets
    WHERE updated_at + make_interval(secs => (burst - tokens) / per_second + 60) < now()
    """
)
FORGET_EVERY_SECONDS = 300.0


class SqlBudgetStore:
    """BudgetStore on the application's database: one statement per settle, whatever the
    number of callers in it. Give it an engine of its own (one connection): settles then
    never wait for, nor count among, the requests' statements. `close` disposes of it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._forgot_at = time.monotonic()

    async def settle(self, charges: Sequence[BudgetCharge]) -> list[float]:
        params = {
            "buckets": [c.bucket for c in charges],
            "keys": [c.key for c in charges],
            "spent": [c.spent for c in charges],
            "per_second": [c.per_second for c in charges],
            "burst": [c.burst for c in charges],
        }
        async with self._engine.begin() as connection:
            rows = (await connection.execute(_SETTLE, params)).all()
        levels = {(bucket, key): float(tokens) for bucket, key, tokens in rows}
        if time.monotonic() - self._forgot_at > FORGET_EVERY_SECONDS:
            await self.forget_full()
        return [levels[(c.bucket, c.key)] for c in charges]

    async def forget_full(self) -> None:
        self._forgot_at = time.monotonic()
        async with self._engine.begin() as connection:
            await connection.execute(_FORGET_FULL)

    async def close(self) -> None:
        await self._engine.dispose()
