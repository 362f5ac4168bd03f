"""Hostile input values get BAD_USER_INPUT naming the argument path, and change nothing.

Each of these ended in INTERNAL before the boundary rule (graph/protection/input_hygiene.py):
PostgreSQL
refuses NUL in text and jsonb, a forged cursor's date overflowed, and a 100-emoji file name
passed the character count but not the file system's byte limit.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx

from tests.integration.conftest import (
    IRIS_INPUT,
    JSONDict,
    TokenFactory,
    gql,
    only_error,
)

RENAME = "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { name } }"
SUBMIT = """
mutation($input: CreateSubmissionInput!) { createSubmission(input: $input) { submission { id } } }
"""
WEBHOOK = """
mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id } }
}
"""
USERS = "query($e: String) { users(filter: {emailContains: $e}) { totalCount } }"
UPLOAD = """
mutation($input: RequestAssetUploadInput!) { requestAssetUpload(input: $input) { asset { id } } }
"""


def _refused(body: JSONDict, path: str) -> str:
    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    fields: dict[str, str] = error["extensions"]["fields"]
    assert path in fields, body
    return fields[path]


async def _viewer_name(client: httpx.AsyncClient, bearer: str) -> str:
    body = await gql(client, "{ viewer { name } }", token=bearer)
    return str(body["data"]["viewer"]["name"])


async def test_nul_in_a_string_variable_is_bad_user_input_and_changes_nothing(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    bearer = token("nul@example.com", name="before")
    await _viewer_name(client, bearer)

    body = await gql(client, RENAME, {"input": {"name": "a\x00b"}}, token=bearer)

    assert "NUL" in _refused(body, "input.name")
    assert await _viewer_name(client, bearer) == "before"


async def test_nul_in_a_string_literal_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = 'mutation { updateViewer(input: {name: "a\\u0000b"}) { name } }'

    body = await gql(client, query, token=token("nul-literal@example.com"))

    _refused(body, "input.name")


async def test_nul_in_an_idempotency_key_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    variables = {
        "input": {
            "modelId": default_models["iris-species"],
            "input": IRIS_INPUT,
            "idempotencyKey": "\x00",
        }
    }

    body = await gql(client, SUBMIT, variables, token=token("nul-key@example.com"))

    _refused(body, "input.idempotencyKey")


async def test_nul_in_a_webhook_description_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    variables = {
        "input": {
            "url": "https://example.com/hook",
            "events": ["SUBMISSION_CREATED"],
            "description": "x\x00",
        }
    }

    body = await gql(client, WEBHOOK, variables, token=token("nul-hook@example.com"))

    _refused(body, "input.description")


async def test_nul_in_a_filter_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    body = await gql(client, USERS, {"e": "\x00"}, token=token("nul-admin@example.com", ["admin"]))

    _refused(body, "filter.emailContains")


async def test_nul_inside_json_input_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    hostile: dict[str, Any] = {**IRIS_INPUT, "note\x00": ["fine", "not\x00fine"]}
    variables = {"input": {"modelId": default_models["iris-species"], "input": hostile}}

    body = await gql(client, SUBMIT, variables, token=token("nul-json@example.com"))

    assert "NUL" in _refused(body, "input.input")


async def test_huge_number_in_a_json_literal_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    query = (
        "mutation { createSubmission(input: {modelId: "
        f'"{default_models["iris-species"]}", input: {{sepal_length_cm: {10**30}}}}}) '
        "{ submission { id } } }"
    )

    body = await gql(client, query, token=token("huge@example.com"))

    assert "between" in _refused(body, "input.input")


async def test_string_over_its_byte_bound_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    body = await gql(client, RENAME, {"input": {"name": "é" * 1100}}, token=token("long@x.com"))

    assert "2048" in _refused(body, "input.name")


async def test_cursor_that_decodes_to_no_position_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    forged = base64.urlsafe_b64encode(f"0001-01-01T00:00:00+14:00|{uuid.uuid4()}".encode()).decode()

    body = await gql(
        client,
        "query($after: String) { submissions(after: $after) { totalCount } }",
        {"after": forged},
        token=token("cursor@example.com"),
    )

    _refused(body, "after")


async def test_file_name_over_255_utf8_bytes_is_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    name = "a" + "\N{GRINNING FACE}" * 100  # 101 characters, 401 bytes
    variables = {"input": {"fileName": name, "contentType": "text/plain", "sizeBytes": 3}}

    body = await gql(client, UPLOAD, variables, token=token("emoji@example.com"))

    assert "bytes" in _refused(body, "input.fileName")


async def test_comments_past_the_token_limit_are_query_too_complex(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "{ viewer { id } }" + "\n#" * 2100  # few tokens, but the parser counts comments

    body = await gql(client, query, token=token("comments@example.com"))

    error = only_error(body)
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert error["extensions"]["cost"] > error["extensions"]["limit"]


async def test_introspection_past_its_depth_limit_is_query_too_complex(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"

    body = await gql(client, query, token=token("introspect@example.com"))

    error = only_error(body)
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert error["extensions"]["limit"] == 3
