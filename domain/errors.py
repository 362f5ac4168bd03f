"""Domain errors: what went wrong, in the domain's words. The graph layer maps them to codes."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from domain.ids import to_global_id


class DomainError(Exception):
    """Base of every error a use case raises on purpose."""


class Unauthenticated(DomainError):
    def __init__(self, message: str = "authentication required: send a bearer token") -> None:
        super().__init__(message)


class Forbidden(DomainError):
    pass


class NotFound(DomainError):
    def __init__(self, kind: str, ident: object) -> None:
        # A UUID is shown as the API's global id, the only id a client ever sees.
        shown = to_global_id(kind, ident) if isinstance(ident, UUID) else ident
        super().__init__(f"{kind} {shown} not found")
        self.kind = kind


class InvalidInput(DomainError):
    """Input that fails validation; `fields` maps input paths to messages."""

    def __init__(self, fields: Mapping[str, str], message: str | None = None) -> None:
        self.fields = dict(fields)
        summary = "; ".join(f"{path}: {text}" for path, text in self.fields.items())
        super().__init__(message or f"invalid input: {summary}")


class Conflict(DomainError):
    pass


class RateLimited(DomainError):
    def __init__(self, retry_after_seconds: float) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_seconds:.0f} s")
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """A dependency the use case needs (the database) cannot be reached; safe to retry."""

    def __init__(self, message: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(message)
