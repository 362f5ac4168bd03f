"""Per-caller rate limits: token buckets of cost points and of inference requests, in this
process or shared by every process (shared_budget.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MonotonicClock = Callable[[], float]
RATE_LIMIT_POLICY_HEADER = "RateLimit-Policy"
RATE_LIMIT_HEADER = "RateLimit"


def parse_networks(text: str) -> tuple[Network, ...]:
    """ "10.0.0.0/8, 192.168.1.7" -> networks; raises ValueError naming the bad entry."""
    networks: list[Network] = []
    for part in text.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class BucketPolicy:
    per_second: float
    burst: float


class Buckets(Protocol):
    """One bucket per key: this process's own (TokenBuckets) or shared ones (shared_budget.py)."""

    def __len__(self) -> int: ...
    def available(self, key: str) -> float: ...
    def wait_for(self, key: str, amount: float) -> float: ...
    def needs_settle(self, key: str, amount: float) -> bool: ...
    def take(self, key: str, amount: float) -> None: ...


# Builds a limiter's bucket set from its name ("points", "inference"), policy and key cap.
BucketsFactory = Callable[[str, BucketPolicy, int], Buckets]


class TokenBuckets:
    """One bucket per key, full at first; the least recently used keys are forgotten."""

    def __init__(
        self, policy: BucketPolicy, clock: MonotonicClock = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def available(self, key: str) -> float:
        tokens, last = self._buckets.get(key, (self.policy.burst, self.clock()))
        elapsed = max(0.0, self.clock() - last)
        return min(self.policy.burst, tokens + elapsed * self.policy.per_second)

    def wait_for(self, key: str, amount: float) -> float:
        """Seconds until `amount` can be taken; 0 when it can be now."""
        # A request larger than the burst is let through on a full bucket (leaving a debt),
        # so a generous operation is slow rather than impossible.
        needed = min(amount, self.policy.burst)
        missing = needed - self.available(key)
        return max(0.0, missing / self.policy.per_second)

    def needs_settle(self, key: str, amount: float) -> bool:
        return False  # this process's own bucket: nothing to settle

    def take(self, key: str, amount: float) -> None:
        self._buckets[key] = (self.available(key) - amount, self.clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


# What a refused credential (an unknown or malformed API key, a token that fails verification)
# costs its address, in points: with the default budget (20,000, 200 a second) an address
# gets about 200 refusals, then two a second, instead of thousands free.
REFUSED_CREDENTIAL_POINTS = 100


@dataclass(frozen=True)
class RateLimitPolicy:
    points_per_second: float = 200.0
    burst: float = 20_000.0
    inference_per_second: float = 50.0
    inference_burst: float = 2_000.0
    trusted_proxies: tuple[Network, ...] = ()
    max_keys: int = 100_000


@dataclass(frozen=True)
class Settled:
    """How a limiter with shared buckets waits for their next settle with the store
    (BudgetSettler.settled): `wait()` is True when one ended (the store answered or was found
    unreachable), False when none ended in time; a request waits `limit` seconds at most."""

    wait: Callable[[], Awaitable[bool]]
    limit: float


class RateLimiter:
    """Cost points for every operation, plus a lower budget for inference requests."""

    def __init__(
        self,
        policy: RateLimitPolicy,
        clock: MonotonicClock = time.monotonic,
        buckets: BucketsFactory | None = None,
        settled: Settled | None = None,
    ) -> None:
        self.policy = policy
        self._settled = settled
        # IETF RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers): each bucket as a quota
        # `q` that a caller gets back in full over `w` seconds.
        self.policy_header = ", ".join(
            f'"{name}";q={math.floor(bucket.burst)};w={math.ceil(bucket.burst / bucket.per_second)}'
            for name, bucket in (
                ("points", BucketPolicy(policy.points_per_second, policy.burst)),
                ("inference", BucketPolicy(policy.inference_per_second, policy.inference_burst)),
            )
        )
        build: BucketsFactory = buckets or (
            lambda _name, bucket, max_keys: TokenBuckets(bucket, clock, max_keys)
        )
        self.points = build(
            "points", BucketPolicy(policy.points_per_second, policy.burst), policy.max_keys
        )
        self.inference = build(
            "inference",
            BucketPolicy(policy.inference_per_second, policy.inference_burst),
            policy.max_keys,
        )

    def wait(self, key: str, points: int, inference_requests: int = 0) -> float:
        """Seconds until `acquire` would grant this; 0 when it would now. Takes nothing."""
        points = max(1, points)  # every operation costs something, even `{ __typename }`
        wait = self.points.wait_for(key, points)
        if inference_requests:
            wait = max(wait, self.inference.wait_for(key, inference_requests))
        return wait

    def acquire(self, key: str, points: int, inference_requests: int = 0) -> float:
        """Take from the caller's buckets; 0 when granted, else seconds to wait (nothing taken)."""
        wait = self.wait(key, points, inference_requests)
        if wait > 0:
            return wait
        points = max(1, points)
        self.points.take(key, points)
        if inference_requests:
            self.inference.take(key, inference_requests)
        return 0.0

    async def acquire_settled(self, key: str, points: int, inference_requests: int = 0) -> float:
        """`acquire`, except that a refusal only a settle can lift (this process spent its
        lease of a shared bucket that may have budget left) waits for the next settle and is
        decided on the fresh level. Only such a request waits, at most `settled.limit`; a
        request within its lease, or refused by an empty bucket, never does."""
        wait = self.acquire(key, points, inference_requests)
        if wait == 0 or self._settled is None:
            return wait
        settled = self._settled
        try:
            async with asyncio.timeout(settled.limit):
                while self._needs_settle(key, points, inference_requests):
                    if not await settled.wait():
                        break  # no settle in time: limits are per process now (as for a store down)
                    if self.acquire(key, points, inference_requests) == 0:
                        return 0.0
        except TimeoutError:
            pass  # fresh leases went to this process's other requests first: a real wait
        return self.acquire(key, points, inference_requests)

    def _needs_settle(self, key: str, points: int, inference_requests: int) -> bool:
        """Refused by a lease, and no bucket empty (a settle would not help then)."""
        points = max(1, points)
        wanted = [(self.points, points)]
        if inference_requests:
            wanted.append((self.inference, inference_requests))
        if any(b.wait_for(key, n) > 0 and not b.needs_settle(key, n) for b, n in wanted):
            return False
        return any(b.needs_settle(key, n) for b, n in wanted)

    def state_header(self, key: str) -> str:
        """The IETF RateLimit field for `key`: per bucket, `r` units left now and `t` seconds
        until the bucket is full again."""
        return ", ".join(
            f'"{name}";r={math.floor(max(0.0, left))};t={math.ceil(max(0.0, full - left) / rate)}'
            for name, left, full, rate in (
                (
                    "points",
                    self.points.available(key),
                    self.policy.burst,
                    self.policy.points_per_second,
                ),
                (
                    "inference",
                    self.inference.available(key),
                    self.policy.inference_burst,
                    self.policy.inference_per_second,
                ),
            )
        )

    def charge_refusal(self, key: str, points: float = REFUSED_CREDENTIAL_POINTS) -> None:
        """Take up to `points`, down to an empty bucket but not into debt: the request's own
        charge then finds nothing left, and the address recovers at the usual rate."""
        self.points.take(key, min(points, max(0.0, self.points.available(key))))

    def refund(self, key: str, points: int, inference_requests: int = 0) -> None:
        """Give back a whole charge (a request that another path will charge again)."""
        self.points.take(key, -max(1, points))
        self.refund_inference(key, inference_requests)

    def refund_inference(self, key: str, inference_requests: int) -> None:
        """Give back inference requests that were charged but refused (never queued)."""
        if inference_requests > 0:
            self.inference.take(key, -inference_requests)

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.policy.trusted_proxies)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client: the peer, or when the peer is a trusted proxy, the nearest untrusted hop.

        X-Forwarded-For is read right to left, skipping trusted proxies: entries left of the
        first untrusted one were written by the client and could be anything.
        """
        client = peer or "unknown"
        if not forwarded_for or not self._is_trusted(client):
            return client
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            client = hop
            if not self._is_trusted(hop):
                break
        return client
