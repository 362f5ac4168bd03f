"""Alert policies, and the check that raises a model alert once when a threshold is crossed
and clears it once when the value is back (run every minute by a background task).

Latency and error rate are read over the last ALERT_WINDOW; drift and quality over the last
QUALITY_WINDOW (drift needs enough inputs, quality enough labels). A value that cannot be
read (no traffic, no labels) changes nothing. Each change is recorded and told to every
active administrator as a MODEL_ALERT event (their webhooks and `modelAlertRaised`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from domain.drift import PSI_DRIFT, PSI_WARNING, DriftStatus
from domain.errors import InvalidInput, NotFound
from domain.events import EventType, NewEvent
from domain.ids import new_id, to_global_id
from domain.model_alerts import AlertKind, AlertPolicy, ModelAlert, Reading, changes
from domain.models import Model
from domain.monitoring import layout_of
from domain.pagination import Page, PageRequest
from domain.ports import Clock, UnitOfWork
from domain.principal import Principal
from domain.services.monitoring import (
    MonitoringPolicy,
    Window,
    model_drift,
    model_quality,
    model_stats,
    reference_of,
    require_admin,
)

ALERT_WINDOW = timedelta(minutes=5)
QUALITY_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    monitoring: MonitoringPolicy
    admin_group: str = "admin"


def checked_policy(policy: AlertPolicy) -> AlertPolicy:
    """BAD_USER_INPUT naming the field for a limit that cannot be met or is not a number."""
    problems = {}
    for name, value, low, high in (
        ("input.latencyP95Ms", policy.latency_p95_ms, 0.0, math.inf),
        ("input.errorRate", policy.error_rate, 0.0, 1.0),
        ("input.minAccuracy", policy.min_accuracy, 0.0, 1.0),
        ("input.minR2", policy.min_r2, -math.inf, 1.0),
    ):
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            problems[name] = f"must be a number from {low:g} to {high:g}"
    if policy.drift is DriftStatus.INSUFFICIENT_DATA:
        problems["input.drift"] = "must be OK, WARNING or DRIFT"
    if problems:
        raise InvalidInput(problems)
    return policy


async def set_alert_policy(
    uow: UnitOfWork, principal: Principal, policy: AlertPolicy, *, clock: Clock
) -> Model:
    require_admin(principal)
    checked_policy(policy)
    async with uow:
        [model] = await uow.models.get_many([policy.model_id])
        if model is None:
            raise NotFound("Model", policy.model_id)
        await uow.model_alerts.save_policy(policy, clock())
        await uow.commit()
    return model


async def alert_policies(
    uow: UnitOfWork, principal: Principal, model_ids: Sequence[UUID]
) -> list[AlertPolicy]:
    require_admin(principal)
    async with uow:
        found = await uow.model_alerts.policies_for(model_ids)
    return [p or AlertPolicy(i) for i, p in zip(model_ids, found, strict=True)]


async def list_alerts(
    uow: UnitOfWork, principal: Principal, model_id: UUID | None, request: PageRequest
) -> tuple[Page[ModelAlert], int]:
    require_admin(principal)
    async with uow:
        return (
            await uow.model_alerts.page(model_id, request),
            await uow.model_alerts.count(model_id),
        )


async def get_alerts(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[ModelAlert | None]:
    if not principal.is_admin:
        return [None] * len(ids)
    async with uow:
        return await uow.model_alerts.get_many(ids)


def alert_payload(alert: ModelAlert) -> dict[str, object]:
    return {
        "alertId": to_global_id("ModelAlert", alert.id),
        "modelId": to_global_id("Model", alert.model_id),
        "kind": alert.kind.value,
        "state": alert.state.value,
        "value": alert.value,
        "threshold": alert.threshold,
        "at": alert.at.isoformat(),
    }


async def check_alerts(
    uow: UnitOfWork, reads: UnitOfWork, settings: AlertSettings, *, clock: Clock
) -> list[ModelAlert]:
    """One pass over every watched model; the alerts recorded."""
    now = clock()
    async with reads:
        policies = await reads.model_alerts.watched()
        models = await reads.models.get_many([p.model_id for p in policies])
    recorded: list[ModelAlert] = []
    for policy, model in zip(policies, models, strict=True):
        if model is not None:
            readings = await _readings(reads, model, policy, settings.monitoring, now)
            recorded += await _record_changes(uow, model, readings, settings, now)
    return recorded


async def _readings(
    reads: UnitOfWork, model: Model, policy: AlertPolicy, settings: MonitoringPolicy, now: datetime
) -> list[Reading]:
    system = Principal(uuid.UUID(int=0), "system", (), is_admin=True)
    found: list[Reading] = []
    if policy.latency_p95_ms is not None or policy.error_rate is not None:
        stats = await model_stats(reads, system, model, Window(now - ALERT_WINDOW, now))
        p95 = stats.end_to_end_latency.p95_ms
        if policy.latency_p95_ms is not None and p95 is not None:
            limit = policy.latency_p95_ms
            found.append(Reading(AlertKind.LATENCY, p95, limit, p95 > limit))
        if policy.error_rate is not None and stats.total.predictions + stats.total.failures:
            rate, limit = stats.error_rate, policy.error_rate
            found.append(Reading(AlertKind.ERROR_RATE, rate, limit, rate > limit))
    window = Window(now - QUALITY_WINDOW, now)
    if policy.drift is not None:
        drift = await model_drift(reads, system, model, window, settings)
        if drift.status is not DriftStatus.INSUFFICIENT_DATA:
            worst_psi = max((f.psi or 0.0 for f in (*drift.features, drift.output)), default=0.0)
            limit = {DriftStatus.DRIFT: PSI_DRIFT, DriftStatus.WARNING: PSI_WARNING}.get(
                policy.drift, 0.0
            )
            is_crossed = drift.status.severity >= policy.drift.severity
            found.append(Reading(AlertKind.DRIFT, worst_psi, limit, is_crossed))
    if policy.min_accuracy is not None or policy.min_r2 is not None:
        quality = (await model_quality(reads, system, model, window)).quality
        pairs = ((quality.accuracy, policy.min_accuracy), (quality.r2, policy.min_r2))
        for value, floor in pairs:
            if value is not None and floor is not None:
                found.append(Reading(AlertKind.QUALITY, value, floor, value < floor))
                break
    return found


async def _record_changes(
    uow: UnitOfWork,
    model: Model,
    readings: list[Reading],
    settings: AlertSettings,
    now: datetime,
) -> list[ModelAlert]:
    async with uow:
        latest = await uow.model_alerts.latest(model.id)
        alerts = [
            ModelAlert(new_id(), model.id, r.kind, state, round(r.value, 6), r.threshold, now)
            for r, state in changes(readings, latest)
        ]
        if not alerts:
            return []
        await uow.model_alerts.add(alerts)
        admins = await uow.model_alerts.admin_ids(settings.admin_group)
        await uow.events.append(
            [
                NewEvent(EventType.MODEL_ALERT, admin, alert.id, alert_payload(alert))
                for alert in alerts
                for admin in admins
            ]
        )
        await uow.commit()
    return alerts


async def maintain(uow: UnitOfWork, settings: MonitoringPolicy, *, clock: Clock) -> int:
    """Keep what retention allows: first freeze the reference of each model that ships none
    and has enough predictions, since pruning removes the rows it is made of."""
    now = clock()
    async with uow:
        for model in await uow.models.list_active():
            layout = layout_of(model)
            reference = await reference_of(uow, model, layout, settings)
            if reference is not None and reference.source == "predictions":
                await uow.monitoring.save_profile(model.id, reference, now)
        pruned = await uow.monitoring.prune(now - settings.retention)
        await uow.commit()
    return pruned
