"""One budget per caller across processes: each process spends from its mirror of the caller's
shared bucket, and a settler reports the spending to the shared store and reads the level back.

A request within its lease never waits on the store. A process may spend up to a lease (a
slice of the bucket) since it last settled a caller's bucket; past half of it the settler is
woken, and every `interval` it settles whatever was spent. A request past the lease waits for
the next settle (RateLimiter.acquire_settled) and is decided on the fresh level. So across N
processes a caller gets at most N leases (plus one operation each) beyond its budget before
every process knows. When the store fails, each mirror becomes a per-process bucket until it
answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from domain.ports import BudgetCharge, BudgetStore
from graph.protection.rate_limit import BucketPolicy, MonotonicClock, Settled
from telemetry import metrics

logger = logging.getLogger(__name__)

DEGRADED_NOTE = "unreachable: rate limits are per process until it answers"


@dataclass
class _Mirror:
    level: float  # the shared bucket's level at `at`, as the store said (or full, unseen)
    at: float
    spent: float = 0.0  # spent here since, not reported yet
    reported: float = 0.0  # reported, the store's answer not back yet


class SharedBuckets:
    """TokenBuckets' interface (available, wait_for, take) over a bucket shared by processes."""

    def __init__(
        self,
        name: str,
        policy: BucketPolicy,
        lease: float,
        *,
        wake: Callable[[], None],
        clock: MonotonicClock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.name = name
        self.policy = policy
        self.lease = lease
        self.clock = clock
        self.max_keys = max_keys
        self.is_shared = True  # False while the store is unreachable: no lease cap then
        self._wake = wake
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()
        self._unsettled: set[str] = set()  # keys spent from since the last settle

    def __len__(self) -> int:
        return len(self._mirrors)

    def _mirror(self, key: str) -> _Mirror:
        mirror = self._mirrors.get(key)
        if mirror is None:
            mirror = self._mirrors[key] = _Mirror(self.policy.burst, self.clock())
            while len(self._mirrors) > self.max_keys:
                self._mirrors.popitem(last=False)
        return mirror

    def _refilled(self, mirror: _Mirror, now: float) -> float:
        return min(
            self.policy.burst, mirror.level + max(0.0, now - mirror.at) * self.policy.per_second
        )

    def available(self, key: str) -> float:
        mirror = self._mirrors.get(key)
        if mirror is None:
            return self.policy.burst
        return self._refilled(mirror, self.clock()) - mirror.spent - mirror.reported

    def wait_for(self, key: str, amount: float) -> float:
        """Seconds until `amount` can be taken; 0 when it can be now. Over the lease (and not
        the first spending since the last settle), the seconds until the next settle."""
        needed = min(amount, self.policy.burst)
        wait = max(0.0, (needed - self.available(key)) / self.policy.per_second)
        if wait > 0:
            return wait
        if self.needs_settle(key, amount):
            self._wake()
            return SETTLE_WAIT_SECONDS
        return 0.0

    def needs_settle(self, key: str, amount: float) -> bool:
        """The bucket may pay `amount`, but this process has spent its lease since the last
        settle: only the store's fresh level may say yes (RateLimiter.acquire_settled)."""
        mirror = self._mirrors.get(key)
        if not self.is_shared or mirror is None:
            return False
        unsettled = mirror.spent + mirror.reported
        if unsettled <= 0 or unsettled + amount <= self.lease:
            return False
        return self.available(key) >= min(amount, self.policy.burst)

    def take(self, key: str, amount: float) -> None:
        mirror = self._mirror(key)
        mirror.spent += amount
        self._mirrors.move_to_end(key)
        self._unsettled.add(key)
        if mirror.spent >= self.lease / 2:
            self._wake()

    def unsettled(self) -> list[tuple[str, float]]:
        """What was spent since the last settle, per key, now counted as reported."""
        charges = []
        keys, self._unsettled = self._unsettled, set()
        for key in keys:
            mirror = self._mirrors.get(key)
            if mirror is not None and mirror.spent:
                charges.append((key, mirror.spent))
                mirror.reported += mirror.spent
                mirror.spent = 0.0
        return charges

    def settled(self, key: str, spent: float, level: float) -> None:
        """The store's level after this process's `spent` (and every other process's)."""
        mirror = self._mirrors.get(key)
        if mirror is not None:
            mirror.level, mirror.at = level, self.clock()
            mirror.reported -= spent

    def unreported(self, key: str, spent: float) -> None:
        """The store did not answer: the spending stays in this process's own bucket."""
        mirror = self._mirrors.get(key)
        if mirror is not None:
            now = self.clock()
            mirror.level, mirror.at = self._refilled(mirror, now) - spent, now
            mirror.reported -= spent


# The smallest lease, in tokens (or the whole burst, when smaller).
MIN_LEASE = 10.0

# The settler's interval, and what a request past its lease is told to wait when it could not
# wait for settles itself (RateLimiter.acquire, or acquire_settled out of time): one settle.
SETTLE_WAIT_SECONDS = 0.1


class BudgetSettler:
    """Settles the buckets' spending with the store: every `interval`, or at once when woken
    (a lease half spent). Reports the store's outage once, and its return once."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        store_name: str,
        interval: float = SETTLE_WAIT_SECONDS,
        timeout: float = 1.0,
    ) -> None:
        self.store = store
        self.store_name = store_name
        self.interval = interval
        self.timeout = timeout
        self.buckets: list[SharedBuckets] = []
        self.failure: str | None = None
        self._woken = asyncio.Event()
        self._ended = asyncio.Event()  # set when the settle under way (or the next) ends

    def wake(self) -> None:
        self._woken.set()

    @property
    def wait_limit(self) -> float:
        """The longest a settle can take from a wake: one in flight ends within `timeout`,
        and a sleeping settler starts at once (`interval` is the margin)."""
        return self.timeout + self.interval

    async def settled(self) -> bool:
        """Wake the settler and wait until a settle ends (answered or failed): True. False
        when none ends within `wait_limit`; the settler is then not settling (stopped or
        stuck), which counts as an unreachable store: limits are per process, and the log
        and /readyz say so, until a settle answers again."""
        ended = self._ended
        self.wake()
        try:
            await asyncio.wait_for(ended.wait(), self.wait_limit)
        except TimeoutError:
            self._failed(TimeoutError(f"no settle ended within {self.wait_limit:g} s"))
            return False
        return True

    def settled_waiter(self) -> Settled:
        """For RateLimiter: how a request past its lease waits for settles. At most two of
        them: the one under way when it came (which may have reported only part of this
        process's spending) and the next."""
        return Settled(self.settled, 2 * self.wait_limit)

    def _end_settle(self) -> None:
        ended, self._ended = self._ended, asyncio.Event()
        ended.set()

    def degradations(self) -> dict[str, str]:
        """For /readyz: a store that does not answer degrades limits, it refuses nothing."""
        return {} if self.failure is None else {"rateLimitStore": DEGRADED_NOTE}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self._sleep(stop)
                await self.settle()
            await self.settle()  # what was spent last counts on the other processes
        finally:
            await self.store.close()

    async def _sleep(self, stop: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait(
                {stopped, woken}, timeout=self.interval, return_when="FIRST_COMPLETED"
            )
        finally:
            stopped.cancel()
            woken.cancel()
        self._woken.clear()

    async def settle(self) -> None:
        """Report every bucket's spending in one call; apply the levels the store answers.
        Whatever happens, the requests waiting for a settle are woken when it ends."""
        try:
            await self._settle()
        finally:
            self._end_settle()

    async def _settle(self) -> None:
        owed = [
            (buckets, key, spent) for buckets in self.buckets for key, spent in buckets.unsettled()
        ]
        if not owed:
            return
        charges = [
            BudgetCharge(b.name, key, spent, b.policy.per_second, b.policy.burst)
            for b, key, spent in owed
        ]
        try:
            levels = await asyncio.wait_for(self.store.settle(charges), self.timeout)
        except Exception as exc:
            for buckets, key, spent in owed:
                buckets.unreported(key, spent)
            metrics.labelled(metrics.RATE_LIMIT_SETTLES, "failed").inc()
            self._failed(exc)
            return
        for (buckets, key, spent), level in zip(owed, levels, strict=True):
            buckets.settled(key, spent, level)
        metrics.labelled(metrics.RATE_LIMIT_SETTLES, "ok").inc()
        self._recovered()

    def _failed(self, exc: BaseException) -> None:
        if self.failure is None:
            logger.warning(
                "rate limit store (%s) %s: %s", self.store_name, DEGRADED_NOTE, exc or type(exc)
            )
        self.failure = str(exc) or type(exc).__name__
        for buckets in self.buckets:
            buckets.is_shared = False

    def _recovered(self) -> None:
        if self.failure is not None:
            logger.warning(
                "rate limit store (%s) answers again: one budget per caller", self.store_name
            )
        self.failure = None
        for buckets in self.buckets:
            buckets.is_shared = True


def shared_buckets_factory(
    settler: BudgetSettler, lease_fraction: float, clock: MonotonicClock = time.monotonic
) -> Callable[[str, BucketPolicy, int], SharedBuckets]:
    """For RateLimiter: each of its buckets shared through `settler`, with a lease of
    `lease_fraction` of the bucket's burst, and at least MIN_LEASE tokens (the whole burst
    when it is smaller): a lease of one or two would make a caller within a small budget wait
    for a settle at every other request."""

    def build(name: str, policy: BucketPolicy, max_keys: int) -> SharedBuckets:
        buckets = SharedBuckets(
            name,
            policy,
            max(policy.burst * lease_fraction, min(policy.burst, MIN_LEASE)),
            wake=settler.wake,
            clock=clock,
            max_keys=max_keys,
        )
        settler.buckets.append(buckets)
        return buckets

    return build
