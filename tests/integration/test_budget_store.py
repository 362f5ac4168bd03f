"""The shared budget store on a real PostgreSQL: atomic refill-and-charge, from many processes."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.ports import BudgetCharge
from persistence.budgets import SqlBudgetStore
from persistence.database import create_engine


def charge(
    key: str, spent: float, *, bucket: str = "points", per_second: float = 10.0
) -> BudgetCharge:
    return BudgetCharge(bucket, key, spent, per_second=per_second, burst=100.0)


def new_key() -> str:
    return f"user:{uuid.uuid4()}"


async def age(engine: AsyncEngine, key: str, seconds: float) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "UPDATE rate_limit_buckets SET updated_at = updated_at - make_interval(secs => :s)"
                " WHERE key = :key"
            ),
            {"s": seconds, "key": key},
        )


async def test_a_bucket_never_seen_is_full_before_its_first_charge(engine: AsyncEngine) -> None:
    store = SqlBudgetStore(engine)
    first, second = new_key(), new_key()

    levels = await store.settle(
        [charge(first, 10), charge(second, 1), charge(first, 2, bucket="inference")]
    )

    assert levels == [90, 99, 98]


async def test_a_bucket_refills_at_its_rate_up_to_its_burst(engine: AsyncEngine) -> None:
    store = SqlBudgetStore(engine)
    key = new_key()
    await store.settle([charge(key, 100)])

    await age(engine, key, 3)
    assert (await store.settle([charge(key, 0)]))[0] == pytest.approx(30, abs=0.5)
    await age(engine, key, 60)
    assert (await store.settle([charge(key, 5)]))[0] == pytest.approx(95)


async def test_spending_goes_into_debt_and_refunds_come_back(engine: AsyncEngine) -> None:
    store = SqlBudgetStore(engine)
    key = new_key()

    assert (await store.settle([charge(key, 150)]))[0] == pytest.approx(-50, abs=0.5)
    assert (await store.settle([charge(key, -500)]))[0] == 100


async def test_concurrent_settles_from_several_processes_lose_no_charge(
    postgres_url: str,
) -> None:
    engines = [create_engine(postgres_url, pool_size=2) for _ in range(3)]
    stores = [SqlBudgetStore(engine) for engine in engines]
    keys = [new_key() for _ in range(5)]
    try:
        # Each settle charges every key, in a different order: no deadlock, nothing lost.
        await asyncio.gather(
            *(
                store.settle(
                    [charge(key, 1, per_second=1e-6) for key in (keys if i % 2 else keys[::-1])]
                )
                for i in range(10)
                for store in stores
            )
        )
        levels = await stores[0].settle([charge(key, 0, per_second=1e-6) for key in keys])
    finally:
        for engine in engines:
            await engine.dispose()

    assert levels == pytest.approx([70] * len(keys), abs=0.01)  # 30 charged per key


async def test_buckets_full_again_are_forgotten(engine: AsyncEngine) -> None:
    store = SqlBudgetStore(engine)
    full, spent = new_key(), new_key()
    await store.settle([charge(full, 10), charge(spent, 100)])
    await age(engine, full, 62)
    await age(engine, spent, 62)

    await store.forget_full()

    async with engine.connect() as connection:
        left = set(
            (await connection.execute(sa.text("SELECT key FROM rate_limit_buckets"))).scalars()
        )
    assert full not in left
    assert spent in left
