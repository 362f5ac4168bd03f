"""Every 4xx/5xx from /graphql is {"errors": [...]} with a code and the request id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from graph.transport.over_http import GRAPHQL_RESPONSE_JSON

JSON = "application/json"
VALID = b'{"query": "{ __typename }"}'
DEEP = b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * 1100 + b"]" * 1100 + b"}}"
TWO_OPERATIONS = {"query": "query A { __typename } query B { __typename }"}


def assert_error_shape(response: httpx.Response, status: int, code: str, media_type: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
    body: dict[str, Any] = response.json()
    assert list(body) == ["errors"], body
    (error,) = body["errors"]
    assert error["message"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


UNUSABLE_BODIES = [
    pytest.param(b'{ "not a JSON', JSON, 400, id="not-json"),
    pytest.param(b"[" + VALID + b"]", JSON, 400, id="batch-array"),
    pytest.param(b'"just a string"', JSON, 400, id="json-not-object"),
    pytest.param(VALID, "text/plain", 415, id="wrong-media-type"),
    pytest.param(b'{"query": "{ __typename }", "x": "\xff\xfe"}', JSON, 400, id="invalid-utf8"),
    pytest.param(b'{"query": "{ __typename }", "variables": {"a": NaN}}', JSON, 400, id="nan"),
    pytest.param(DEEP, JSON, 400, id="nesting-over-1024"),
    pytest.param(b'{"query": "' + b" " * (2 * 1024 * 1024) + b'"}', JSON, 413, id="too-large"),
]


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
@pytest.mark.parametrize(("body", "content_type", "status"), UNUSABLE_BODIES)
async def test_unusable_request_is_bad_request_in_the_accepted_media_type(
    client: httpx.AsyncClient, body: bytes, content_type: str, status: int, accept: str
) -> None:
    response = await client.post(
        "/graphql", content=body, headers={"Content-Type": content_type, "Accept": accept}
    )
    assert_error_shape(response, status, "BAD_REQUEST", accept)


async def test_accept_naming_nothing_served_is_406_in_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", content=VALID, headers={"Content-Type": JSON, "Accept": "application/xml"}
    )
    assert_error_shape(response, 406, "BAD_REQUEST", JSON)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_in_the_error_shape(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(
        method, "/graphql", content=VALID, headers={"Accept": GRAPHQL_RESPONSE_JSON}
    )
    assert_error_shape(response, 405, "BAD_REQUEST", GRAPHQL_RESPONSE_JSON)
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


@pytest.mark.parametrize("accept", [GRAPHQL_RESPONSE_JSON, JSON])
async def test_several_operations_without_a_name_are_bad_request(
    client: httpx.AsyncClient, accept: str
) -> None:
    response = await client.post("/graphql", json=TWO_OPERATIONS, headers={"Accept": accept})
    assert_error_shape(response, 400, "BAD_REQUEST", accept)


async def test_several_operations_with_a_name_run_the_named_one(
    client: httpx.AsyncClient,
) -> None:
    body = {**TWO_OPERATIONS, "operationName": "B"}
    response = await client.post("/graphql", json=body, headers={"Accept": GRAPHQL_RESPONSE_JSON})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_a_streamed_body_over_the_limit_is_413_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    huge = b'{"query": "' + b" " * (2 * 1024 * 1024) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(huge), 256 * 1024):
            yield huge[start : start + 256 * 1024]

    response = await client.post(
        "/graphql",
        content=chunks(),
        headers={"Content-Type": JSON, "Accept": GRAPHQL_RESPONSE_JSON},
    )
    assert_error_shape(response, 413, "BAD_REQUEST", GRAPHQL_RESPONSE_JSON)


async def test_an_unknown_path_is_404_not_found_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/no/such/page")
    assert_error_shape(response, 404, "NOT_FOUND", JSON)


async def test_a_method_another_route_does_not_serve_is_405_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/healthz")
    assert_error_shape(response, 405, "BAD_REQUEST", JSON)
    assert "GET" in response.headers["allow"]


async def test_a_preflight_from_a_stranger_origin_is_refused_in_the_error_shape(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/graphql",
        headers={"Origin": "https://stranger.example", "Access-Control-Request-Method": "POST"},
    )
    assert_error_shape(response, 400, "BAD_REQUEST", JSON)
    assert "access-control-allow-origin" not in response.headers
