"""The per-request context: who is calling, the unit-of-work factory, services' clock, loaders."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from domain.errors import DomainError, Unauthenticated
from domain.ports import BlobStore, Clock, UnitOfWorkFactory
from domain.principal import Principal
from domain.services.assets import UploadPolicy
from graph.loaders import Loaders


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
    _loaders: Loaders | None = None

    @property
    def principal(self) -> Principal:
        """The caller; raises UNAUTHENTICATED (or FORBIDDEN for a deactivated user) otherwise."""
        if isinstance(self.principal_or_error, DomainError):
            raise self.principal_or_error
        return self.principal_or_error

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders.create(self.uow, self.principal)
        return self._loaders
