"""The per-request context: who is calling, the unit-of-work factory, services' clock, loaders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain.api_keys import ApiKeySecrets
from domain.batches import Batch
from domain.errors import DomainError, Unauthenticated
from domain.ports import BlobStore, Clock, UnitOfWorkFactory
from domain.principal import Principal
from domain.services.assets import UploadPolicy
from domain.services.monitoring import MonitoringPolicy
from domain.services.serving import SynchronousInference
from domain.services.webhooks import WebhookPolicy
from domain.submissions import Result, Submission
from graph.execution.loaders import Loaders
from graph.protection.sign_in import SignInCache
from graph.realtime.broker import EventBroker


class _MessageLoaders:
    """A subscription message's loaders, made when a resolver first asks for them and
    dropped once the message is sent.

    Timers and tasks started while a message resolves (asyncio.wait_for's timeouts, asyncpg's
    statement-cache expiry, 300 s) keep a copy of the task's context, and with it this
    object: only an empty shell may outlive the message."""

    def __init__(self, context: Context) -> None:
        self.context: Context | None = context
        self._loaders: Loaders | None = None

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            assert self.context is not None, "a sent message's loaders are gone"
            self._loaders = self.context.new_loaders()
        return self._loaders

    def close(self) -> None:
        self.context = None
        self._loaders = None


# Each subscription operation runs in its own task, and its generator and the resolvers of
# what it yields run in that task, so a message set here is seen by exactly its resolvers.
_MESSAGE_LOADERS: ContextVar[_MessageLoaders | None] = ContextVar("message_loaders", default=None)


@dataclass
class Context:
    request_id: str
    uow: UnitOfWorkFactory
    clock: Clock
    admin_group: str
    blobs: BlobStore
    download_url_ttl: int
    upload_policy: UploadPolicy
    run_inference_timeout: float
    principal_or_error: Principal | DomainError = field(default_factory=lambda: Unauthenticated())
    request: Request | WebSocket | None = None
    response: Response | None = None
    broker: EventBroker | None = None
    max_subscriptions_per_connection: int = 10
    open_subscriptions: int = 0
    connection_params: dict[str, object] | None = None
    webhooks: WebhookPolicy | None = None
    cost: int | None = None
    # RateLimit-Policy and RateLimit for a signed-in caller's answer, once charged.
    rate_limit_headers: tuple[tuple[str, str], ...] = ()
    read_uow: UnitOfWorkFactory | None = None  # for reads alone; `uow` when absent
    compiled_declined: bool = False  # the fast lane tried the compiled path; it fell back
    # runInference's answer, made by the inference lane, for the resolver to return as is
    inference_answer: tuple[Submission, Result | None] | None = None
    # batchInference's answer, made by the batch lane, for the resolver to return as is
    batch_answer: tuple[list[Submission], Batch | None] | None = None
    sign_ins: SignInCache | None = None  # this process's cached sign-ins
    api_key_secrets: ApiKeySecrets | None = None  # makes and digests API key secrets
    inference: SynchronousInference | None = None  # runInference's use case (batcher)
    monitoring: MonitoringPolicy = field(default_factory=MonitoringPolicy)
    _loaders: Loaders | None = None

    def for_request(
        self,
        request: Request | WebSocket,
        response: Response | None,
        principal_or_error: Principal | DomainError,
        *,
        compiled_declined: bool = False,
    ) -> Context:
        """A request's context: a copy of this one, the application's (made once from its
        dependencies, graph/dependencies.py, and never a request's own), with the request, its
        caller and its response."""
        # A shallow copy of the fields (0.8 us; dataclasses.replace, which calls __init__
        # again, costs 3.7 us a request, 1% of a point lookup's CPU).
        context = object.__new__(Context)
        context.__dict__.update(self.__dict__)
        context.request_id = request.state.request_id
        context.request = request
        context.response = response
        context.principal_or_error = principal_or_error
        context.compiled_declined = compiled_declined
        return context

    async def close_socket(self, code: int, reason: str) -> None:
        if isinstance(self.request, WebSocket):
            with contextlib.suppress(RuntimeError):
                await self.request.close(code=code, reason=reason)

    @property
    def principal(self) -> Principal:
        """The caller; raises UNAUTHENTICATED (or FORBIDDEN for a deactivated user) otherwise."""
        if isinstance(self.principal_or_error, DomainError):
            raise self.principal_or_error
        return self.principal_or_error

    @contextlib.contextmanager
    def message(self) -> Iterator[None]:
        """Fresh loaders for one subscription message, released once it is sent: a connection
        lives for hours, and loaders kept that long would answer from what they read for the
        first message and keep every object they read alive."""
        message = _MessageLoaders(self)
        _MESSAGE_LOADERS.set(message)
        try:
            yield
        finally:
            _MESSAGE_LOADERS.set(None)
            message.close()

    @property
    def loaders(self) -> Loaders:
        message = _MESSAGE_LOADERS.get()
        if message is not None and message.context is self:
            return message.loaders
        if self._loaders is None:
            self._loaders = self.new_loaders()
        return self._loaders

    def new_loaders(self) -> Loaders:
        return Loaders.create(self.uow, self.principal, self.blobs, self.download_url_ttl)
