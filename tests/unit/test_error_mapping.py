"""graph.errors.format_error: the contract's codes and extensions, internals masked."""

from __future__ import annotations

import pytest
from graphql import GraphQLError

from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from graph.errors import INTERNAL_MESSAGE, AssayGraphQLError, format_error, is_unexpected


def raised(original: Exception | None, message: str = "resolver failed") -> GraphQLError:
    return GraphQLError(message, path=["viewer"], original_error=original)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Unauthenticated(), "UNAUTHENTICATED"),
        (Forbidden("no"), "FORBIDDEN"),
        (NotFound("Asset", "x"), "NOT_FOUND"),
        (InvalidInput({"input.name": "bad"}), "BAD_USER_INPUT"),
        (Conflict("state"), "CONFLICT"),
        (RateLimited(2.5), "RATE_LIMITED"),
        (DomainError("other"), "INTERNAL"),
    ],
)
def test_each_domain_error_gets_its_code_and_the_request_id(error: DomainError, code: str) -> None:
    formatted = format_error(raised(error, str(error)), "req-1")

    assert formatted.extensions is not None
    assert formatted.extensions["code"] == code
    assert formatted.extensions["requestId"] == "req-1"
    assert formatted.message == str(error)
    assert formatted.path == ["viewer"]
    assert not is_unexpected(raised(error))


def test_invalid_input_carries_its_fields() -> None:
    error = InvalidInput({"input.name": "too long", "input.language": "bad tag"})

    formatted = format_error(raised(error), "r")

    assert formatted.extensions is not None
    assert formatted.extensions["fields"] == {"input.name": "too long", "input.language": "bad tag"}


def test_rate_limited_carries_retry_after_seconds() -> None:
    formatted = format_error(raised(RateLimited(1.23456)), "r")

    assert formatted.extensions is not None
    assert formatted.extensions["retryAfterSeconds"] == 1.235


def test_unexpected_error_is_internal_with_generic_message_and_no_trace() -> None:
    secret = "password=hunter2 at db.internal"
    error = raised(RuntimeError(secret), secret)

    formatted = format_error(error, "req-9")

    assert formatted.message == INTERNAL_MESSAGE
    assert formatted.extensions == {"code": "INTERNAL", "requestId": "req-9"}
    assert formatted.original_error is None
    assert "hunter2" not in str(formatted.formatted)
    assert is_unexpected(error)


def test_graph_layer_error_keeps_its_code_and_extensions() -> None:
    original = AssayGraphQLError("too complex", "QUERY_TOO_COMPLEX", cost=500, limit=100)

    formatted = format_error(raised(original), "r")

    assert formatted.message == "too complex"
    assert formatted.extensions == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": 500,
        "limit": 100,
        "requestId": "r",
    }


def test_validation_error_without_original_is_bad_user_input() -> None:
    formatted = format_error(GraphQLError("Cannot query field 'nope'"), "r")

    assert formatted.extensions == {"code": "BAD_USER_INPUT", "requestId": "r"}


def test_error_with_a_code_but_no_original_keeps_it() -> None:
    error = GraphQLError("not known", extensions={"code": "PERSISTED_QUERY_NOT_FOUND"})

    formatted = format_error(error, "r")

    assert formatted.extensions == {"code": "PERSISTED_QUERY_NOT_FOUND", "requestId": "r"}
