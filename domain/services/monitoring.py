"""Use cases of model monitoring's reads: statistics, drift and quality over a window.

Statistics aggregate every caller's traffic to a model, so only administrators read them.
Each read takes at most one rollup row per minute of the window (1,440 for a day).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain.drift import Bin, DriftStatus, FeatureDrift, bins, feature_drift, worst
from domain.errors import Forbidden, InvalidInput, NotFound
from domain.models import Model
from domain.monitoring import (
    HOUR,
    Layout,
    Profile,
    Tally,
    layout_of,
    merged,
    minute_of,
    percentile_ms,
    profile_from,
    shipped_profile,
)
from domain.ports import UnitOfWork
from domain.principal import Principal
from domain.quality import Quality, classifier_quality, regressor_quality

DEFAULT_WINDOW = timedelta(hours=1)
MAX_POINTS = 1440


@dataclass(frozen=True, slots=True)
class MonitoringPolicy:
    retention: timedelta = timedelta(days=14)
    # A model that ships no reference profile gets one from its first this many predictions.
    reference_size: int = 1000


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Latency:
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None

    @classmethod
    def of(cls, buckets: tuple[int, ...]) -> Latency:
        return cls(*(percentile_ms(buckets, q) for q in (0.5, 0.95, 0.99)))


@dataclass(frozen=True, slots=True)
class StatsPoint:
    at: datetime
    predictions: int
    failures: int
    model_latency: Latency


@dataclass(frozen=True, slots=True)
class ModelStats:
    window: Window
    total: Tally
    rows: tuple[Tally, ...]
    output_distribution: tuple[Bin, ...]

    @property
    def error_rate(self) -> float:
        done = self.total.predictions + self.total.failures
        return self.total.failures / done if done else 0.0

    @property
    def throughput_per_second(self) -> float:
        return self.total.predictions / self.window.seconds

    @property
    def model_latency(self) -> Latency:
        return Latency.of(self.total.model_ms)

    @property
    def end_to_end_latency(self) -> Latency:
        return Latency.of(self.total.end_to_end_ms)


def check_bucket(bucket_seconds: int, window: Window) -> int:
    if not 60 <= bucket_seconds <= 86400:
        raise InvalidInput({"bucketSeconds": "must be between 60 and 86400"})
    first = _bucket_of(window.start, bucket_seconds)
    count = math.ceil((window.end - first).total_seconds() / bucket_seconds)
    if count > MAX_POINTS:
        raise InvalidInput({"bucketSeconds": f"gives more than {MAX_POINTS} points"})
    return count


def series_of(
    model_id: UUID, rows: Sequence[Tally], window: Window, bucket_seconds: int
) -> list[StatsPoint]:
    """The window in buckets aligned on multiples of `bucket_seconds` since the epoch; each
    row must lie within one bucket (minute rows always do; hour rows for whole hours)."""
    count = check_bucket(bucket_seconds, window)
    first = _bucket_of(window.start, bucket_seconds)
    grouped: dict[datetime, list[Tally]] = {}
    for row in rows:
        grouped.setdefault(_bucket_of(row.minute, bucket_seconds), []).append(row)
    points = []
    for n in range(count):
        at = first + timedelta(seconds=n * bucket_seconds)
        total = merged(model_id, at, grouped.get(at, []))
        points.append(StatsPoint(at, total.predictions, total.failures, Latency.of(total.model_ms)))
    return points


async def stats_series(uow: UnitOfWork, stats: ModelStats, bucket_seconds: int) -> list[StatsPoint]:
    """ModelStats.series: from the window's rows when buckets are whole hours, else from
    its minute rows (up to 1,440, read only for this)."""
    model_id, window = stats.total.model_id, stats.window
    check_bucket(bucket_seconds, window)
    if bucket_seconds % HOUR == 0:
        return series_of(model_id, stats.rows, window, bucket_seconds)
    async with uow:
        rows = await uow.monitoring.tallies(model_id, minute_of(window.start), window.end)
    return series_of(model_id, rows, window, bucket_seconds)


def _bucket_of(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


@dataclass(frozen=True, slots=True)
class ModelDrift:
    window: Window
    status: DriftStatus
    drift_share: float
    features: tuple[FeatureDrift, ...]
    output: FeatureDrift


@dataclass(frozen=True, slots=True)
class ModelQuality:
    window: Window
    quality: Quality


def window_of(
    start: datetime | None, end: datetime | None, policy: MonitoringPolicy, now: datetime
) -> Window:
    """`from` defaults to `to` minus an hour, `to` to now; BAD_USER_INPUT naming the field
    for a window that is empty or reaches past the retention period."""
    for name, moment in (("window.from", start), ("window.to", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput({name: "must carry a time zone (RFC 3339)"})
    if end is not None and end > now + timedelta(days=1):
        raise InvalidInput({"window.to": "must not be more than a day ahead of now"})
    end = end or now
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise InvalidInput({"window.from": "must be before window.to"})
    if end - start > policy.retention or start < now - policy.retention - timedelta(minutes=1):
        days = policy.retention / timedelta(days=1)
        raise InvalidInput(
            {"window.from": f"statistics are kept for {days:g} days; choose a later start"}
        )
    return Window(start, end)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only administrators may read a model's statistics")


async def _model(uow: UnitOfWork, model_id: UUID) -> Model:
    [model] = await uow.models.get_many([model_id])
    if model is None:
        raise NotFound("Model", model_id)
    return model


async def _rows(uow: UnitOfWork, model_id: UUID, window: Window) -> list[Tally]:
    return await uow.monitoring.window_rows(model_id, minute_of(window.start), window.end)


async def model_stats(
    uow: UnitOfWork, principal: Principal, model: Model, window: Window
) -> ModelStats:
    require_admin(principal)
    layout = layout_of(model)
    async with uow:
        rows = await _rows(uow, model.id, window)
    total = merged(model.id, minute_of(window.start), rows)
    output = _sized(total.output, layout.output.size)
    return ModelStats(window, total, tuple(rows), bins(layout.output.labels(), output))


async def reference_of(
    uow: UnitOfWork, model: Model, layout: Layout, policy: MonitoringPolicy
) -> Profile | None:
    """The shipped profile, else the one kept from the first predictions, else one made
    now from the earliest rollups once they hold `reference_size` predictions."""
    shipped = shipped_profile(model, layout)
    if shipped is not None:
        return shipped
    kept = await uow.monitoring.get_profile(model.id)
    if kept is not None:
        return kept
    rows, seen = [], 0
    for row in await uow.monitoring.earliest(model.id, MAX_POINTS):
        rows.append(row)
        seen += row.predictions
        if seen >= policy.reference_size:
            return profile_from(layout, merged(model.id, row.minute, rows))
    return None


async def model_drift(
    uow: UnitOfWork,
    principal: Principal,
    model: Model,
    window: Window,
    policy: MonitoringPolicy,
) -> ModelDrift:
    require_admin(principal)
    layout = layout_of(model)
    async with uow:
        reference = await reference_of(uow, model, layout, policy)
        rows = await _rows(uow, model.id, window)
    return drift_of(layout, reference, merged(model.id, window.start, rows), window)


def drift_of(layout: Layout, reference: Profile | None, total: Tally, window: Window) -> ModelDrift:
    current = layout.split(_sized(total.features, layout.feature_width))
    features = tuple(
        feature_drift(
            axis.name,
            axis.labels(),
            current[axis.name],
            None if reference is None else reference.features.get(axis.name),
            is_numeric=axis.is_numeric,
        )
        for axis in layout.features
    )
    output = feature_drift(
        layout.output.name,
        layout.output.labels(),
        _sized(total.output, layout.output.size),
        None if reference is None else reference.output,
        is_numeric=layout.output.is_numeric,
    )
    drifted = sum(1 for f in features if f.status is DriftStatus.DRIFT)
    share = drifted / len(features) if features else 0.0
    status = worst([f.status for f in (*features, output)])
    return ModelDrift(window, status, share, features, output)


async def model_quality(
    uow: UnitOfWork, principal: Principal, model: Model, window: Window
) -> ModelQuality:
    require_admin(principal)
    layout = layout_of(model)
    async with uow:
        if layout.output.is_numeric:
            found = regressor_quality(
                await uow.feedback.value_errors(model.id, window.start, window.end)
            )
        else:
            found = classifier_quality(
                await uow.feedback.class_counts(model.id, window.start, window.end)
            )
    return ModelQuality(window, found)


def _sized(counts: tuple[int, ...], size: int) -> list[int]:
    return [*counts[:size], *([0] * (size - len(counts)))]


async def load_model(uow: UnitOfWork, model_id: UUID) -> Model:
    async with uow:
        return await _model(uow, model_id)
