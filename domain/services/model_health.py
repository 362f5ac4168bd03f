"""Each active model's health now, as plain numbers for the metrics (sampled each minute)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.drift import DriftStatus
from domain.ports import Clock, UnitOfWorkFactory
from domain.principal import Principal
from domain.services.model_alerts import ALERT_WINDOW, QUALITY_WINDOW
from domain.services.monitoring import (
    MonitoringPolicy,
    Window,
    model_drift,
    model_quality,
    model_stats,
)

# Drift status as a number (for alarms on "DRIFT or worse"); -1: not enough data.
DRIFT_LEVELS = {
    DriftStatus.INSUFFICIENT_DATA: -1,
    DriftStatus.OK: 0,
    DriftStatus.WARNING: 1,
    DriftStatus.DRIFT: 2,
}
_SYSTEM = Principal(uuid.UUID(int=0), "system", (), is_admin=True)


@dataclass(frozen=True, slots=True)
class ModelHealth:
    name: str
    version: str
    predictions_per_second: float  # over ALERT_WINDOW
    error_rate: float
    model_p95_seconds: float | None
    end_to_end_p95_seconds: float | None
    drift_level: int  # over QUALITY_WINDOW
    worst_psi: float | None
    accuracy: float | None  # over QUALITY_WINDOW, with feedback


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


async def model_health(
    uow: UnitOfWorkFactory, policy: MonitoringPolicy, *, clock: Clock
) -> list[ModelHealth]:
    now = clock()
    recent, hour = Window(now - ALERT_WINDOW, now), Window(now - QUALITY_WINDOW, now)
    async with uow() as reader:
        models = await reader.models.list_active()
    found = []
    for model in models:
        stats = await model_stats(uow(), _SYSTEM, model, recent)
        drift = await model_drift(uow(), _SYSTEM, model, hour, policy)
        quality = (await model_quality(uow(), _SYSTEM, model, hour)).quality
        psis = [f.psi for f in (*drift.features, drift.output) if f.psi is not None]
        found.append(
            ModelHealth(
                model.name,
                model.version,
                stats.throughput_per_second,
                stats.error_rate,
                _seconds(stats.model_latency.p95_ms),
                _seconds(stats.end_to_end_latency.p95_ms),
                DRIFT_LEVELS[drift.status],
                max(psis, default=None),
                quality.accuracy,
            )
        )
    return found
