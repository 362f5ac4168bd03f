"""The one place where exceptions become the contract's error codes."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

logger = logging.getLogger("assay.errors")

INTERNAL_MESSAGE = "internal error; quote the request id when reporting it"

_CODES: list[tuple[type[DomainError], str]] = [
    (Unauthenticated, "UNAUTHENTICATED"),
    (Forbidden, "FORBIDDEN"),
    (NotFound, "NOT_FOUND"),
    (InvalidInput, "BAD_USER_INPUT"),
    (Conflict, "CONFLICT"),
    (RateLimited, "RATE_LIMITED"),
    (Unavailable, "UNAVAILABLE"),
]


class AssayGraphQLError(GraphQLError):
    """An error raised by the graph layer itself with a contract code (e.g. query limits)."""

    def __init__(self, message: str, code: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code, **extensions})


def code_for(error: DomainError) -> str:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return "INTERNAL"


def _domain_extensions(error: DomainError) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": code_for(error)}
    if isinstance(error, InvalidInput):
        extensions["fields"] = error.fields
    if isinstance(error, RateLimited):
        extensions["retryAfterSeconds"] = round(error.retry_after_seconds, 3)
    return extensions


def _is_variable_error(error: GraphQLError) -> bool:
    """A variable that failed coercion: graphql-core keeps the scalar's exception as
    original_error, but the mistake is the caller's, raised before any resolver."""
    return error.path is None and error.message.startswith("Variable '$")


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, DomainError) or _is_variable_error(error):
        return False
    return not (isinstance(original, GraphQLError) and original.extensions)


def format_error(error: GraphQLError, request_id: str) -> GraphQLError:
    """A copy of `error` carrying the contract's code and the request id; internals masked."""
    original = error.original_error
    message = error.message
    if isinstance(original, DomainError):
        extensions = _domain_extensions(original)
    elif isinstance(original, GraphQLError) and original.extensions:
        extensions = dict(original.extensions)
        message = original.message
    elif _is_variable_error(error):
        extensions = {"code": "BAD_USER_INPUT"}
    elif original is not None:
        extensions = {"code": "INTERNAL"}
        message = INTERNAL_MESSAGE
    elif error.extensions and "code" in error.extensions:
        extensions = dict(error.extensions)
    else:  # syntax, validation and variable coercion errors
        extensions = {"code": "BAD_USER_INPUT"}
    extensions["requestId"] = request_id
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def log_unexpected(errors: list[GraphQLError], request_id: str) -> None:
    for error in errors:
        if is_unexpected(error):
            original = error.original_error
            assert original is not None
            logger.error(
                "unexpected error at %s (request %s)",
                ".".join(str(p) for p in error.path or []) or "<operation>",
                request_id,
                exc_info=(type(original), original, original.__traceback__),
            )
