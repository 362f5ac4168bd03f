"""Ports: the Protocols that adapters implement and services depend on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, TypeVar, runtime_checkable
from uuid import UUID

from domain.api_keys import ApiKeyRepository
from domain.assets import Asset, AssetStatus
from domain.batches import Batch, Throughput
from domain.callbacks import CallbackDelivery, DueCallback
from domain.event_payloads import SubmissionChange
from domain.events import NewEvent
from domain.history import SubmissionFilter
from domain.models import JSONValue, Model, ModelDefinition, ModelFailure
from domain.monitoring import Tally
from domain.monitoring_ports import (
    FeedbackRepository,
    ModelAlertRepository,
    MonitoringRepository,
)
from domain.pagination import Page, PageRequest
from domain.principal import Identity
from domain.submissions import (
    ClaimEnd,
    FinishedRun,
    Prediction,
    Result,
    Submission,
    SubmissionStatus,
)
from domain.users import User, UserFilter
from domain.webhooks import (
    DeliveryAttempt,
    DeliveryOutcome,
    DeliveryStatus,
    DueDelivery,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)

Made = TypeVar("Made")  # what add_finished's `meanwhile` makes

Clock = Callable[[], datetime]


class UserRepository(Protocol):
    async def upsert_from_identity(self, identity: Identity, now: datetime) -> User:
        """Insert the user on first sight, refresh profile claims when they changed."""
        ...

    async def get_by_subject(self, subject: str) -> User | None: ...
    async def get_many(self, ids: Sequence[UUID]) -> list[User | None]: ...
    async def list_page(self, request: PageRequest, user_filter: UserFilter) -> Page[User]: ...
    async def count(self, user_filter: UserFilter) -> int: ...
    async def save(self, user: User) -> User: ...


class AssetRepository(Protocol):
    async def get_many(self, ids: Sequence[UUID]) -> list[Asset | None]: ...
    async def add(self, asset: Asset) -> None: ...
    async def save(self, asset: Asset, *, expected: AssetStatus) -> Asset | None:
        """Write status and times if the row is still in `expected`; else None."""
        ...

    async def stale_uploads(self, now: datetime, limit: int) -> list[Asset]:
        """PENDING_UPLOAD assets whose upload URL expired before `now`."""
        ...

    async def get_by_object_key(self, object_key: str) -> Asset | None: ...
    async def deleted_with_expired_grants(self, now: datetime, limit: int) -> list[Asset]:
        """DELETED assets whose upload URL expired before `now` and whose bytes were not
        swept since (their upload_expires_at is still set)."""
        ...

    async def forget_upload_grant(self, asset_id: UUID) -> None:
        """Clear upload_expires_at: the asset's bytes were swept after its URL expired."""
        ...

    async def list_for_owners(
        self, owner_ids: Sequence[UUID], request: PageRequest, status: AssetStatus | None
    ) -> list[Page[Asset]]: ...
    async def count_for_owners(
        self, owner_ids: Sequence[UUID], status: AssetStatus | None
    ) -> list[int]: ...
    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Asset]]: ...


class ModelRepository(Protocol):
    async def get_many(self, ids: Sequence[UUID]) -> list[Model | None]: ...
    async def list_active(self) -> list[Model]: ...
    async def register(self, definitions: Sequence[ModelDefinition]) -> list[Model]:
        """Insert or refresh each (name, version); registered models become active."""
        ...

    async def record_work(
        self,
        model_id: UUID,
        rows: int,
        took: timedelta,
        now: datetime,
        *,
        tally: Tally | None = None,
    ) -> None:
        """Add one chunk the workers ran to the model's timings (see WorkTimings.add) and,
        in the same statement, `tally` to its rollup."""
        ...


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    running: int
    oldest_pending_age_seconds: float


class SubmissionRepository(Protocol):
    async def get_many(self, ids: Sequence[UUID]) -> list[Submission | None]: ...
    async def list_for_owners(
        self,
        owner_ids: Sequence[UUID],
        request: PageRequest,
        status: SubmissionStatus | None,
        where: SubmissionFilter = ...,
    ) -> list[Page[Submission]]: ...
    async def count_for_owners(
        self,
        owner_ids: Sequence[UUID],
        status: SubmissionStatus | None,
        where: SubmissionFilter = ...,
    ) -> list[int]: ...
    async def add(
        self, submission: Submission, asset_ids: Sequence[UUID]
    ) -> tuple[Submission, bool]:
        """Insert; with an idempotency key already used by the owner, return that one, False."""
        ...

    async def add_many(
        self, submissions: Sequence[Submission], lease_until: datetime | None = None
    ) -> list[Submission]:
        """Store a batch; its RUNNING rows (claimed at accept) are leased until `lease_until`."""
        ...

    async def add_finished(
        self,
        changes: Sequence[SubmissionChange],
        meanwhile: Callable[[], Made] | None = None,
    ) -> Made | None:
        """Store submissions run before they were stored, as the changes end them: each
        submission, its result, then `event_payloads.events_of(changes)` in that order (as
        add_many, ResultRepository.add_many and EventRepository.append_changes would; a
        store may make each statement ready while the one before is written). `meanwhile`
        (the caller's own work) is called once while the store writes; returns its value."""
        ...

    async def save_state(
        self, submission: Submission, *, expected: SubmissionStatus
    ) -> Submission | None:
        """Write status, error and attempts if the row is still in `expected`; else None."""
        ...

    async def claim(self, limit: int, now: datetime, lease_until: datetime) -> list[Submission]:
        """Take up to `limit` due PENDING rows, or RUNNING rows whose lease expired, as RUNNING."""
        ...

    async def finish_many(self, ends: Sequence[ClaimEnd], now: datetime) -> list[Submission]:
        """Write each claim's end in one statement, where the claim (same attempt, still
        RUNNING) holds the row; the rows written, as they are now."""
        ...

    async def queue_stats(self, now: datetime) -> QueueStats: ...

    async def release_many(self, claimed: Sequence[Submission], now: datetime) -> None:
        """Give back unstarted claims: PENDING again, the attempt not counted."""
        ...

    async def add_finished_runs(
        self,
        runs: Sequence[FinishedRun],
        asset_ids: Mapping[UUID, Sequence[UUID]],
        *,
        model: Model | None = None,
        tally: Tally | None = None,
    ) -> set[UUID]:
        """Insert submissions already finished with their results, events and assets, in
        one statement, leaving out each whose owner used its idempotency key before, with
        its result, events and assets; the ids inserted. With `model`, nothing unless that
        model is still active and as it was read (its updated_at unchanged). With `tally`
        (of every run), the same statement adds it to the model's rollup, but only if
        every run was inserted: the caller adds the kept runs' tally otherwise."""
        ...

    async def get_by_idempotency_keys(
        self, keys: Sequence[tuple[UUID, str]]
    ) -> list[Submission | None]:
        """The submission each (owner id, idempotency key) names, in key order."""
        ...


class ResultRepository(Protocol):
    async def get_many(self, ids: Sequence[UUID]) -> list[Result | None]: ...
    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Result]]: ...
    async def add(self, result: Result) -> None: ...
    async def add_many(self, results: Sequence[Result]) -> None: ...


class EventRepository(Protocol):
    async def append(self, events: Sequence[NewEvent]) -> None:
        """Add to the outbox in the current transaction; listeners hear of it after commit."""
        ...

    async def append_changes(self, changes: Sequence[SubmissionChange]) -> None:
        """Append `event_payloads.events_of(changes)` as append would, in that order; the
        store may build the payloads itself (a batch's thousands, without a dict each)."""
        ...

    async def append_began(self, accepted: Sequence[Submission], started: datetime) -> None:
        """Append what append_changes(services.inference.began_changes(accepted, started))
        would: each submission's SUBMISSION_CREATED as accepted, then each one's
        SUBMISSION_UPDATED as RUNNING from `started`. The store may write them without the
        RUNNING copies and the changes (a batch's 2,000 events, made before its run)."""
        ...


class AccountRepository(Protocol):
    async def erase(self, user_id: UUID, now: datetime) -> int:
        """Delete the user's data (submissions, results, assets, webhook endpoints, API keys,
        events) and empty the user row, freeing its identity; queue the assets' bytes for
        deletion. How many objects were queued."""
        ...

    async def reactivate(self, user_id: UUID, now: datetime) -> User | None:
        """Set is_active again; None when no such (unerased) user."""
        ...


class BlobDeletionRepository(Protocol):
    """Stored bytes to remove, queued in the transaction that removed their rows."""

    async def due(self, now: datetime, limit: int) -> list[str]:
        """Object keys due for an attempt, locked (SKIP LOCKED) until the transaction ends."""
        ...

    async def forget(self, object_keys: Sequence[str], now: datetime) -> None:
        """Done with these keys, unless an upload URL could still store bytes after `now`:
        then they are due again once it has expired."""
        ...

    async def postpone(self, object_key: str, until: datetime, error: str) -> None: ...
    async def retire_assets(
        self, created_before: datetime, now: datetime, limit: int
    ) -> list[Asset]:
        """Mark live assets created before `created_before` DELETED and queue their bytes."""
        ...


class UnitOfWork(Protocol):
    """One transaction; repositories are valid between enter and exit.

    Entering an entered unit of work again joins its transaction; the outermost exit ends it.
    """

    @property
    def users(self) -> UserRepository: ...
    @property
    def assets(self) -> AssetRepository: ...
    @property
    def models(self) -> ModelRepository: ...
    @property
    def submissions(self) -> SubmissionRepository: ...
    @property
    def results(self) -> ResultRepository: ...
    @property
    def events(self) -> EventRepository: ...
    @property
    def webhooks(self) -> WebhookRepository: ...
    @property
    def batches(self) -> BatchRepository: ...
    @property
    def callbacks(self) -> CallbackRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def accounts(self) -> AccountRepository: ...
    @property
    def blob_deletions(self) -> BlobDeletionRepository: ...
    @property
    def monitoring(self) -> MonitoringRepository: ...
    @property
    def feedback(self) -> FeedbackRepository: ...
    @property
    def model_alerts(self) -> ModelAlertRepository: ...

    @property
    def local_workers(self) -> LocalWorkers | None:
        """This process's claim loops, when it runs any: work it commits can go to them."""
        ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def autocommit(self) -> None:
        """Each statement from here on commits as it runs, with no transaction block (no
        BEGIN or COMMIT round trips): for a use case that writes a single statement, which
        is atomic on its own. Call it before the first statement; commit() then only tells
        listeners what was written."""
        ...

    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


class LocalWorkers(Protocol):
    """The claim loops of the process that accepts a batch (claim at accept): a batch stored
    already claimed by this process is handed to them in memory, with no claim statement.
    A loop is offered work only while it idles, so the fair queue still serves everyone
    else first whenever this process is busy."""

    def reserve(self, runtime: str) -> timedelta | None:
        """Hold an idle loop for work on `runtime`: the lease to write, or None (no loop idle
        here, or that runtime is not served here)."""
        ...

    def hand(
        self,
        claimed: Sequence[Submission],
        started: datetime,
        running: Awaitable[Sequence[Prediction | ModelFailure]] | None = None,
    ) -> None:
        """Give the held loop what the committed transaction claimed (`started`: when);
        `running`: the claim's run, already begun (BatchRunner), to record instead of
        running it again."""
        ...

    def release(self) -> None:
        """Give the held loop back unused (the transaction did not commit)."""
        ...


class BatchRunner(Protocol):
    """Runs a batch just accepted in the process that accepted it (runInference's runtimes
    and checks), while the accept waits up to `inline_seconds` for it."""

    @property
    def inline_seconds(self) -> float: ...

    def start_batch(
        self, model: Model, batch: Sequence[Submission]
    ) -> Awaitable[Sequence[Prediction | ModelFailure]] | None:
        """The batch's run, begun now: each input's outcome, in order; None when it is not
        run here (no runtime for the model here, or turned off)."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Identity:
        """Return the identity in a valid token; raise Unauthenticated otherwise."""
        ...


JSONObject = Mapping[str, object]


class ModelRuntime(Protocol):
    """Runs predictions for models of one runtime kind ("local", "sagemaker")."""

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        """One Prediction per input, in order; raise ModelFailure for a failed call."""
        ...


@runtime_checkable
class LoadsAhead(Protocol):
    """A runtime that can make a model ready before its first prediction (a local artifact
    loaded into memory); one that cannot (a remote endpoint) does not implement it."""

    async def load(self, model: Model) -> None:
        """Make `model` ready to predict; raise ModelFailure when it cannot be."""
        ...


class ServingObserver(Protocol):
    """Where the synchronous path reports its timings (seconds), by model name and version."""

    def waited(self, name: str, version: str, seconds: float) -> None:
        """One call's time queued in the batcher before its group started."""
        ...

    def ran(self, name: str, version: str, size: int, seconds: float) -> None:
        """One group's predict call: how many inputs, how long the model took."""
        ...

    def answered(self, name: str, version: str, seconds: float) -> None:
        """One call from its arrival to its durable answer."""
        ...


class ModelSource(Protocol):
    def definitions(self) -> list[ModelDefinition]:
        """The models a model directory declares (building the defaults on first run)."""
        ...


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    url: str
    headers: dict[str, str]
    expires_at: datetime


class BlobStore(Protocol):
    async def presign_upload(
        self, key: str, *, content_type: str, size_bytes: int, expires_in: int
    ) -> PresignedUpload:
        """A URL to PUT exactly size_bytes of content_type at key, with the headers it needs."""
        ...

    async def presign_download(self, key: str, *, expires_in: int, file_name: str) -> str: ...

    async def size_of(self, key: str) -> int | None:
        """The stored object's size in bytes, or None when nothing is stored at key."""
        ...

    async def confirm(self, key: str) -> None:
        """Mark the stored object as a completed upload (so storage lifecycle rules keep it)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def check(self) -> None:
        """Raise when the store is unreachable (for readiness)."""
        ...


class WebhookRepository(Protocol):
    """Endpoints (always scoped to their owner), their deliveries, and the dispatcher's queue."""

    async def get_endpoints(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookEndpoint | None]: ...
    async def list_endpoints(self, owner_id: UUID) -> list[WebhookEndpoint]: ...
    async def add_endpoint(self, endpoint: WebhookEndpoint) -> None: ...
    async def save_endpoint(self, endpoint: WebhookEndpoint) -> WebhookEndpoint | None: ...
    async def delete_endpoint(self, owner_id: UUID, endpoint_id: UUID) -> bool: ...

    async def get_deliveries(
        self, owner_id: UUID, ids: Sequence[UUID]
    ) -> list[WebhookDelivery | None]: ...
    async def list_deliveries_for_endpoints(
        self, endpoint_ids: Sequence[UUID], request: PageRequest
    ) -> list[Page[WebhookDelivery]]: ...
    async def count_deliveries_for_endpoints(self, endpoint_ids: Sequence[UUID]) -> list[int]: ...
    async def requeue_delivery(
        self, delivery: WebhookDelivery, *, expected: DeliveryStatus, now: datetime
    ) -> WebhookDelivery | None:
        """PENDING and due at delivery.next_attempt_at if the row is still `expected`; else None."""
        ...

    async def fan_out(self, limit: int, now: datetime, gap_grace: timedelta) -> int:
        """Turn up to `limit` events after the outbox cursor into deliveries; advance the cursor.

        Returns how many events were looked at. Idempotent per (endpoint, event).
        """
        ...

    async def claim_deliveries(
        self, limit: int, now: datetime, lease_until: datetime
    ) -> list[DueDelivery]:
        """Take due deliveries of active endpoints, counting the attempt, leased until then."""
        ...

    async def finish_attempt(
        self, claimed: WebhookDelivery, updated: WebhookDelivery, attempt: DeliveryAttempt
    ) -> bool:
        """Record the attempt; write `updated` state if this claim still holds the row."""
        ...

    async def release(self, claimed: WebhookDelivery) -> None:
        """Give back an unsent claim: the attempt not counted, due again at once."""
        ...

    async def attempts_for(self, delivery_id: UUID) -> list[DeliveryAttempt]: ...

    async def count_deliveries_by_status(self) -> dict[DeliveryStatus, int]:
        """How many deliveries are in each status (for /metrics)."""
        ...


class UrlGuard(Protocol):
    async def check(self, url: str) -> None:
        """Raise InvalidInput({"input.url": ...}) when the URL points where webhooks may not go."""
        ...


class WebhookSender(Protocol):
    async def send(self, message: WebhookMessage) -> DeliveryOutcome:
        """POST the signed message once; failures are outcomes, not exceptions."""
        ...


class PersistedOperations(Protocol):
    """GraphQL documents known by the SHA-256 of their text; trusted ones were registered."""

    async def get(self, sha256: str) -> str | None:
        """The document, marked as used now (least recently used ones are pruned first)."""
        ...

    async def put(
        self,
        sha256: str,
        document: str,
        trusted: bool = False,
        *,
        registered_by: UUID | None = None,
        quota: int | None = None,
    ) -> None:
        """Store the document (kept if present); `trusted` marks it trusted either way.
        With `registered_by` and `quota`, that caller's least recently used documents beyond
        the quota (trusted ones aside) are deleted."""
        ...

    async def is_trusted(self, sha256: str) -> bool: ...


class BatchRepository(Protocol):
    async def add(self, batch: Batch) -> None: ...
    async def get_many(self, ids: Sequence[UUID]) -> list[Batch | None]: ...
    async def list_for_owner(self, owner_id: UUID, request: PageRequest) -> Page[Batch]:
        """Newest first."""
        ...

    async def count_for_owner(self, owner_id: UUID) -> int: ...
    async def list_submissions(
        self, batch_ids: Sequence[UUID], request: PageRequest, status: SubmissionStatus | None
    ) -> list[Page[Submission]]:
        """A page per batch, in input order."""
        ...

    async def count_submissions(
        self, batch_ids: Sequence[UUID], status: SubmissionStatus | None
    ) -> list[int]: ...
    async def cancel(self, batch: Batch, now: datetime) -> list[Submission] | None:
        """Mark the batch cancelled and its PENDING submissions CANCELLED; return those.
        None when the batch was cancelled or completed meanwhile."""
        ...

    async def settle(self, batch_ids: Sequence[UUID], now: datetime) -> list[Batch]:
        """Lock the batches and mark those with every submission finished completed;
        return the ones completed now (each exactly once, whichever transaction gets there)."""
        ...

    async def reopen(self, batch_id: UUID, now: datetime) -> None:
        """A submission of it was retried: not completed any more."""
        ...

    async def throughput(self, batch: Batch) -> Throughput:
        """The model's PENDING work created before the batch (not the batch's own), and the
        model's measured timings."""
        ...


class CallbackRepository(Protocol):
    async def has_secret(self, user_id: UUID) -> bool: ...
    async def set_secret(self, user_id: UUID, secret: str, now: datetime) -> None: ...
    async def for_subject(self, subject_id: UUID) -> list[CallbackDelivery]: ...
    async def claim(self, limit: int, now: datetime, lease_until: datetime) -> list[DueCallback]:
        """Due callbacks with an expired or no lease; attempts + 1, leased until lease_until."""
        ...

    async def finish_attempt(self, claimed: CallbackDelivery, updated: CallbackDelivery) -> bool:
        """Record the outcome unless the claim was lost (claimed again since)."""
        ...

    async def release(self, claimed: CallbackDelivery) -> None: ...
    async def count_by_status(self) -> dict[DeliveryStatus, int]: ...


@dataclass(frozen=True)
class BudgetCharge:
    """What one process spent from one caller's bucket since it last settled (negative: a
    refund), with the bucket's policy so the store can refill it."""

    bucket: str
    key: str
    spent: float
    per_second: float
    burst: float


class BudgetStore(Protocol):
    """Token buckets that every process shares. Each charge is applied atomically: the bucket
    refills at `per_second` up to `burst` since it was last charged (a bucket never seen is
    full), then `spent` is taken, into debt if need be. Returns each bucket's level after its
    charge, in the charges' order."""

    async def settle(self, charges: Sequence[BudgetCharge]) -> list[float]: ...
    async def close(self) -> None: ...
