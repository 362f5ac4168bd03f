"""Answers to /graphql requests that GraphQL never ran, in the contract's error shape.

The contract promises {"errors": [...]} with extensions.code and extensions.requestId for
every failure, including a request that is unusable before GraphQL sees it (BAD_REQUEST) and
one that a dependency's outage stopped (UNAVAILABLE): never plain text.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Scope

from graph.transport.over_http import JSON, negotiate

BAD_REQUEST = "BAD_REQUEST"
UNAVAILABLE = "UNAVAILABLE"
INTERNAL = "INTERNAL"
# Seconds a client should wait before retrying after an outage answer: long enough not to
# hammer a database that is coming back, short enough that a blip costs little.
RETRY_AFTER_SECONDS = 1


def request_id_of(scope: Scope) -> str:
    request_id: str = scope.get("state", {}).get("request_id", "-")
    return request_id


def error_body(message: str, code: str, request_id: str, **extensions: object) -> bytes:
    details = {"code": code, "requestId": request_id, **extensions}
    return orjson.dumps({"errors": [{"message": message, "extensions": details}]})


def error_response(
    scope: Scope,
    status_code: int,
    message: str,
    code: str = BAD_REQUEST,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error in the media type the client accepts (application/json when it names none
    that we serve: a 406 must still be readable)."""
    media_type = negotiate(Headers(scope=scope).get("accept")) or JSON
    return Response(
        error_body(message, code, request_id_of(scope)),
        status_code=status_code,
        headers=dict(headers or {}),
        media_type=f"{media_type}; charset=utf-8",
    )


def unavailable_response(scope: Scope, message: str) -> Response:
    return error_response(
        scope,
        503,
        message,
        UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
