"""In-memory fakes of the domain ports: a unit of work over dict repositories, a blob store."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self, TypeVar
from uuid import UUID

from domain.api_keys import ApiKey
from domain.assets import Asset, AssetStatus
from domain.batches import Batch, WorkTimings
from domain.callbacks import CallbackDelivery
from domain.event_payloads import SubmissionChange, events_of
from domain.events import NewEvent
from domain.history import EVERY_SUBMISSION, SubmissionFilter
from domain.model_alerts import AlertPolicy, ModelAlert
from domain.models import Model, ModelDefinition
from domain.monitoring import Profile, Tally
from domain.pagination import Page, PageRequest, keyset_of
from domain.ports import LocalWorkers, PresignedUpload, QueueStats
from domain.principal import Identity
from domain.quality import Feedback
from domain.services.inference import began_changes
from domain.submissions import ClaimEnd, FinishedRun, Result, Submission, SubmissionStatus
from domain.users import User, UserFilter
from domain.webhooks import (
    DeliveryAttempt,
    DeliveryStatus,
    DueDelivery,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.unit.batch_fakes import FakeBatchRepository, FakeCallbackRepository
from tests.unit.fake_pages import page_in_order
from tests.unit.monitoring_fakes import (
    FakeFeedbackRepository,
    FakeModelAlertRepository,
    FakeMonitoringRepository,
)

T = TypeVar("T", User, Asset, Submission, WebhookDelivery)
Made = TypeVar("Made")  # what add_finished's `meanwhile` makes


class FakeClock:
    """A settable clock; each call returns the current time."""

    def __init__(self, now: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class QueueRow:
    """A submission with the queue columns the entity does not carry."""

    submission: Submission
    available_at: datetime
    lease_expires_at: datetime | None = None


@dataclass
class FakeData:
    """Everything stored; a unit of work snapshots it on enter and restores it on rollback."""

    users: dict[UUID, User] = field(default_factory=dict)
    subjects: dict[str, UUID] = field(default_factory=dict)
    assets: dict[UUID, Asset] = field(default_factory=dict)
    models: dict[UUID, Model] = field(default_factory=dict)
    submissions: dict[UUID, QueueRow] = field(default_factory=dict)
    submission_assets: dict[UUID, list[UUID]] = field(default_factory=dict)
    results: dict[UUID, Result] = field(default_factory=dict)
    events: list[NewEvent] = field(default_factory=list)
    endpoints: dict[UUID, WebhookEndpoint] = field(default_factory=dict)
    deliveries: dict[UUID, WebhookDelivery] = field(default_factory=dict)
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    batches: dict[UUID, Batch] = field(default_factory=dict)
    callback_secrets: dict[UUID, str] = field(default_factory=dict)
    callbacks: dict[UUID, CallbackDelivery] = field(default_factory=dict)
    api_keys: dict[UUID, tuple[ApiKey, bytes]] = field(default_factory=dict)
    blob_deletions: dict[str, datetime] = field(default_factory=dict)
    timings: dict[UUID, WorkTimings] = field(default_factory=dict)
    tallies: dict[tuple[UUID, datetime], Tally] = field(default_factory=dict)
    profiles: dict[UUID, Profile] = field(default_factory=dict)
    feedback: dict[UUID, Feedback] = field(default_factory=dict)
    policies: dict[UUID, AlertPolicy] = field(default_factory=dict)
    alerts: list[ModelAlert] = field(default_factory=list)


def _page(items: Iterable[T], request: PageRequest) -> Page[T]:
    return page_in_order(sorted(items, key=keyset_of), request)


def _matches(submission: Submission, where: SubmissionFilter) -> bool:
    created = submission.created_at
    return (
        (where.model_id is None or submission.model_id == where.model_id)
        and (where.created_after is None or created > where.created_after)
        and (where.created_before is None or created < where.created_before)
        and (where.metadata is None or where.metadata in submission.metadata)
    )


class FakeUserRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def get_by_subject(self, subject: str) -> User | None:
        known = self._data.subjects.get(subject)
        return None if known is None else self._data.users[known]

    async def upsert_from_identity(self, identity: Identity, now: datetime) -> User:
        known = self._data.subjects.get(identity.subject)
        if known is None:
            user = User(
                id=uuid.uuid4(),
                subject=identity.subject,
                email=identity.email,
                name=identity.name or identity.email.split("@")[0],
                language="en",
                is_active=True,
                groups=identity.groups,
                created_at=now,
                updated_at=now,
            )
            self._data.subjects[identity.subject] = user.id
            self._data.users[user.id] = user
            return user
        user = self._data.users[known]
        if (user.email, user.groups) != (identity.email, identity.groups):
            user = replace(user, email=identity.email, groups=identity.groups, updated_at=now)
            self._data.users[user.id] = user
        return user

    async def get_many(self, ids: Sequence[UUID]) -> list[User | None]:
        return [self._data.users.get(i) for i in ids]

    def _matching(self, user_filter: UserFilter) -> list[User]:
        needle = (user_filter.email_contains or "").lower()
        return [
            u
            for u in self._data.users.values()
            if needle in u.email.lower()
            and (user_filter.is_active is None or u.is_active == user_filter.is_active)
        ]

    async def list_page(self, request: PageRequest, user_filter: UserFilter) -> Page[User]:
        return _page(self._matching(user_filter), request)

    async def count(self, user_filter: UserFilter) -> int:
        return len(self._matching(user_filter))

    async def save(self, user: User) -> User:
        stored = self._data.users[user.id]
        saved = replace(
            stored,
            name=user.name,
            language=user.language,
            is_active=user.is_active,
            updated_at=user.updated_at,
        )
        self._data.users[user.id] = saved
        return saved


class FakeAssetRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def get_many(self, ids: Sequence[UUID]) -> list[Asset | None]:
        return [self._data.assets.get(i) for i in ids]

    async def add(self, asset: Asset) -> None:
        if asset.id in self._data.assets:
            raise ValueError(f"duplicate asset {asset.id}")
        self._data.assets[asset.id] = asset

    async def save(self, asset: Asset, *, expected: AssetStatus) -> Asset | None:
        stored = self._data.assets.get(asset.id)
        if stored is None or stored.status is not expected:
            return None
        saved = replace(stored, status=asset.status, updated_at=asset.updated_at)
        self._data.assets[asset.id] = saved
        return saved

    async def stale_uploads(self, now: datetime, limit: int) -> list[Asset]:
        stale = [
            a
            for a in self._data.assets.values()
            if a.status is AssetStatus.PENDING_UPLOAD
            and a.upload_expires_at is not None
            and a.upload_expires_at < now
        ]
        return sorted(stale, key=lambda a: (a.upload_expires_at, a.id))[:limit]

    async def get_by_object_key(self, object_key: str) -> Asset | None:
        return next((a for a in self._data.assets.values() if a.object_key == object_key), None)

    async def deleted_with_expired_grants(self, now: datetime, limit: int) -> list[Asset]:
        swept = [
            a
            for a in self._data.assets.values()
            if a.status is AssetStatus.DELETED
            and a.upload_expires_at is not None
            and a.upload_expires_at < now
        ]
        return sorted(swept, key=lambda a: (a.upload_expires_at, a.id))[:limit]

    async def forget_upload_grant(self, asset_id: UUID) -> None:
        asset = self._data.assets[asset_id]
        self._data.assets[asset_id] = replace(asset, upload_expires_at=None)

    def _owned(self, owner_id: UUID, status: AssetStatus | None) -> list[Asset]:
        return [
            a
            for a in self._data.assets.values()
            if a.owner_id == owner_id and (status is None or a.status is status)
        ]

    async def list_for_owners(
        self, owner_ids: Sequence[UUID], request: PageRequest, status: AssetStatus | None
    ) -> list[Page[Asset]]:
        return [_page(self._owned(o, status), request) for o in owner_ids]

    async def count_for_owners(
        self, owner_ids: Sequence[UUID], status: AssetStatus | None
    ) -> list[int]:
        return [len(self._owned(o, status)) for o in owner_ids]

    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Asset]]:
        return [
            [self._data.assets[a] for a in self._data.submission_assets.get(s, [])]
            for s in submission_ids
        ]


class FakeModelRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def get_many(self, ids: Sequence[UUID]) -> list[Model | None]:
        return [self._data.models.get(i) for i in ids]

    async def record_work(
        self,
        model_id: UUID,
        rows: int,
        took: timedelta,
        now: datetime,
        *,
        tally: Tally | None = None,
    ) -> None:
        known = self._data.timings.get(model_id)
        seconds = took.total_seconds()
        self._data.timings[model_id] = (
            WorkTimings.of_chunk(rows, seconds) if known is None else known.add(rows, seconds)
        )
        if tally is not None:
            await FakeMonitoringRepository(self._data).add_tally(tally)

    async def list_active(self) -> list[Model]:
        active = [m for m in self._data.models.values() if m.is_active]
        return sorted(active, key=lambda m: (m.name, m.version))

    async def register(self, definitions: Sequence[ModelDefinition]) -> list[Model]:
        registered = []
        for d in definitions:
            known = next(
                (
                    m
                    for m in self._data.models.values()
                    if (m.name, m.version) == (d.name, d.version)
                ),
                None,
            )
            model = Model(
                id=known.id if known else uuid.uuid4(),
                name=d.name,
                version=d.version,
                description=d.description,
                input_schema=d.input_schema,
                output_schema=d.output_schema,
                runtime=d.runtime,
                runtime_config=d.runtime_config,
                is_active=True,
                created_at=known.created_at if known else None,
            )
            self._data.models[model.id] = model
            registered.append(model)
        return registered


class FakeSubmissionRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def get_many(self, ids: Sequence[UUID]) -> list[Submission | None]:
        rows = [self._data.submissions.get(i) for i in ids]
        return [row.submission if row else None for row in rows]

    def _owned(
        self, owner_id: UUID, status: SubmissionStatus | None, where: SubmissionFilter
    ) -> list[Submission]:
        return [
            r.submission
            for r in self._data.submissions.values()
            if r.submission.owner_id == owner_id
            and (status is None or r.submission.status is status)
            and _matches(r.submission, where)
        ]

    async def list_for_owners(
        self,
        owner_ids: Sequence[UUID],
        request: PageRequest,
        status: SubmissionStatus | None,
        where: SubmissionFilter = EVERY_SUBMISSION,
    ) -> list[Page[Submission]]:
        return [_page(self._owned(o, status, where), request) for o in owner_ids]

    async def count_for_owners(
        self,
        owner_ids: Sequence[UUID],
        status: SubmissionStatus | None,
        where: SubmissionFilter = EVERY_SUBMISSION,
    ) -> list[int]:
        return [len(self._owned(o, status, where)) for o in owner_ids]

    async def add(
        self, submission: Submission, asset_ids: Sequence[UUID]
    ) -> tuple[Submission, bool]:
        if submission.idempotency_key is not None:
            for row in self._data.submissions.values():
                first = row.submission
                if (first.owner_id, first.idempotency_key) == (
                    submission.owner_id,
                    submission.idempotency_key,
                ):
                    return first, False
        self._data.submissions[submission.id] = QueueRow(submission, submission.created_at)
        if asset_ids:
            self._data.submission_assets[submission.id] = list(asset_ids)
        return submission, True

    async def add_many(
        self, submissions: Sequence[Submission], lease_until: datetime | None = None
    ) -> list[Submission]:
        due = min(s.created_at for s in submissions)
        for s in submissions:
            running = s.status is SubmissionStatus.RUNNING
            self._data.submissions[s.id] = QueueRow(s, due, lease_until if running else None)
        return list(submissions)

    async def add_finished(
        self,
        changes: Sequence[SubmissionChange],
        meanwhile: Callable[[], Made] | None = None,
    ) -> Made | None:
        made = None if meanwhile is None else meanwhile()
        await self.add_many([c.submission for c in changes])
        for change in changes:
            if change.result is not None:
                self._data.results[change.result.id] = change.result
        self._data.events.extend(events_of(changes))
        return made

    async def save_state(
        self, submission: Submission, *, expected: SubmissionStatus
    ) -> Submission | None:
        row = self._data.submissions.get(submission.id)
        if row is None or row.submission.status is not expected:
            return None
        row.submission = replace(
            row.submission,
            status=submission.status,
            error=submission.error,
            attempts=submission.attempts,
            updated_at=submission.updated_at,
        )
        row.available_at, row.lease_expires_at = submission.updated_at, None
        return row.submission

    async def claim(self, limit: int, now: datetime, lease_until: datetime) -> list[Submission]:
        def is_due(row: QueueRow) -> bool:
            status = row.submission.status
            if status is SubmissionStatus.PENDING:
                return row.available_at <= now
            lease = row.lease_expires_at
            return status is SubmissionStatus.RUNNING and lease is not None and lease < now

        due = sorted(
            (r for r in self._data.submissions.values() if is_due(r)),
            key=lambda r: (r.available_at, r.submission.created_at),
        )[:limit]
        for row in due:
            row.submission = replace(
                row.submission,
                status=SubmissionStatus.RUNNING,
                attempts=row.submission.attempts + 1,
                updated_at=now,
            )
            row.lease_expires_at = lease_until
        return sorted((r.submission for r in due), key=keyset_of)

    def _held(self, claimed: Submission) -> QueueRow | None:
        row = self._data.submissions.get(claimed.id)
        if row is None or row.submission.status is not SubmissionStatus.RUNNING:
            return None
        return row if row.submission.attempts == claimed.attempts else None

    async def finish_many(self, ends: Sequence[ClaimEnd], now: datetime) -> list[Submission]:
        written = []
        for end in ends:
            row = self._held(end.claimed)
            if row is None:
                continue
            row.submission = replace(
                row.submission, status=end.status, error=end.error, updated_at=now
            )
            row.lease_expires_at = None
            if end.available_at is not None:
                row.available_at = end.available_at
            written.append(row.submission)
        return written

    async def queue_stats(self, now: datetime) -> QueueStats:
        rows = [r.submission for r in self._data.submissions.values()]
        pending = [s for s in rows if s.status is SubmissionStatus.PENDING]
        running = [s for s in rows if s.status is SubmissionStatus.RUNNING]
        oldest = min((s.created_at for s in pending), default=None)
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        return QueueStats(
            pending=len(pending), running=len(running), oldest_pending_age_seconds=age
        )

    async def release_many(self, claimed: Sequence[Submission], now: datetime) -> None:
        for submission in claimed:
            row = self._held(submission)
            if row is None:
                continue
            row.submission = replace(
                row.submission,
                status=SubmissionStatus.PENDING,
                attempts=row.submission.attempts - 1,
                updated_at=now,
            )
            row.lease_expires_at = None

    async def add_finished_runs(
        self,
        runs: Sequence[FinishedRun],
        asset_ids: Mapping[UUID, Sequence[UUID]],
        *,
        model: Model | None = None,
        tally: Tally | None = None,
    ) -> set[UUID]:
        inserted: set[UUID] = set()
        if model is not None:
            now = self._data.models.get(model.id)
            if now is None or not now.is_active or now.updated_at != model.updated_at:
                return inserted
        for run in runs:
            submission = run.submission
            key = submission.idempotency_key
            if (
                key is not None
                and (await self.get_by_idempotency_keys([(submission.owner_id, key)]))[0]
            ):
                continue
            self._data.submissions[submission.id] = QueueRow(submission, submission.created_at)
            if asset_ids.get(submission.id):
                self._data.submission_assets[submission.id] = list(asset_ids[submission.id])
            if run.result is not None:
                self._data.results[run.result.id] = run.result
            self._data.events.extend(run.events)
            inserted.add(submission.id)
        if tally is not None and len(inserted) == len(runs):
            await FakeMonitoringRepository(self._data).add_tally(tally)
        return inserted

    async def get_by_idempotency_keys(
        self, keys: Sequence[tuple[UUID, str]]
    ) -> list[Submission | None]:
        found = {
            (r.submission.owner_id, r.submission.idempotency_key): r.submission
            for r in self._data.submissions.values()
            if r.submission.idempotency_key is not None
        }
        return [found.get(key) for key in keys]


class FakeResultRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def get_many(self, ids: Sequence[UUID]) -> list[Result | None]:
        return [self._data.results.get(i) for i in ids]

    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Result]]:
        ordered = sorted(self._data.results.values(), key=lambda r: (r.created_at, r.id))
        return [[r for r in ordered if r.submission_id == s] for s in submission_ids]

    async def add(self, result: Result) -> None:
        self._data.results[result.id] = result

    async def add_many(self, results: Sequence[Result]) -> None:
        for result in results:
            await self.add(result)


class FakeEventRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def append(self, events: Sequence[NewEvent]) -> None:
        self._data.events.extend(events)

    async def append_changes(self, changes: Sequence[SubmissionChange]) -> None:
        self._data.events.extend(events_of(changes))

    async def append_began(self, accepted: Sequence[Submission], started: datetime) -> None:
        await self.append_changes(began_changes(accepted, started))


class FakeWebhookRepository:
    """Endpoints and deliveries; the dispatcher's queue is left to the PostgreSQL tests."""

    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def get_endpoints(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookEndpoint | None]:
        found = [self._data.endpoints.get(i) for i in ids]
        return [e if e is not None and e.owner_id == owner_id else None for e in found]

    async def list_endpoints(self, owner_id: UUID) -> list[WebhookEndpoint]:
        owned = [e for e in self._data.endpoints.values() if e.owner_id == owner_id]
        return sorted(owned, key=lambda e: (e.created_at, e.id))

    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None:
        self._data.endpoints[endpoint.id] = endpoint

    async def save_endpoint(self, endpoint: WebhookEndpoint) -> WebhookEndpoint | None:
        stored = self._data.endpoints.get(endpoint.id)
        if stored is None or stored.owner_id != endpoint.owner_id:
            return None
        self._data.endpoints[endpoint.id] = endpoint
        return endpoint

    async def delete_endpoint(self, owner_id: UUID, endpoint_id: UUID) -> bool:
        stored = self._data.endpoints.get(endpoint_id)
        if stored is None or stored.owner_id != owner_id:
            return False
        del self._data.endpoints[endpoint_id]
        for delivery in [d for d in self._data.deliveries.values() if d.endpoint_id == endpoint_id]:
            del self._data.deliveries[delivery.id]
        return True

    async def get_deliveries(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookDelivery | None]:
        found = [self._data.deliveries.get(i) for i in ids]
        return [d if d is not None and d.owner_id == owner_id else None for d in found]

    def _of(self, endpoint_id: UUID) -> list[WebhookDelivery]:
        return [d for d in self._data.deliveries.values() if d.endpoint_id == endpoint_id]

    async def list_deliveries_for_endpoints(
        self, endpoint_ids: Sequence[UUID], request: PageRequest
    ) -> list[Page[WebhookDelivery]]:
        return [_page(self._of(e), request) for e in endpoint_ids]

    async def count_deliveries_for_endpoints(self, endpoint_ids: Sequence[UUID]) -> list[int]:
        return [len(self._of(e)) for e in endpoint_ids]

    async def requeue_delivery(
        self, delivery: WebhookDelivery, *, expected: DeliveryStatus, now: datetime
    ) -> WebhookDelivery | None:
        stored = self._data.deliveries.get(delivery.id)
        if stored is None or stored.status is not expected:
            return None
        requeued = replace(
            stored, status=DeliveryStatus.PENDING, next_attempt_at=delivery.next_attempt_at
        )
        self._data.deliveries[delivery.id] = requeued
        return requeued

    async def fan_out(self, limit: int, now: datetime, gap_grace: timedelta) -> int:
        raise NotImplementedError("the outbox fan-out is tested against PostgreSQL")

    async def claim_deliveries(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[DueDelivery]:
        raise NotImplementedError("the delivery queue is tested against PostgreSQL")

    async def finish_attempt(
        self, claimed: WebhookDelivery, updated: WebhookDelivery, attempt: DeliveryAttempt
    ) -> bool:
        raise NotImplementedError("the delivery queue is tested against PostgreSQL")

    async def release(self, claimed: WebhookDelivery) -> None:
        raise NotImplementedError("the delivery queue is tested against PostgreSQL")

    async def attempts_for(self, delivery_id: UUID) -> list[DeliveryAttempt]:
        found = [a for a in self._data.attempts if a.delivery_id == delivery_id]
        return sorted(found, key=lambda a: a.attempt)

    async def count_deliveries_by_status(self) -> dict[DeliveryStatus, int]:
        counts = dict.fromkeys(DeliveryStatus, 0)
        for delivery in self._data.deliveries.values():
            counts[delivery.status] += 1
        return counts


class FakeApiKeyRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def add(self, key: ApiKey, secret_hash: bytes) -> None:
        self._data.api_keys[key.id] = (key, secret_hash)

    async def get(self, key_id: UUID) -> ApiKey | None:
        found = self._data.api_keys.get(key_id)
        return None if found is None else found[0]

    async def by_hash(self, secret_hash: bytes) -> ApiKey | None:
        return next((k for k, h in self._data.api_keys.values() if h == secret_hash), None)

    async def list_for_owner(self, owner_id: UUID) -> list[ApiKey]:
        keys = [k for k, _ in self._data.api_keys.values() if k.owner_id == owner_id]
        return sorted(keys, key=keyset_of, reverse=True)

    async def save_revoked(self, key: ApiKey) -> None:
        self._data.api_keys[key.id] = (key, self._data.api_keys[key.id][1])

    async def touch(self, key_id: UUID, now: datetime) -> None:
        key, digest = self._data.api_keys[key_id]
        if key.is_due_for_touch(now):
            self._data.api_keys[key_id] = (replace(key, last_used_at=now), digest)


class FakeAccountRepository:
    """Erasure over FakeData: what the SQL one deletes, in the fake's terms."""

    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def erase(self, user_id: UUID, now: datetime) -> int:
        data = self._data
        owned = [a for a in data.assets.values() if a.owner_id == user_id]
        for asset in owned:
            data.blob_deletions.setdefault(asset.object_key, now)
            del data.assets[asset.id]
        for sid in [s for s, r in data.submissions.items() if r.submission.owner_id == user_id]:
            del data.submissions[sid]
        data.results = {k: r for k, r in data.results.items() if r.owner_id != user_id}
        data.endpoints = {k: e for k, e in data.endpoints.items() if e.owner_id != user_id}
        data.api_keys = {k: v for k, v in data.api_keys.items() if v[0].owner_id != user_id}
        data.events = [e for e in data.events if e.owner_id != user_id]
        user = data.users.pop(user_id)
        data.subjects.pop(user.subject, None)
        return len(owned)

    async def reactivate(self, user_id: UUID, now: datetime) -> User | None:
        user = self._data.users.get(user_id)
        if user is None:
            return None
        self._data.users[user_id] = replace(user, is_active=True, updated_at=now)
        return self._data.users[user_id]


class FakeBlobDeletionRepository:
    def __init__(self, data: FakeData) -> None:
        self._data = data

    async def due(self, now: datetime, limit: int) -> list[str]:
        return [k for k, at in self._data.blob_deletions.items() if at <= now][:limit]

    async def forget(self, object_keys: Sequence[str], now: datetime) -> None:
        for key in object_keys:
            self._data.blob_deletions.pop(key, None)

    async def postpone(self, object_key: str, until: datetime, error: str) -> None:
        self._data.blob_deletions[object_key] = until

    async def retire_assets(
        self, created_before: datetime, now: datetime, limit: int
    ) -> list[Asset]:
        live = [
            a
            for a in self._data.assets.values()
            if a.status is not AssetStatus.DELETED and a.created_at < created_before
        ]
        retired = []
        for asset in sorted(live, key=keyset_of)[:limit]:
            gone = replace(
                asset, status=AssetStatus.DELETED, upload_expires_at=None, updated_at=now
            )
            self._data.assets[asset.id] = gone
            self._data.blob_deletions.setdefault(asset.object_key, now)
            retired.append(gone)
        return retired


class FakeUnitOfWork:
    """One 'transaction' over FakeData: rolled back on exit unless committed."""

    def __init__(self, data: FakeData | None = None) -> None:
        self.data = data if data is not None else FakeData()
        self.commits = 0
        self.autocommits = False
        self._snapshot: FakeData | None = None
        self.users = FakeUserRepository(self.data)
        self.assets = FakeAssetRepository(self.data)
        self.models = FakeModelRepository(self.data)
        self.submissions = FakeSubmissionRepository(self.data)
        self.results = FakeResultRepository(self.data)
        self.events = FakeEventRepository(self.data)
        self.webhooks = FakeWebhookRepository(self.data)
        self.batches = FakeBatchRepository(self.data)
        self.callbacks = FakeCallbackRepository(self.data)
        self.api_keys = FakeApiKeyRepository(self.data)
        self.accounts = FakeAccountRepository(self.data)
        self.blob_deletions = FakeBlobDeletionRepository(self.data)
        self.monitoring = FakeMonitoringRepository(self.data)
        self.feedback = FakeFeedbackRepository(self.data)
        self.model_alerts = FakeModelAlertRepository(self.data)
        self.local_workers: LocalWorkers | None = None
        self._depth = 0

    async def __aenter__(self) -> Self:
        if self._snapshot is not None:
            self._depth += 1  # joins the open transaction, as the port says
            return self
        self._snapshot = copy.deepcopy(self.data)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._depth:
            self._depth -= 1
            return
        if self._snapshot is not None and not self.autocommits:
            await self.rollback()
        self._snapshot = None

    def autocommit(self) -> None:
        """What each write did stays, whatever happens after it (statements commit alone)."""
        self.autocommits = True

    async def commit(self) -> None:
        if self._snapshot is None:
            raise RuntimeError("commit outside the unit of work")
        self.commits += 1
        self._snapshot = copy.deepcopy(self.data)

    async def rollback(self) -> None:
        if self._snapshot is None:
            return
        # Restore in place: the repositories hold references to self.data.
        for name in FakeData.__dataclass_fields__:
            setattr(self.data, name, getattr(self._snapshot, name))
        self._snapshot = copy.deepcopy(self.data)


def uow_factory(data: FakeData) -> Callable[[], FakeUnitOfWork]:
    """Fresh units of work over the same data, as the app's factory gives."""
    return lambda: FakeUnitOfWork(data)


class FakeBlobStore:
    """Blobs as bytes in a dict; presigned URLs are fake but carry the key."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.confirmed: list[str] = []

    async def presign_upload(
        self, key: str, *, content_type: str, size_bytes: int, expires_in: int
    ) -> PresignedUpload:
        return PresignedUpload(
            url=f"https://blobs.test/{key}?method=PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size_bytes)},
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        )

    async def presign_download(self, key: str, *, expires_in: int, file_name: str) -> str:
        return f"https://blobs.test/{key}?method=GET"

    async def size_of(self, key: str) -> int | None:
        blob = self.blobs.get(key)
        return None if blob is None else len(blob)

    async def confirm(self, key: str) -> None:
        self.confirmed.append(key)

    async def delete(self, key: str) -> None:
        self.blobs.pop(key, None)
        self.deleted.append(key)

    async def check(self) -> None:
        return None


@dataclass
class FakeOperations:
    """An in-memory PersistedOperations that counts its lookups."""

    documents: dict[str, str] = field(default_factory=dict)
    trusted: set[str] = field(default_factory=set)
    gets: int = 0
    registered_by: dict[str, UUID] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)  # sha256 -> tick of its last use

    async def get(self, sha256: str) -> str | None:
        self.gets += 1
        if sha256 in self.documents:
            self.used[sha256] = len(self.used) + self.gets
        return self.documents.get(sha256)

    async def put(
        self,
        sha256: str,
        document: str,
        trusted: bool = False,
        *,
        registered_by: UUID | None = None,
        quota: int | None = None,
    ) -> None:
        if sha256 not in self.documents:
            self.documents[sha256] = document
            self.used[sha256] = len(self.used) + self.gets
            if registered_by is not None and not trusted:
                self.registered_by[sha256] = registered_by
        if trusted:
            self.trusted.add(sha256)
        if registered_by is not None and quota is not None:
            mine = [h for h, who in self.registered_by.items() if who == registered_by]
            for old in sorted(mine, key=self.used.__getitem__, reverse=True)[quota:]:
                if old not in self.trusted:
                    del self.documents[old], self.registered_by[old]

    async def is_trusted(self, sha256: str) -> bool:
        return sha256 in self.trusted
