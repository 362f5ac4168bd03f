"""What the composition root hands the GraphQL application: adapters, policies, settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from starlette.routing import BaseRoute
from strawberry.extensions import SchemaExtension

from domain.api_keys import ApiKeySecrets
from domain.ports import (
    BlobStore,
    Clock,
    PersistedOperations,
    TokenVerifier,
    UnitOfWorkFactory,
)
from domain.services.assets import UploadPolicy
from domain.services.monitoring import MonitoringPolicy
from domain.services.serving import SynchronousInference
from domain.services.webhooks import WebhookPolicy
from graph.execution.context import Context
from graph.protection.limits import QueryLimits
from graph.protection.persisted import PersistedQueryPolicy
from graph.protection.rate_limit import RateLimiter
from graph.protection.sign_in import SignInCache
from graph.realtime.broker import EventBroker
from graph.realtime.sockets import SocketRegistry
from graph.transport.cors import CorsPolicy

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class AppDependencies:
    uow: UnitOfWorkFactory
    verifier: TokenVerifier
    blobs: BlobStore
    clock: Clock
    readiness: ReadinessCheck
    # What works in a lesser way (reported by /readyz, never a 503): e.g. the rate-limit store.
    degradations: Callable[[], dict[str, str]] | None = None
    read_uow: UnitOfWorkFactory | None = None  # reads only; `uow` when absent
    admin_group: str = "admin"
    download_url_ttl: int = 3600
    upload_policy: UploadPolicy = field(default_factory=UploadPolicy)
    run_inference_timeout: float = 30.0
    monitoring: MonitoringPolicy = field(default_factory=MonitoringPolicy)
    inference: SynchronousInference | None = None  # runInference's use case, one per process
    broker: EventBroker | None = None
    max_subscriptions_per_connection: int = 10
    ws_init_timeout: timedelta = timedelta(seconds=10)
    sockets: SocketRegistry | None = None  # caps on open WebSockets; closes revoked users'
    max_subscription_message_bytes: int | None = None
    webhooks: WebhookPolicy | None = None
    graphiql: bool = True
    introspection: bool = True
    limits: QueryLimits = field(default_factory=QueryLimits)
    rate_limiter: RateLimiter | None = None
    max_request_bytes: int = 1024 * 1024
    jwks: Callable[[], dict[str, Any]] | None = None
    routes: Sequence[BaseRoute] = ()
    # Where `routes` serve the local blob store's signed URLs (CORS as the bucket's rule).
    blob_path_prefix: str | None = None
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()
    persisted_operations: PersistedOperations | None = None
    persisted_queries: PersistedQueryPolicy = field(default_factory=PersistedQueryPolicy)
    document_cache_size: int = 1000
    # Validated queries the compiler understands run on a plan (graph/execution/).
    compiled_execution: bool = True
    compiled_plan_cache_size: int = 500
    # More schema extensions, chosen by the composition root (e.g. slow-resolver spans).
    schema_extensions: Sequence[Callable[[], SchemaExtension]] = ()
    # Browser origins allowed to call the API (HTTP CORS and the WebSocket Origin check).
    cors: CorsPolicy = field(default_factory=CorsPolicy)
    # Development with the local issuer only: a demo user's token for GraphiQL's headers.
    graphiql_token: Callable[[], str] | None = None
    # The same, for GET /models: a demo administrator's (statistics are for administrators).
    models_page_token: Callable[[], str] | None = None
    # The configured public URL's host name: with localhost's, the Hosts the token is for.
    public_host: str | None = None
    api_key_secrets: ApiKeySecrets | None = None  # API keys are refused without it
    strict_transport_security: bool = False  # production: HTTPS only, HSTS on every answer
    # Verified principals kept briefly; dropped on every process when access is revoked.
    sign_ins: SignInCache | None = None

    def shared_context(self) -> Context:
        """What every request's context starts from: Context.for_request adds the request's
        own (the pipeline's `context` step)."""
        return Context(
            request_id="-",
            uow=self.uow,
            read_uow=self.read_uow,
            clock=self.clock,
            admin_group=self.admin_group,
            blobs=self.blobs,
            download_url_ttl=self.download_url_ttl,
            upload_policy=self.upload_policy,
            run_inference_timeout=self.run_inference_timeout,
            broker=self.broker,
            max_subscriptions_per_connection=self.max_subscriptions_per_connection,
            webhooks=self.webhooks,
            sign_ins=self.sign_ins,
            api_key_secrets=self.api_key_secrets,
            inference=self.inference,
            monitoring=self.monitoring,
        )
