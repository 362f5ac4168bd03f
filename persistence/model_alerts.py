"""Alert policies per model and the alerts raised and cleared."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.drift import DriftStatus
from domain.model_alerts import AlertKind, AlertPolicy, AlertState, ModelAlert
from domain.pagination import Page, PageRequest
from persistence.batching import Row, any_of, keyset_bounds, scan_order
from persistence.tables import model_alert_policies, model_alerts, users

_p, _a = model_alert_policies.c, model_alerts.c
_ALERT_LOCK = 27_0001  # the advisory lock namespace of model alert checks (issue 27)
_LIMITS = ("latency_p95_ms", "error_rate", "drift", "min_accuracy", "min_r2")
_ALERT_COLUMNS = (_a.id, _a.model_id, _a.kind, _a.state, _a.value, _a.threshold, _a.at)


def _policy(row: Row) -> AlertPolicy:
    model_id, latency, error_rate, drift, accuracy, r2 = row
    status = None if drift is None else DriftStatus(drift)
    return AlertPolicy(model_id, latency, error_rate, status, accuracy, r2)


def _alert(row: Row) -> ModelAlert:
    id_, model_id, kind, state, value, threshold, at = row
    return ModelAlert(id_, model_id, AlertKind(kind), AlertState(state), value, threshold, at)


class SqlModelAlertRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def policies_for(self, model_ids: Sequence[UUID]) -> list[AlertPolicy | None]:
        if not model_ids:
            return []
        statement = sa.select(_p.model_id, *(_p[n] for n in _LIMITS)).where(
            any_of(_p.model_id, model_ids)
        )
        found = {row[0]: _policy(row) for row in await self._conn.execute(statement)}
        return [found.get(i) for i in model_ids]

    async def watched(self) -> list[AlertPolicy]:
        watching = sa.or_(*(_p[n].is_not(None) for n in _LIMITS))
        statement = sa.select(_p.model_id, *(_p[n] for n in _LIMITS)).where(watching)
        return [_policy(row) for row in await self._conn.execute(statement)]

    async def save_policy(self, policy: AlertPolicy, now: datetime) -> None:
        values = {
            "model_id": policy.model_id,
            "latency_p95_ms": policy.latency_p95_ms,
            "error_rate": policy.error_rate,
            "drift": None if policy.drift is None else policy.drift.value,
            "min_accuracy": policy.min_accuracy,
            "min_r2": policy.min_r2,
            "updated_at": now,
        }
        fresh = insert(model_alert_policies).values(values)
        statement = fresh.on_conflict_do_update(
            index_elements=[_p.model_id],
            set_={n: fresh.excluded[n] for n in (*_LIMITS, "updated_at")},
        )
        await self._conn.execute(statement)

    async def add(self, alerts: Sequence[ModelAlert]) -> None:
        if not alerts:
            return
        rows = [
            {
                "id": a.id,
                "model_id": a.model_id,
                "kind": a.kind.value,
                "state": a.state.value,
                "value": a.value,
                "threshold": a.threshold,
                "at": a.at,
            }
            for a in alerts
        ]
        await self._conn.execute(sa.insert(model_alerts), rows)

    async def latest(self, model_id: UUID) -> dict[AlertKind, ModelAlert]:
        # Every process with workers checks alerts each minute: the model's alert state is
        # locked until this transaction ends, so two checkers never both raise (or clear).
        lock = sa.select(
            sa.func.pg_advisory_xact_lock(_ALERT_LOCK, sa.func.hashtext(str(model_id)))
        )
        await self._conn.execute(lock)
        statement = (
            sa.select(*_ALERT_COLUMNS)
            .ext(distinct_on(_a.kind))
            .where(_a.model_id == model_id)
            .order_by(_a.kind, _a.at.desc(), _a.id.desc())
        )
        return {(alert := _alert(row)).kind: alert for row in await self._conn.execute(statement)}

    async def get_many(self, ids: Sequence[UUID]) -> list[ModelAlert | None]:
        if not ids:
            return []
        statement = sa.select(*_ALERT_COLUMNS).where(any_of(_a.id, ids))
        found = {row[0]: _alert(row) for row in await self._conn.execute(statement)}
        return [found.get(i) for i in ids]

    async def page(self, model_id: UUID | None, request: PageRequest) -> Page[ModelAlert]:
        where = [] if model_id is None else [_a.model_id == model_id]
        statement = (
            sa.select(*_ALERT_COLUMNS)
            .where(*where, *keyset_bounds(model_alerts, request, "at"))
            .order_by(*scan_order(model_alerts, request, "at"))
            .limit(request.first + 1)
        )
        rows = [_alert(row) for row in await self._conn.execute(statement)]
        return Page.from_overfetch(rows, request)

    async def count(self, model_id: UUID | None) -> int:
        statement = sa.select(sa.func.count()).select_from(model_alerts)
        if model_id is not None:
            statement = statement.where(_a.model_id == model_id)
        return int((await self._conn.execute(statement)).scalar_one())

    async def admin_ids(self, admin_group: str) -> list[UUID]:
        statement = sa.select(users.c.id).where(
            users.c.is_active, sa.literal(admin_group) == sa.any_(users.c.groups)
        )
        return list((await self._conn.execute(statement)).scalars())
