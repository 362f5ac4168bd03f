"""GraphQL over HTTP (the draft spec): media types, status codes and methods, in-process."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Scope

from graph.transport.over_http import GRAPHQL_RESPONSE_JSON

JSON = "application/json"
TYPENAME = {"query": "{ __typename }"}
PARSE_FAILURE = {"query": "{"}
VALIDATION_FAILURE = {"query": "{ noSuchField }"}
COERCION_FAILURE = {
    "query": "query Q($id: ID!) { node(id: $id) { id } }",
    "variables": {"id": None},
}


async def post(client: httpx.AsyncClient, body: Any, accept: str | None) -> httpx.Response:
    headers = {"Accept": accept} if accept is not None else {}
    return await client.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, {JSON};q=0.9", GRAPHQL_RESPONSE_JSON),
        (JSON, JSON),
        ("*/*", JSON),
        (None, JSON),
    ],
)
async def test_response_media_type_follows_accept(
    client: httpx.AsyncClient, accept: str | None, media_type: str
) -> None:
    response = await post(client, TYPENAME, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_accept_naming_nothing_supported_is_406(client: httpx.AsyncClient) -> None:
    response = await post(client, TYPENAME, "application/xml")
    assert response.status_code == 406
    assert GRAPHQL_RESPONSE_JSON in response.text


@pytest.mark.parametrize("body", [PARSE_FAILURE, VALIDATION_FAILURE, COERCION_FAILURE])
async def test_request_errors_are_400_without_data_under_graphql_response_json(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await post(client, body, GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    decoded = response.json()
    assert "data" not in decoded
    assert decoded["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("body", [PARSE_FAILURE, VALIDATION_FAILURE, COERCION_FAILURE])
async def test_request_errors_are_200_under_legacy_application_json(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await post(client, body, JSON)
    assert response.status_code == 200, response.text
    assert "data" not in response.json()


async def test_field_errors_keep_200_and_data_under_graphql_response_json(
    client: httpx.AsyncClient,
) -> None:
    response = await post(client, {"query": "{ viewer { id } }"}, GRAPHQL_RESPONSE_JSON)
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_with_allow(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/graphql", json=TYPENAME)
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_queries_work_over_get(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Accept": JSON}
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_mutations_over_get_are_405_allowing_post(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { updateViewer(input: {name: "x"}) { id } }'},
        headers={"Accept": GRAPHQL_RESPONSE_JSON},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("content_type", ["text/plain", "application/graphql", None])
async def test_post_bodies_that_are_not_json_are_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers=headers
    )
    assert response.status_code == 415


async def test_json_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


async def test_unparseable_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b'{ "not a JSON',
        headers={"Content-Type": JSON, "Accept": GRAPHQL_RESPONSE_JSON},
    )
    assert response.status_code == 400


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        content=b'{"query": "' + b" " * (2 * 1024 * 1024) + b'{ __typename }"}',
        headers={"Content-Type": JSON},
    )
    assert response.status_code == 413


async def test_a_client_gone_mid_body_gets_no_answer_and_logs_no_error(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"query": "{ __typ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.ERROR):
        await app(scope, receive, send)
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
