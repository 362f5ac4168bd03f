"""Shared budgets: processes spend from local mirrors and settle with a store behind the port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from domain.ports import BudgetCharge
from graph.protection.rate_limit import RateLimiter, RateLimitPolicy
from graph.protection.shared_budget import (
    SETTLE_WAIT_SECONDS,
    BudgetSettler,
    shared_buckets_factory,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeBudgetStore:
    """The port's contract in memory: refill since the last charge, then take."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self.calls = 0
        self.is_down = False
        self.closed = False
        self.answered = asyncio.Event()

    async def settle(self, charges: Sequence[BudgetCharge]) -> list[float]:
        self.calls += 1
        if self.is_down:
            raise ConnectionError("connection refused")
        levels = []
        for c in charges:
            level, at = self.buckets.get((c.bucket, c.key), (c.burst, self.clock()))
            refilled = min(c.burst, level + (self.clock() - at) * c.per_second)
            level = min(c.burst, refilled - c.spent)
            self.buckets[(c.bucket, c.key)] = (level, self.clock())
            levels.append(level)
        self.answered.set()
        return levels

    async def close(self) -> None:
        self.closed = True


POLICY = RateLimitPolicy(
    points_per_second=1.0, burst=100.0, inference_per_second=1.0, inference_burst=10.0
)


def process(
    store: FakeBudgetStore, clock: FakeClock, lease: float = 0.1
) -> tuple[RateLimiter, BudgetSettler]:
    settler = BudgetSettler(store, store_name="fake")
    buckets = shared_buckets_factory(settler, lease, clock)
    return RateLimiter(POLICY, clock, buckets, settler.settled_waiter()), settler


def spend_until_refused(limiter: RateLimiter, key: str = "user:a") -> int:
    granted = 0
    while limiter.acquire(key, 1) == 0:
        granted += 1
    return granted


async def test_a_request_inside_the_lease_never_calls_the_store() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, _ = process(store, clock)

    assert limiter.acquire("user:a", 3) == 0
    assert limiter.acquire("user:a", 3, inference_requests=1) == 0

    assert store.calls == 0


async def test_spending_past_the_lease_waits_for_a_settle() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)  # a lease of 10 points

    assert spend_until_refused(limiter) == 10
    assert limiter.wait("user:a", 1) == SETTLE_WAIT_SECONDS
    await settler.settle()

    assert store.buckets[("points", "user:a")][0] == 90
    assert spend_until_refused(limiter) == 10


async def test_one_operation_larger_than_the_lease_passes_when_nothing_is_unsettled() -> None:
    clock = FakeClock()
    limiter, _ = process(FakeBudgetStore(clock), clock)

    assert limiter.acquire("user:a", 50) == 0
    assert limiter.wait("user:a", 1) == SETTLE_WAIT_SECONDS


async def test_two_processes_share_one_budget_within_a_lease_each() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    first, first_settler = process(store, clock)
    second, second_settler = process(store, clock)

    granted = 0
    for _ in range(40):
        granted += spend_until_refused(first) + spend_until_refused(second)
        await first_settler.settle()
        await second_settler.settle()

    assert 100 <= granted <= 100 + 2 * 10  # the burst, plus at most one lease per process
    assert store.buckets[("points", "user:a")][0] <= 0


async def test_a_process_learns_what_another_spent_at_its_next_settle() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    first, first_settler = process(store, clock, lease=1.0)
    second, second_settler = process(store, clock, lease=1.0)

    first.acquire("user:a", 60)
    await first_settler.settle()
    second.acquire("user:a", 1)
    await second_settler.settle()

    assert second.points.available("user:a") == pytest.approx(39)
    assert second.state_header("user:a").startswith('"points";r=39;t=61')


async def test_refunds_settle_as_negative_spending() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)

    limiter.acquire("user:a", 8, inference_requests=2)
    await settler.settle()
    limiter.refund("user:a", 8, 2)
    await settler.settle()

    assert store.buckets[("points", "user:a")][0] == 100
    assert store.buckets[("inference", "user:a")][0] == 10


async def test_spending_half_a_lease_wakes_the_settler() -> None:
    clock = FakeClock()
    limiter, settler = process(FakeBudgetStore(clock), clock)

    limiter.acquire("user:a", 4)
    assert not settler._woken.is_set()
    limiter.acquire("user:a", 1)
    assert settler._woken.is_set()


async def test_an_unreachable_store_falls_back_to_per_process_limits_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)
    store.is_down = True

    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            limiter.acquire("user:a", 5)
            await settler.settle()
    assert set(settler.degradations()) == {"rateLimitStore"}
    assert "per process" in settler.degradations()["rateLimitStore"]
    assert sum("unreachable" in r.getMessage() for r in caplog.records) == 1

    # No lease cap while degraded: this process's own bucket, 15 spent of 100.
    assert spend_until_refused(limiter) == 85

    store.is_down = False
    with caplog.at_level(logging.WARNING):
        await settler.settle()
    assert settler.degradations() == {}
    assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_the_settler_settles_on_its_interval_and_once_more_on_stop() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)
    settler.interval = 0.01
    stop = asyncio.Event()
    task = asyncio.create_task(settler.run(stop))

    limiter.acquire("user:a", 1)
    await asyncio.wait_for(store.answered.wait(), 5)
    limiter.acquire("user:a", 2)
    stop.set()
    await task

    assert store.buckets[("points", "user:a")][0] == 97
    assert store.closed


async def test_a_small_budget_is_one_lease_so_it_never_waits_for_a_settle() -> None:
    clock = FakeClock()
    settler = BudgetSettler(FakeBudgetStore(clock), store_name="fake")
    small = RateLimitPolicy(
        points_per_second=1.0, burst=5.0, inference_per_second=1.0, inference_burst=5.0
    )
    limiter = RateLimiter(small, clock, shared_buckets_factory(settler, 0.05, clock))

    waits = [limiter.acquire("user:a", 1) for _ in range(6)]

    assert waits[:5] == [0] * 5
    assert waits[5] == pytest.approx(1.0)  # the budget is spent: a real refusal


async def test_a_settle_reports_only_the_callers_that_spent_since_the_last_one() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)
    limiter.acquire("user:a", 1)
    limiter.acquire("user:b", 1)
    await settler.settle()
    reported: list[list[str]] = []
    settle = store.settle

    async def recording(charges: Sequence[BudgetCharge]) -> list[float]:
        reported.append([c.key for c in charges])
        return await settle(charges)

    store.settle = recording  # type: ignore[method-assign]  # a spy on the fake
    await settler.settle()
    limiter.acquire("user:b", 1)
    await settler.settle()

    assert reported == [["user:b"]]


@contextlib.asynccontextmanager
async def settling(settler: BudgetSettler) -> AsyncIterator[None]:
    """The settler running in the background, woken only (its interval is a minute)."""
    settler.interval = 60.0
    stop = asyncio.Event()
    task = asyncio.create_task(settler.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def test_past_the_lease_with_budget_left_a_request_waits_for_a_settle_and_passes() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)  # a lease of 10 points of 100
    assert spend_until_refused(limiter) == 10

    async with settling(settler):
        assert await limiter.acquire_settled("user:a", 1) == 0

    assert store.calls == 2  # the request's settle, then the settler's last one as it stops
    assert store.buckets[("points", "user:a")][0] == 89


async def test_past_the_lease_with_the_shared_bucket_empty_is_refused_with_its_real_wait() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    other, other_settler = process(store, clock, lease=1.0)
    limiter, settler = process(store, clock)
    assert other.acquire("user:a", 95) == 0
    await other_settler.settle()  # 5 points left in the shared bucket
    assert spend_until_refused(limiter) == 10  # this process does not know yet

    async with settling(settler):
        wait = await limiter.acquire_settled("user:a", 1)

    assert wait == pytest.approx(6.0)  # -5 after this process's 10: 6 s to refill 1 point
    assert store.buckets[("points", "user:a")][0] == -5


async def test_concurrent_requests_past_the_lease_share_settles_until_the_budget_ends() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)

    async with settling(settler):
        waits = await asyncio.gather(*(limiter.acquire_settled("user:a", 1) for _ in range(120)))

    assert waits.count(0) == 100  # the whole budget, no more: one process, the store exact
    assert all(wait >= 1.0 for wait in waits if wait)  # refusals name the refill, not a settle
    assert store.calls <= 20  # a settle per lease, not one per request


async def test_past_the_lease_with_the_store_down_a_request_spends_this_process_budget() -> None:
    clock = FakeClock()
    store = FakeBudgetStore(clock)
    limiter, settler = process(store, clock)
    spend_until_refused(limiter)
    store.is_down = True

    async with settling(settler):
        assert await limiter.acquire_settled("user:a", 1) == 0
        assert set(settler.degradations()) == {"rateLimitStore"}


async def test_past_the_lease_without_a_running_settler_the_wait_is_bounded_and_said() -> None:
    clock = FakeClock()
    limiter, settler = process(FakeBudgetStore(clock), clock)
    settler.timeout, settler.interval = 0.01, 0.01
    spend_until_refused(limiter)

    assert await limiter.acquire_settled("user:a", 1) == 0  # per process, like a store down

    assert "no settle ended" in (settler.failure or "")
    assert set(settler.degradations()) == {"rateLimitStore"}
