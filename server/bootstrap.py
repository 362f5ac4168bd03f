"""The composition root: settings choose the adapters, which are wired into the application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from auth.api_keys import Sha256ApiKeySecrets
from auth.jwks import JwksCache, JwksDocument, http_jwks_fetcher
from auth.local_issuer import LocalIssuer
from auth.verifier import JwtVerifier, TrustedIssuer
from domain.events import Event, EventType
from domain.ports import (
    BlobStore,
    BudgetStore,
    ModelRuntime,
    UnitOfWork,
    UnitOfWorkFactory,
    WebhookSender,
)
from domain.services import assets, owned
from domain.services.assets import UploadPolicy
from domain.services.batcher import BatchPolicy
from domain.services.inference import WorkerPolicy
from domain.services.model_alerts import AlertSettings
from domain.services.monitoring import MonitoringPolicy
from domain.services.serving import ServingPolicy, SynchronousInference
from domain.services.waiting import SubmissionWatch
from domain.services.webhooks import WebhookPolicy
from domain.webhooks import RetrySchedule
from graph.dependencies import AppDependencies
from graph.protection.input_hygiene import InputBounds
from graph.protection.limits import QueryLimits
from graph.protection.persisted import PersistedQueryPolicy
from graph.protection.rate_limit import RateLimiter, RateLimitPolicy, parse_networks
from graph.protection.shared_budget import BudgetSettler, shared_buckets_factory
from graph.protection.sign_in import SignInCache
from graph.realtime.broker import EventBroker
from graph.realtime.sockets import SocketLimits, SocketRegistry
from graph.transport.app import create_app
from graph.transport.cors import CorsPolicy
from graph.transport.graphiql import host_name
from integrations.blobs.local import LocalBlobStore
from integrations.blobs.local_routes import (
    BLOB_PATH_PREFIX,
    DownloadGate,
    UploadGate,
    blob_routes,
)
from integrations.blobs.s3 import S3BlobStore
from integrations.blobs.signing import load_or_create_signing_key
from integrations.budgets import RedisBudgetStore
from integrations.models.directory import ModelDirectory
from integrations.models.local import LocalModelRuntime
from integrations.models.sagemaker import SageMakerRuntime
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from persistence import migrate
from persistence.alongside import undo_unconfirmed
from persistence.budgets import SqlBudgetStore
from persistence.database import create_engine
from persistence.event_bus import (
    WORK_CHANNEL,
    EventHandler,
    EventListener,
    OutboxNotifier,
    WorkListener,
)
from persistence.operations import SqlPersistedOperations
from persistence.unit_of_work import SqlUnitOfWork
from server.callback_dispatcher import CallbackDispatcher
from server.settings import Environment, Settings
from server.tracing import TracingHandles, configure_tracing
from server.webhook_dispatcher import WebhookDispatcher, lease_seconds_for
from server.workers import (
    BackgroundTasks,
    ModelLoader,
    Periodic,
    Runnable,
    SubmissionWorker,
    WorkBell,
    asset_retention,
    blob_deleter,
    metrics_sampler,
    model_monitor,
    upload_sweeper,
)
from telemetry import metrics

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


LOCAL_ISSUER = "urn:assay:local-issuer"


def local_issuer(settings: Settings) -> LocalIssuer:
    # Trust comes from the key in the data directory; the name stays the same whatever port
    # the server listens on, so `assay token` needs no server settings to match.
    issuer = settings.public_url or LOCAL_ISSUER
    return LocalIssuer(settings.data_dir / "keys" / "local-issuer.pem", issuer=issuer)


def build_verifier(settings: Settings, issuer: LocalIssuer | None) -> JwtVerifier:
    """Cognito when configured, else the local issuer; one verification path for both."""
    if settings.uses_cognito:
        iss = (
            f"https://cognito-idp.{settings.cognito_region}.amazonaws.com/"
            f"{settings.cognito_user_pool_id}"
        )
        trusted = TrustedIssuer(iss, str(settings.cognito_app_client_id))
        fetch = http_jwks_fetcher(f"{iss}/.well-known/jwks.json")
    else:
        assert issuer is not None
        trusted = TrustedIssuer(issuer.issuer, issuer.client_id)
        local = issuer

        async def fetch() -> JwksDocument:
            return local.jwks()

    keys = JwksCache(
        fetch,
        refresh_cooldown_seconds=settings.jwks_refresh_cooldown_seconds,
        on_fetch=metrics.count_jwks_fetch,
    )
    return JwtVerifier(
        trusted,
        keys,
        leeway_seconds=settings.clock_skew_seconds,
        max_token_bytes=settings.max_token_bytes,
    )


def build_blob_store(
    settings: Settings,
    may_upload: UploadGate | None = None,
    may_download: DownloadGate | None = None,
) -> tuple[BlobStore, list[BaseRoute]]:
    if settings.s3_bucket:
        store = S3BlobStore(
            settings.s3_bucket, region=settings.s3_region, endpoint_url=settings.s3_endpoint_url
        )
        return store, []
    local = LocalBlobStore(
        settings.data_dir / "blobs",
        base_url=settings.base_url,
        signing_key=load_or_create_signing_key(settings.data_dir / "keys" / "blob-signing.key"),
        max_bytes=settings.max_asset_bytes,
    )
    return local, list(blob_routes(local, may_upload, may_download))


def build_engine(
    settings: Settings, database_url: str, *, on_statement: Callable[[], None] | None = None
) -> AsyncEngine:
    """The pool; every statement counts in /metrics, and in `on_statement` when given."""

    def count() -> None:
        metrics.count_statement()
        if on_statement is not None:
            on_statement()

    return create_engine(
        database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        ssl_mode=settings.db_ssl_mode.value,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        on_statement=count,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        command_timeout_seconds=settings.db_command_timeout_seconds,
    )


@dataclass(frozen=True)
class Readiness:
    """Every dependency in use: database and migrations, object store, token signing keys,
    SageMaker endpoints when configured. The answer names each one that failed."""

    engine: AsyncEngine
    blobs: BlobStore
    signing_keys: Callable[[], Awaitable[object]] | None = None
    sagemaker: SageMakerRuntime | None = None
    sagemaker_endpoints: Sequence[str] = ()

    async def __call__(self) -> dict[str, str]:
        failures: dict[str, str] = {}
        if self.signing_keys is not None:
            try:
                await self.signing_keys()
            except Exception as exc:
                logger.warning("readiness: token signing keys unavailable: %s", exc)
                failures["tokenIssuer"] = "signing keys unavailable"
        if self.sagemaker is not None and self.sagemaker_endpoints:
            try:
                await self.sagemaker.check(self.sagemaker_endpoints)
            except Exception as exc:
                logger.warning("readiness: SageMaker: %s", exc)
                failures["sagemaker"] = str(exc)[:200]
        try:
            current = await migrate.current_revision(self.engine)
            if current != migrate.head_revision():
                failures["database"] = f"schema at {current}, expected {migrate.head_revision()}"
        except Exception as exc:
            logger.warning("readiness: database unreachable: %s", exc)
            failures["database"] = "unreachable"
        try:
            await self.blobs.check()
        except Exception as exc:
            logger.warning("readiness: object store unreachable: %s", exc)
            failures["objectStore"] = "unreachable"
        return failures


def sagemaker_endpoints(settings: Settings) -> list[str]:
    """The endpoint names that the model directory's SageMaker models call."""
    names = {
        definition.runtime_config.get("endpoint_name")
        for definition in ModelDirectory(settings.models_path).definitions()
        if definition.runtime == "sagemaker"
    }
    return sorted(name for name in names if isinstance(name, str) and name)


def build_readiness(
    settings: Settings, engine: AsyncEngine, blobs: BlobStore, verifier: JwtVerifier
) -> Readiness:
    if not settings.sagemaker_region:
        return Readiness(engine, blobs, signing_keys=verifier.check_keys)
    runtime = SageMakerRuntime(
        region=settings.sagemaker_region,
        timeout_seconds=settings.sagemaker_timeout_seconds,
        max_attempts=1,
    )
    return Readiness(
        engine,
        blobs,
        signing_keys=verifier.check_keys,
        sagemaker=runtime,
        sagemaker_endpoints=sagemaker_endpoints(settings),
    )


def build_runtimes(settings: Settings) -> dict[str, ModelRuntime]:
    runtimes: dict[str, ModelRuntime] = {
        "local": LocalModelRuntime(
            settings.models_path,
            max_workers=settings.inference_threads,
            inline_seconds=settings.inference_inline_ms / 1000,
        )
    }
    if settings.sagemaker_region:
        runtimes["sagemaker"] = SageMakerRuntime(
            region=settings.sagemaker_region,
            timeout_seconds=settings.sagemaker_timeout_seconds,
            max_attempts=settings.max_attempts,
        )
    return runtimes


def serving_policy(settings: Settings) -> ServingPolicy:
    """runInference's batching: the defaults, and per model by name or name:version."""
    default = BatchPolicy(
        max_batch_size=settings.inference_max_batch_size,
        max_delay_seconds=settings.inference_max_delay_ms / 1000,
        groups_in_flight=settings.inference_groups_in_flight,
    )
    by_model = {
        name: replace(
            default,
            max_batch_size=given.max_batch_size or default.max_batch_size,
            max_delay_seconds=(
                default.max_delay_seconds
                if given.max_delay_ms is None
                else given.max_delay_ms / 1000
            ),
        )
        for name, given in settings.inference_batching.items()
    }
    return ServingPolicy(
        default,
        by_model,
        timeout_seconds=settings.run_inference_timeout_seconds,
        batch_inline_seconds=settings.inference_batch_inline_ms / 1000,
    )


def synchronous_inference(
    settings: Settings,
    uow: UnitOfWorkFactory,
    reads: UnitOfWorkFactory,
    runtimes: Mapping[str, ModelRuntime],
    watch: SubmissionWatch,
    group_writes: UnitOfWorkFactory | None = None,
) -> SynchronousInference:
    return SynchronousInference(
        uow,
        runtimes,
        serving_policy(settings),
        clock=utc_now,
        watch=watch,
        reads=reads,
        group_writes=group_writes,
        observer=metrics.ServingMetrics(),
    )


def worker_policy(settings: Settings) -> WorkerPolicy:
    return WorkerPolicy(
        batch_size=settings.worker_batch_size,
        max_claim=settings.worker_max_claim,
        lease_seconds=settings.worker_lease_seconds,
        max_attempts=settings.max_attempts,
    )


def background_tasks(
    settings: Settings,
    uow: UnitOfWorkFactory,
    blobs: BlobStore,
    *,
    engine: AsyncEngine,
    bell: WorkBell,
    concurrency: int | None = None,
    extra: Sequence[Runnable] = (),
    runtimes: Mapping[str, ModelRuntime] | None = None,
) -> BackgroundTasks:
    """The inference workers (woken by `bell`, which a WorkListener on `engine` rings for
    other processes' commits), the dispatchers and the periodic jobs."""
    loaders: list[Runnable] = []
    if runtimes is None:  # a process of its own (assay worker, seed): its models load ahead
        runtimes = build_runtimes(settings)
        if settings.preload_models:
            loaders.append(ModelLoader(uow, runtimes))
    worker = SubmissionWorker(
        uow=uow,
        runtimes=runtimes,
        policy=worker_policy(settings),
        clock=utc_now,
        poll_seconds=settings.worker_poll_seconds,
        concurrency=concurrency or settings.worker_concurrency,
        bell=bell,
    )
    dispatcher = webhook_dispatcher(settings, uow)
    callback_sender = callback_dispatcher(settings, uow, dispatcher.sender)
    return BackgroundTasks(
        [
            WorkListener(engine, bell.ring),
            worker,
            upload_sweeper(uow, blobs, utc_now),
            blob_deleter(uow, blobs, utc_now),
            # A batch's results written alongside and never confirmed (a process died).
            Periodic("unconfirmed-results", partial(undo_unconfirmed, engine), interval=60.0),
            asset_retention(uow, settings.asset_retention_days, utc_now),
            model_monitor(
                uow, AlertSettings(monitoring_policy(settings), settings.admin_group), utc_now
            ),
            *dispatcher.runnables(settings.webhook_poll_seconds),
            *callback_sender.runnables(settings.webhook_poll_seconds),
            *loaders,
            *extra,
        ]
    )


def monitoring_policy(settings: Settings) -> MonitoringPolicy:
    return MonitoringPolicy(
        retention=timedelta(days=settings.stats_retention_days),
        reference_size=settings.reference_predictions,
    )


def url_guard(settings: Settings) -> DnsUrlGuard:
    return DnsUrlGuard(allow_private_networks=settings.webhook_allow_private_networks)


def webhook_dispatcher(settings: Settings, uow: UnitOfWorkFactory) -> WebhookDispatcher:
    sender = HttpWebhookSender(
        url_guard(settings), timeout_seconds=settings.webhook_timeout_seconds
    )
    return WebhookDispatcher(
        uow=uow,
        sender=sender,
        schedule=RetrySchedule(settings.webhook_retry_delays),
        clock=utc_now,
        lease_seconds=lease_seconds_for(settings.webhook_timeout_seconds),
    )


def callback_dispatcher(
    settings: Settings, uow: UnitOfWorkFactory, sender: WebhookSender
) -> CallbackDispatcher:
    """Callbacks share the webhooks' sender (its SSRF guard, timeouts) and retry schedule."""
    return CallbackDispatcher(
        uow=uow,
        sender=sender,
        schedule=RetrySchedule(settings.webhook_retry_delays),
        clock=utc_now,
        lease_seconds=lease_seconds_for(settings.webhook_timeout_seconds),
    )


def register_models(settings: Settings, database_url: str) -> int:
    """Build the default models on first run and register the model directory's models."""
    definitions = ModelDirectory(settings.models_path).definitions()

    async def register() -> int:
        engine = build_engine(settings, database_url)
        try:
            return len(await owned.register_models(SqlUnitOfWork(engine), definitions))
        finally:
            await engine.dispose()

    return asyncio.run(register())


def read_unit_of_work_factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    """Units of work for reads alone (the compiled query path): no transaction round trips."""
    return lambda: SqlUnitOfWork(engine, read_only=True)


def unit_of_work_factory(
    engine: AsyncEngine,
    bell: WorkBell | None = None,
    *,
    autocommit: bool = False,
    notifier: OutboxNotifier | None = None,
) -> tuple[UnitOfWorkFactory, OutboxNotifier]:
    """Units of work that signal listeners after committing events, and workers after
    committing work: this process's through `bell` at once, every process's by NOTIFY
    (through `notifier`, a new one if None). `autocommit`: each statement its own
    transaction, on a kept connection (SqlUnitOfWork's)."""
    notifier = notifier or OutboxNotifier(engine)

    def work_committed() -> None:
        if bell is not None:
            bell.ring()
        notifier.poke(WORK_CHANNEL)

    def events_committed(revokes: bool) -> None:
        notifier.poke(is_plain=not revokes)

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(
            engine,
            on_events_committed=events_committed,
            autocommit=autocommit,
            on_work_committed=work_committed,
            local_workers=bell,
        )

    return uow, notifier


def query_limits(settings: Settings) -> QueryLimits:
    return QueryLimits(
        max_document_bytes=settings.max_document_bytes,
        max_tokens=settings.max_tokens,
        max_depth=settings.max_depth,
        max_aliases=settings.max_aliases,
        max_directives=settings.max_directives,
        max_root_fields=settings.max_root_fields,
        max_cost=settings.max_query_cost,
        hide_suggestions=settings.environment is not Environment.DEVELOPMENT,
        batching=settings.batching,
        max_batch_operations=settings.max_batch_operations,
        inputs=InputBounds(
            max_string_bytes=settings.max_string_input_bytes,
            max_json_bytes=settings.max_json_input_bytes,
        ),
    )


def budget_store(settings: Settings, database_url: str) -> BudgetStore | None:
    """Where every process's rate-limit spending meets; None: each process alone. On the
    database, a connection of its own: a settle never waits behind requests for the pool."""
    if settings.rate_limit_store == "process":
        return None
    if settings.rate_limit_store == "database":
        return SqlBudgetStore(
            create_engine(
                database_url,
                pool_size=1,
                max_overflow=1,
                ssl_mode=settings.db_ssl_mode.value,
                connect_timeout_seconds=settings.db_connect_timeout_seconds,
                pool_timeout_seconds=settings.db_pool_timeout_seconds,
                command_timeout_seconds=settings.db_command_timeout_seconds,
            )
        )
    return RedisBudgetStore(settings.rate_limit_store, password=settings.rate_limit_store_token)


def rate_limiter(settings: Settings, database_url: str) -> tuple[RateLimiter, BudgetSettler | None]:
    """The limiter, and the settler (a background task) when its buckets are shared."""
    policy = RateLimitPolicy(
        points_per_second=settings.rate_limit_points_per_second,
        burst=settings.rate_limit_burst,
        inference_per_second=settings.inference_rate_per_second,
        inference_burst=settings.inference_burst,
        trusted_proxies=parse_networks(settings.trusted_proxies),
    )
    store = budget_store(settings, database_url)
    if store is None:
        return RateLimiter(policy), None
    settler = BudgetSettler(store, store_name=settings.rate_limit_store_label)
    buckets = shared_buckets_factory(settler, settings.rate_limit_lease)
    return RateLimiter(policy, buckets=buckets, settled=settler.settled_waiter()), settler


DEMO_EMAIL = "demo@example.com"
DEMO_ADMIN_EMAIL = "demo-admin@example.com"
DEMO_TOKEN_SECONDS = 8 * 3600  # a working day in GraphiQL without a new page


def demo_token_issuer(settings: Settings, issuer: LocalIssuer | None) -> Callable[[], str] | None:
    """In development with the local issuer, GraphiQL opens signed in as a demo user;
    never with Cognito or in production, where a page must not hand out tokens."""
    if issuer is None or settings.is_production or settings.uses_cognito or not settings.graphiql:
        return None

    def issue() -> str:
        return issuer.issue(email=DEMO_EMAIL, name="Demo", expires_in=DEMO_TOKEN_SECONDS)

    return issue


def demo_admin_token_issuer(
    settings: Settings, issuer: LocalIssuer | None
) -> Callable[[], str] | None:
    """GET /models in development opens as a demo administrator: its statistics are for
    administrators. Never with Cognito or in production, as for GraphiQL."""
    if demo_token_issuer(settings, issuer) is None:
        return None
    assert issuer is not None

    def issue() -> str:
        return issuer.issue(
            email=DEMO_ADMIN_EMAIL,
            name="Demo administrator",
            groups=[settings.admin_group],
            expires_in=DEMO_TOKEN_SECONDS,
        )

    return issue


def build_app(
    settings: Settings,
    database_url: str,
    *,
    on_statement: Callable[[], None] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Starlette:
    """The application; `tracer_provider` replaces the OTEL_-configured one (tests)."""
    tracing = configure_tracing(settings, tracer_provider=tracer_provider)
    engine = build_engine(settings, database_url, on_statement=on_statement)
    if tracing is not None:
        tracing.instrument_engine(engine)
    issuer = None if settings.uses_cognito else local_issuer(settings)
    bell = WorkBell()
    uow, notifier = unit_of_work_factory(engine, bell)
    blobs, blob_http_routes = build_blob_store(
        settings,
        lambda key: assets.accepts_upload(uow(), key),
        lambda key: assets.serves_download(uow(), key),
    )
    broker = EventBroker(
        queue_size=settings.subscription_queue_size,
        max_connections_per_user=settings.max_connections_per_user,
    )
    sockets = SocketRegistry(
        SocketLimits(
            max_sockets=settings.max_websockets,
            max_unauthenticated=settings.max_unauthenticated_websockets,
            max_unauthenticated_per_address=settings.max_unauthenticated_websockets_per_address,
        )
    )
    sign_ins = SignInCache(settings.sign_in_cache_seconds, utc_now)
    watch = SubmissionWatch()
    listener = EventListener(
        engine, fan_out(broker, sockets, sign_ins, watch), on_state=sign_ins.listener_state
    )
    limiter, settler = rate_limiter(settings, database_url)
    always: list[Runnable] = [listener, metrics_sampler(uow, utc_now)]
    if settler is not None:
        always.append(settler)
    # One set of runtimes (loaded models, inference threads) for the worker and runInference.
    runtimes = build_runtimes(settings)
    if settings.preload_models:  # the runtimes themselves: a traced one only predicts
        always.append(ModelLoader(uow, runtimes))
    if tracing is not None:
        runtimes = tracing.traced_runtimes(runtimes)
    tasks = (
        background_tasks(
            settings, uow, blobs, engine=engine, bell=bell, extra=always, runtimes=runtimes
        )
        if settings.run_workers
        else BackgroundTasks(always)
    )
    reads = read_unit_of_work_factory(engine)
    group_writes, _ = unit_of_work_factory(engine, bell, autocommit=True, notifier=notifier)
    inference = synchronous_inference(settings, uow, reads, runtimes, watch, group_writes)
    jwks: Any = issuer.jwks if issuer is not None else None
    verifier = build_verifier(settings, issuer)
    deps = AppDependencies(
        uow=uow,
        read_uow=reads,
        inference=inference,
        verifier=verifier,
        api_key_secrets=Sha256ApiKeySecrets(),
        blobs=blobs,
        clock=utc_now,
        readiness=build_readiness(settings, engine, blobs, verifier),
        admin_group=settings.admin_group,
        download_url_ttl=settings.download_url_ttl_seconds,
        graphiql=settings.graphiql,
        introspection=settings.introspection,
        limits=query_limits(settings),
        rate_limiter=limiter,
        degradations=settler.degradations if settler is not None else None,
        max_request_bytes=settings.max_request_bytes,
        jwks=jwks,
        upload_policy=UploadPolicy(
            max_bytes=settings.max_asset_bytes, url_ttl_seconds=settings.upload_url_ttl_seconds
        ),
        run_inference_timeout=settings.run_inference_timeout_seconds,
        monitoring=monitoring_policy(settings),
        broker=broker,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        ws_init_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        sockets=sockets,
        max_subscription_message_bytes=settings.max_subscription_message_bytes,
        webhooks=WebhookPolicy(
            guard=url_guard(settings),
            max_endpoints_per_user=settings.max_webhook_endpoints_per_user,
        ),
        routes=blob_http_routes,
        blob_path_prefix=BLOB_PATH_PREFIX if blob_http_routes else None,
        on_startup=[tasks.start],
        on_shutdown=[
            inference.drain,
            tasks.stop,
            notifier.close,
            engine.dispose,
            *tracing_stop(tracing),
        ],
        persisted_operations=SqlPersistedOperations(engine),
        persisted_queries=PersistedQueryPolicy(
            only_trusted=settings.only_persisted_operations,
            allow_admin_arbitrary=settings.allow_admin_arbitrary_operations,
            cache_size=settings.document_cache_size,
            quota_per_caller=settings.persisted_queries_per_caller,
        ),
        document_cache_size=settings.document_cache_size,
        compiled_execution=settings.compiled_execution,
        compiled_plan_cache_size=settings.compiled_plan_cache_size,
        schema_extensions=tracing.schema_extensions() if tracing is not None else (),
        strict_transport_security=settings.is_production,
        sign_ins=sign_ins if settings.sign_in_cache_seconds > 0 else None,
        graphiql_token=demo_token_issuer(settings, issuer),
        models_page_token=demo_admin_token_issuer(settings, issuer),
        public_host=host_name(settings.base_url),
        cors=CorsPolicy.from_setting(
            settings.cors_origins, local_by_default=not settings.is_production
        ),
    )
    app = create_app(deps)
    if tracing is not None:
        tracing.wrap(app)
    return app


def fan_out(
    broker: EventBroker,
    sockets: SocketRegistry,
    sign_ins: SignInCache | None = None,
    watch: SubmissionWatch | None = None,
) -> EventHandler:
    """Each process's share of new events: its subscribers' messages, its revoked sockets
    and cached sign-ins, its requests waiting for a submission another process runs."""

    async def handle(events: Sequence[Event]) -> None:
        revoked = [e.subject_id for e in events if e.type is EventType.PRINCIPAL_REVOKED]
        if revoked and sign_ins is not None:
            sign_ins.revoke(revoked, from_bus=True)  # first: nothing below may delay it
        if watch is not None:
            watch.notify(events)
        await broker.publish(events)
        if revoked:
            await sockets.revoke(revoked)

    return handle


def tracing_stop(tracing: TracingHandles | None) -> list[Callable[[], Awaitable[None]]]:
    return [] if tracing is None else [tracing.shutdown]
