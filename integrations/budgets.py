"""The callers' shared token buckets in Redis or Valkey (ElastiCache in production)."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from domain.ports import BudgetCharge

# One bucket, atomically: refill since the last charge (the server's clock, so every process
# agrees), pay the charge, keep the key until the bucket would be full again. Levels travel
# as strings: Lua truncates numbers it returns to integers.
_SETTLE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local spent, per_second, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, math.min(burst, tokens + math.max(0, now - at) * per_second) - spent)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / per_second * 1000) + 60000)
return tostring(tokens)
"""

KEY_PREFIX = "assay:budget:"


class RedisBudgetStore:
    """BudgetStore on Redis: one Lua script per bucket, all of a settle in one pipeline (one
    round trip). One key per bucket, so it works on a cluster as well."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        timeout_seconds: float = 1.0,
    ) -> None:
        # rediss:// is TLS, the server's certificate verified against the system's CAs.
        self._redis = Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        self._script = self._redis.register_script(_SETTLE)

    async def settle(self, charges: Sequence[BudgetCharge]) -> list[float]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in charges:
                await self._script(
                    keys=[f"{KEY_PREFIX}{c.bucket}:{c.key}"],
                    args=[repr(c.spent), repr(c.per_second), repr(c.burst)],
                    client=pipe,
                )
            answers = await pipe.execute()
        return [float(level) for level in answers]

    async def close(self) -> None:
        await self._redis.aclose()
