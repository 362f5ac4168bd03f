"""Token buckets with an injected clock, and who the client is behind proxies."""

from __future__ import annotations

import pytest

from graph.protection.rate_limit import (
    BucketPolicy,
    RateLimiter,
    RateLimitPolicy,
    TokenBuckets,
    parse_networks,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: FakeClock, **overrides: object) -> RateLimiter:
    values: dict[str, object] = {
        "points_per_second": 10.0,
        "burst": 100.0,
        "inference_per_second": 1.0,
        "inference_burst": 5.0,
    }
    values.update(overrides)
    return RateLimiter(RateLimitPolicy(**values), clock)  # type: ignore[arg-type]  # test kwargs


def test_bucket_starts_full_and_refills_at_its_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(BucketPolicy(per_second=10, burst=100), clock)

    buckets.take("k", 100)
    assert buckets.wait_for("k", 30) == pytest.approx(3.0)
    clock.now += 2
    assert buckets.available("k") == pytest.approx(20)
    clock.now += 1000
    assert buckets.available("k") == 100  # never above the burst


def test_refused_request_takes_nothing() -> None:
    clock = FakeClock()
    rate = limiter(clock)

    assert rate.acquire("k", 100) == 0
    assert rate.acquire("k", 50) == pytest.approx(5.0)
    clock.now += 5
    assert rate.acquire("k", 50) == 0


def test_wait_tells_what_acquire_would_answer_and_takes_nothing() -> None:
    clock = FakeClock()
    rate = limiter(clock)

    assert rate.wait("k", 100) == 0
    assert rate.wait("k", 100) == 0  # still a full bucket: nothing was taken
    assert rate.acquire("k", 100) == 0
    assert rate.wait("k", 50) == pytest.approx(5.0)
    assert rate.acquire("k", 50) == pytest.approx(5.0)
    assert rate.acquire("i", 1, inference_requests=5) == 0
    assert rate.wait("i", 1, inference_requests=1) == pytest.approx(1.0)


def test_keys_are_isolated() -> None:
    rate = limiter(FakeClock())

    assert rate.acquire("a", 100) == 0
    assert rate.acquire("a", 1) > 0
    assert rate.acquire("b", 100) == 0


def test_inference_bucket_is_separate_and_lower() -> None:
    clock = FakeClock()
    rate = limiter(clock)

    assert rate.acquire("k", 1, inference_requests=5) == 0
    assert rate.acquire("k", 1, inference_requests=1) == pytest.approx(1.0)
    assert rate.acquire("k", 1) == 0  # plain queries still pass


def test_request_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_a_debt() -> None:
    clock = FakeClock()
    rate = limiter(clock)

    assert rate.acquire("k", 150) == 0
    assert rate.acquire("k", 1) == pytest.approx(5.1)


def test_every_operation_costs_at_least_one_point() -> None:
    rate = limiter(FakeClock(), burst=2.0)

    assert rate.acquire("k", 0) == 0
    assert rate.acquire("k", 0) == 0
    assert rate.acquire("k", 0) > 0


def test_least_recently_used_keys_are_forgotten() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(BucketPolicy(per_second=1, burst=10), clock, max_keys=3)
    for key in "abcd":
        buckets.take(key, 10)

    assert len(buckets) == 3
    assert buckets.available("a") == 10  # forgotten: a fresh, full bucket
    assert buckets.available("d") == 0


def test_forwarded_for_is_ignored_without_trusted_proxies() -> None:
    rate = limiter(FakeClock())

    assert rate.client_address("198.51.100.7", "1.2.3.4") == "198.51.100.7"


def test_nearest_untrusted_hop_is_the_client_behind_trusted_proxies() -> None:
    rate = limiter(FakeClock(), trusted_proxies=parse_networks("10.0.0.0/8, 192.168.1.1"))

    # The client wrote "6.6.6.6" itself; the trusted proxies appended the rest.
    chain = "6.6.6.6, 203.0.113.5, 192.168.1.1"
    assert rate.client_address("10.1.2.3", chain) == "203.0.113.5"
    assert rate.client_address("10.1.2.3", None) == "10.1.2.3"
    assert rate.client_address("10.1.2.3", "10.0.0.9") == "10.0.0.9"
    assert rate.client_address("198.51.100.7", chain) == "198.51.100.7"  # untrusted peer


def test_bad_proxy_entries_are_named() -> None:
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        parse_networks("10.0.0.0/8,10.0.0.0/33")


def test_a_refused_credential_empties_the_bucket_but_leaves_no_debt() -> None:
    clock = FakeClock()
    rate = limiter(clock, burst=150, points_per_second=10)
    rate.charge_refusal("ip:a", 100)
    assert rate.points.available("ip:a") == 50
    rate.charge_refusal("ip:a", 100)
    assert rate.points.available("ip:a") == 0
    assert rate.acquire("ip:a", 1) > 0
    clock.now += 1  # back at the usual rate: no debt to pay off first
    assert rate.acquire("ip:a", 1) == 0
