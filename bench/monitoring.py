"""M1: model monitoring's reads. A day of 1,000,000 iris-species predictions is seeded as
rollup rows (1,440, one per minute, as the record paths would have left them), then
`Model.stats` and `Model.drift` over that day are timed together, one request at a time
(target: under 50 ms)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import httpx
import orjson

from bench.workloads import body
from domain.models import Model
from domain.monitoring import (
    HOUR,
    LATENCY_EDGES_MS,
    MINUTE,
    Layout,
    Tally,
    hour_of,
    layout_of,
    merged,
)
from persistence.monitoring import SHARDS

TARGET_MS = 50.0
MINUTES = 1440
QUERY = """query M1($model: ID!, $from: DateTime!) { model(id: $model) {
  stats(window: {from: $from}) {
    predictions failures errorRate throughputPerSecond
    modelLatency { p50Ms p95Ms p99Ms } endToEndLatency { p50Ms p95Ms p99Ms }
    outputDistribution { label count share }
    series(bucketSeconds: 3600) { at predictions modelLatency { p95Ms } }
  }
  drift(window: {from: $from}) {
    status driftShare
    features { feature psi ks status current { label share } reference { label share } }
    output { feature psi status }
  }
} }"""


@dataclass(frozen=True)
class MonitoringResult:
    rows: int  # seeded: 1,440 minutes and 24 or 25 hours, each in SHARDS rows
    predictions: int
    samples: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    target_ms: float
    drift_status: str


def _spread(rng: random.Random, total: int, size: int, skew: int = 0) -> list[int]:
    """`total` counts over `size` bins, roughly even (shifted by `skew` bins)."""
    counts = [0] * size
    for _ in range(min(total, 200)):
        counts[min(size - 1, max(0, rng.randrange(size) + skew))] += 1
    scale = total / max(1, sum(counts))
    scaled = [int(c * scale) for c in counts]
    scaled[0] += total - sum(scaled)
    return scaled


def day_of_rows(
    model_id: UUID, layout: Layout, predictions: int, end: datetime, seed: int = 0
) -> list[tuple[object, ...]]:
    """The rollup rows of the day before `end`, `predictions` in all: one per minute and
    one per hour (their sums), as the record paths leave them."""
    rng = random.Random(seed)
    per_minute, extra = divmod(predictions, MINUTES)
    first = end.replace(second=0, microsecond=0) - timedelta(minutes=MINUTES)
    buckets = len(LATENCY_EDGES_MS) + 1
    minutes: list[Tally] = []
    for n in range(MINUTES):
        count = per_minute + (1 if n < extra else 0)
        features = [c for axis in layout.features for c in _spread(rng, count, axis.size)]
        minutes.append(
            Tally(
                model_id,
                first + timedelta(minutes=n),
                count,
                count // 200,
                tuple(_latency(count, buckets, around=12)),
                tuple(_latency(count, buckets, around=30)),
                tuple(_spread(rng, count, layout.output.size)),
                tuple(features),
            )
        )
    by_hour: dict[datetime, list[Tally]] = {}
    for tally in minutes:
        by_hour.setdefault(hour_of(tally.minute), []).append(tally)
    hours = [merged(model_id, hour, rows) for hour, rows in by_hour.items()]
    rows = [_row(t, MINUTE, shard) for t in minutes for shard in range(SHARDS)]
    return rows + [_row(t, HOUR, shard) for t in hours for shard in range(SHARDS)]


def _row(t: Tally, span: int, shard: int) -> tuple[object, ...]:
    """The shard's part of a tally: every writer of the minute took its turn (the worst
    case for reads: each minute and hour has all of its rows)."""

    def part(counts: Sequence[int]) -> list[int]:
        return [c // SHARDS + (c % SHARDS if shard == 0 else 0) for c in counts]

    return (
        t.model_id, span, t.minute, shard, *part((t.predictions, t.failures)),
        part(t.model_ms), part(t.end_to_end_ms), part(t.output), part(t.features),
    )  # fmt: skip


def _latency(count: int, size: int, around: int) -> list[int]:
    counts = [0] * size
    counts[around - 1], counts[around + 1] = count // 4, count // 4
    counts[around] = count - 2 * (count // 4)
    return counts


async def seed(url: str, model_id: UUID, predictions: int, end: datetime) -> int:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT name, version, input_schema, output_schema, runtime, runtime_config "
            "FROM models WHERE id = $1",
            model_id,
        )
        assert row is not None, "the model is seeded"
        model = Model(
            model_id,
            row["name"],
            row["version"],
            "",
            orjson.loads(row["input_schema"]),
            orjson.loads(row["output_schema"]),
            row["runtime"],
            orjson.loads(row["runtime_config"]),
        )
        rows = day_of_rows(model_id, layout_of(model), predictions, end)
        await conn.execute("DELETE FROM model_stats WHERE model_id = $1", model_id)
        await conn.copy_records_to_table(
            "model_stats",
            records=rows,
            columns=[
                "model_id", "span", "minute", "shard", "predictions", "failures", "model_ms",
                "end_to_end_ms", "output", "features",
            ],
        )  # fmt: skip
    finally:
        await conn.close()
    return len(rows)


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def time_reads(
    port: int, token: str, model: str, start: datetime, rows: int, predictions: int
) -> MonitoringResult:
    content = body(QUERY, "M1", {"model": model, "from": start.isoformat()})
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    times: list[float] = []
    status = ""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for n in range(35):
            began = time.perf_counter()
            response = client.post("/graphql", content=content, headers=headers)
            took = (time.perf_counter() - began) * 1000
            answer = orjson.loads(response.content)
            if answer.get("errors"):
                raise RuntimeError(f"M1 failed: {response.text[:500]}")
            if n >= 5:  # warm-up: connections, plans, caches
                times.append(took)
            status = answer["data"]["model"]["drift"]["status"]
            counted = answer["data"]["model"]["stats"]["predictions"]
            if counted != predictions:
                raise RuntimeError(f"M1 counted {counted} predictions, not {predictions}")
    return MonitoringResult(
        rows=rows,
        predictions=predictions,
        samples=len(times),
        p50_ms=round(_percentile(times, 0.5), 2),
        p95_ms=round(_percentile(times, 0.95), 2),
        max_ms=round(max(times), 2),
        target_ms=TARGET_MS,
        drift_status=status,
    )


def now() -> datetime:
    return datetime.now(UTC)
