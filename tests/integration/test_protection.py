"""Query limits, cost, rate limits and malformed requests, through the in-process app."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import JSONDict, TokenFactory, error_codes, gql, only_error

VIEWER = "{ viewer { id name } }"
RENAME = 'updateViewer(input: {name: "renamed"}) { id }'
LEAKS = ("Traceback", "sqlalchemy", "asyncpg", "/work/", 'File "')


@pytest.fixture(scope="module")
async def protected_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    """The app as server.bootstrap.build_app wires it, with the default limits."""
    async for app in running_app(settings, postgres_url):
        yield app


@pytest.fixture
async def client(protected_app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=protected_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture(scope="module")
async def strict_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    """Tiny rate limits (each test has its own users, so its own buckets), batching on."""
    tiny = {
        "rate_limit_points_per_second": 1,
        "rate_limit_burst": 5,
        "inference_rate_per_second": 0.5,
        "inference_burst": 1,
        "batching": True,
        "max_batch_operations": 3,
        "environment": "production",
        "introspection": False,
        "graphiql": False,
    }
    async for app in running_app(settings, postgres_url, **tiny):
        yield app


@pytest.fixture
async def strict_client(strict_app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=strict_app, client=("203.0.113.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def _viewer_name(client: httpx.AsyncClient, bearer: str) -> str:
    body = await gql(client, VIEWER, token=bearer)
    return str(body["data"]["viewer"]["name"])


def _nested(depth: int) -> str:
    """`{ viewer { submissions { edges { node { owner { ... } } } } } }`, `depth` fields deep."""
    cycle = ["submissions", "edges", "node", "owner"]
    names = ["viewer"] + [cycle[i % 4] for i in range(depth - 2)]
    leaf = {"submissions": "totalCount", "edges": "cursor"}.get(names[-1], "id")
    return "{ " + " { ".join([*names, leaf]) + " }" * len(names) + " }"


def _assert_too_complex(body: JSONDict, limit: int) -> JSONDict:
    error = only_error(body)
    assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX", body
    assert error["extensions"]["limit"] == limit
    assert error["extensions"]["cost"] > limit
    assert error["extensions"]["requestId"]
    assert body.get("data") is None
    return error


async def test_too_many_aliases_is_refused_before_the_mutation_runs(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    bearer = token("ali@example.com", name="Ali")
    assert await _viewer_name(client, bearer) == "Ali"
    aliases = " ".join(f"a{i}: {RENAME}" for i in range(31))

    body = await gql(client, f"mutation {{ {aliases} }}", token=bearer)

    error = _assert_too_complex(body, 30)
    assert "aliases" in error["message"]
    assert await _viewer_name(client, bearer) == "Ali"


async def test_too_deep_query_is_refused(client: httpx.AsyncClient, token: TokenFactory) -> None:
    body = await gql(client, _nested(11), token=token("deep@example.com"))

    error = _assert_too_complex(body, 10)
    assert error["extensions"]["cost"] == 11
    assert "too deep" in error["message"]


async def test_too_costly_query_is_refused_with_its_cost(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = """query($n: Int) { submissions(first: $n) { edges { node {
        results { id submission { results { id } } } } } } }"""

    body = await gql(client, query, {"n": 100}, token=token("cost@example.com"))

    error = _assert_too_complex(body, 10_000)
    assert error["extensions"]["cost"] == 100 * (1 + 1 + 1 + 10 * (1 + 1 + 10))
    assert "costly" in error["message"]


async def test_oversized_document_is_refused_before_parsing(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "{ viewer { id } }" + "#" * 21_000

    body = await gql(client, query, token=token("big@example.com"))

    error = _assert_too_complex(body, 20 * 1024)
    assert "too large" in error["message"]


async def test_cost_header_puts_the_cost_in_the_extensions(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "{ viewer { id } submissions(first: 5) { edges { node { id } } } }"
    bearer = token("costly@example.com")

    with_cost = await gql(client, query, token=bearer, headers={"X-Assay-Cost": "1"})
    without = await gql(client, query, token=bearer)

    assert with_cost["extensions"]["cost"] == 1 + 5 * (1 + 1 + 1)
    assert "cost" not in (without.get("extensions") or {})


async def test_first_out_of_range_is_still_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "{ viewer { submissions(first: 1000) { totalCount } } }"

    body = await gql(client, query, token=token("range@example.com"))

    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_rate_limit_refuses_with_retry_after(
    strict_client: httpx.AsyncClient, token: TokenFactory
) -> None:
    bearer = token("rate@example.com")
    headers = {"Authorization": f"Bearer {bearer}"}
    query = {"query": "{ viewer { id } }"}
    statuses = [await strict_client.post("/graphql", json=query, headers=headers) for _ in range(5)]
    assert all("errors" not in r.json() for r in statuses)

    refused = await strict_client.post("/graphql", json=query, headers=headers)

    error = only_error(refused.json())
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 0 < error["extensions"]["retryAfterSeconds"] <= 1
    assert refused.headers["Retry-After"] == "1"
    other = await gql(strict_client, "{ viewer { id } }", token=token("other@example.com"))
    assert "errors" not in other


async def test_inference_has_its_own_lower_budget(
    strict_client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    bearer = token("infer@example.com")
    # Accepted work: refused submissions (e.g. an unknown model) are given back.
    iris = "{sepal_length_cm: 5.1, sepal_width_cm: 3.5, petal_length_cm: 1.4, petal_width_cm: 0.2}"
    model = default_models["iris-species"]
    create = (
        f'createSubmission(input: {{modelId: "{model}", input: {iris}}}) {{ submission {{ id }} }}'
    )
    # A request over the burst passes on a full bucket and leaves a debt: 2 - 1 = -1.
    started = time.monotonic()
    first = await gql(strict_client, f"mutation {{ a: {create} b: {create} }}", token=bearer)

    second = await gql(strict_client, f"mutation {{ {create} }}", token=bearer)
    elapsed = time.monotonic() - started

    assert "RATE_LIMITED" not in error_codes(first)
    assert error_codes(second) == ["RATE_LIMITED"]
    # Paying back the debt and the next submission takes 2 / 0.5 s = 4 s, less what refilled
    # between the two charges (at most the time both requests took); an empty bucket without
    # the debt would say at most 2 s.
    retry_after = only_error(second)["extensions"]["retryAfterSeconds"]
    assert max(2.0, 4 - elapsed) < retry_after <= 4


async def test_anonymous_callers_are_limited_per_address(
    strict_client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        await gql(strict_client, "{ __typename }")

    body = await gql(strict_client, "{ __typename }")

    assert error_codes(body) == ["RATE_LIMITED"]


async def test_suggestions_are_hidden_outside_development(
    strict_client: httpx.AsyncClient, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "{ viewer { nam } }"

    production = await gql(strict_client, query, token=token("p@example.com"))
    development = await gql(client, query, token=token("d@example.com"))

    assert "Did you mean" not in only_error(production)["message"]
    assert "Did you mean" in only_error(development)["message"]


async def test_batch_is_refused_when_batching_is_off(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json=[{"query": "{ __typename }"}])

    assert response.status_code == 400
    assert "Batching is not enabled" in response.text


async def test_batch_runs_each_operation_through_the_limits(
    strict_client: httpx.AsyncClient, token: TokenFactory
) -> None:
    headers = {"Authorization": f"Bearer {token('batch@example.com')}"}
    batch = [{"query": "{ viewer { id } }"}, {"query": _nested(11)}]

    response = await strict_client.post("/graphql", json=batch, headers=headers)
    too_many = await strict_client.post("/graphql", json=batch * 2, headers=headers)

    first, second = response.json()
    assert "errors" not in first
    assert error_codes(second) == ["QUERY_TOO_COMPLEX"]
    assert too_many.status_code == 400


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b'{"query": ', "application/json", 400, "Unable to parse request body as JSON"),
        (b"query { viewer { id } }", "text/plain", 415, "must be application/json"),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json", 400, "variables"),
        (b'{"query": 7}', "application/json", 400, "query"),
        (b"\xff\xfe{}", "application/json", 400, "JSON"),
        (b'{"query": "\xc3\x28"}', "application/json", 400, "JSON"),
        (b"42", "application/json", 400, "JSON object"),
        (b"[1, 2]", "application/json", 400, "Batching is not enabled"),
        (b"{}", "application/json", 400, "No GraphQL query found"),
    ],
)
async def test_malformed_requests_get_a_clear_4xx(
    client: httpx.AsyncClient, content: bytes, content_type: str, status: int, message: str
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"Content-Type": content_type}
    )

    assert response.status_code == status, response.text
    assert message in response.text
    assert not any(leak in response.text for leak in LEAKS)


async def test_batch_of_non_objects_is_a_400(strict_client: httpx.AsyncClient) -> None:
    response = await strict_client.post("/graphql", json=[1, "x"])

    assert response.status_code == 400, response.text


async def test_variables_of_the_wrong_type_are_bad_user_input(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    query = "query($n: Int) { viewer { submissions(first: $n) { totalCount } } }"

    body = await gql(client, query, {"n": "ten"}, token=token("vars@example.com"))

    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    huge = b'{"query": "' + b" " * (10 * 1024 * 1024) + b'{ __typename }"}'

    declared = await client.post(
        "/graphql", content=huge, headers={"Content-Type": "application/json"}
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 256 * 1024):
            yield huge[start : start + 256 * 1024]

    streamed = await client.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "too large" in streamed.text
    assert streamed.headers["x-request-id"]


async def test_lone_surrogates_do_not_break_the_response(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    body = b'{"query": "{ user(id: \\"\\ud800\\") { id } }"}'

    response = await client.post(
        "/graphql",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token('s@example.com')}",
        },
    )

    assert response.status_code == 400, response.text
    assert "Unable to parse request body as JSON" in response.text


async def test_server_still_answers_after_abuse(
    client: httpx.AsyncClient, token: TokenFactory
) -> None:
    body = await gql(client, VIEWER, token=token("after@example.com"))

    assert body["data"]["viewer"]["id"]


@pytest.fixture(scope="module")
async def inference_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    """An inference budget of 10 that does not refill during a test."""
    budget = {"inference_burst": 10, "inference_rate_per_second": 0.001}
    async for app in running_app(settings, postgres_url, **budget):
        yield app


BATCH = """
mutation($input: BatchInferenceInput!) { batchInference(input: $input) { submissions { id } } }
"""


async def test_refused_batches_do_not_spend_the_inference_rate(
    inference_app: Starlette, db: AsyncEngine, token: TokenFactory, default_models: dict[str, str]
) -> None:
    model = default_models["iris-species"]
    valid = {
        "sepal_length_cm": 5.1,
        "sepal_width_cm": 3.5,
        "petal_length_cm": 1.4,
        "petal_width_cm": 0.2,
    }
    bearer = token("batcher@example.com")
    transport = httpx.ASGITransport(app=inference_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        codes = [
            error_codes(await gql(client, BATCH, {"input": batch}, token=bearer))
            for batch in (
                {"modelId": model, "inputs": [{"wrong": n} for n in range(8)]},
                {"modelId": model, "inputs": [{"wrong": n} for n in range(8)]},
                {"modelId": model, "inputs": [valid] * 8},
                {"modelId": model, "inputs": [valid] * 8},
            )
        ]

    assert codes == [["BAD_USER_INPUT"], ["BAD_USER_INPUT"], [], ["RATE_LIMITED"]]


async def test_an_idempotency_key_replayed_with_another_input_is_conflict(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    submit = """mutation($input: CreateSubmissionInput!) {
      createSubmission(input: $input) { submission { id } } }"""
    sample = {
        "sepal_length_cm": 5.1,
        "sepal_width_cm": 3.5,
        "petal_length_cm": 1.4,
        "petal_width_cm": 0.2,
    }
    request = {"modelId": default_models["iris-species"], "input": sample, "idempotencyKey": "k1"}
    bearer = token("replay@example.com")

    first = await gql(client, submit, {"input": request}, token=bearer)
    same = await gql(client, submit, {"input": request}, token=bearer)
    other = {**request, "input": {**sample, "sepal_length_cm": 6.0}}
    changed = await gql(client, submit, {"input": other}, token=bearer)

    assert same["data"] == first["data"]
    assert error_codes(changed) == ["CONFLICT"]


def _points_left(response: httpx.Response) -> int:
    found = re.search(r'"points";r=(\d+);t=(\d+)', response.headers["RateLimit"])
    assert found is not None, response.headers["RateLimit"]
    return int(found[1])


async def test_answers_to_a_signed_in_caller_carry_its_rate_limits(
    strict_client: httpx.AsyncClient, token: TokenFactory
) -> None:
    headers = {
        "Authorization": f"Bearer {token('budget@example.com')}",
        "Accept": "application/graphql-response+json",
    }
    query = {"query": "{ viewer { id } }"}
    answers = [await strict_client.post("/graphql", json=query, headers=headers) for _ in range(3)]
    # The strict app's buckets: 5 points back in 5 s, 1 inference back in 2 s.
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.headers["RateLimit-Policy"] == '"points";q=5;w=5, "inference";q=1;w=2'
    left = [_points_left(a) for a in answers]
    assert left[0] <= 4
    assert left == sorted(left, reverse=True)
    assert left[-1] < left[0]
    for _ in range(10):  # 5 points and 1 a second: refused within a few requests
        refused = await strict_client.post("/graphql", json=query, headers=headers)
        if refused.status_code != 200:
            break
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert _points_left(refused) == 0


async def test_anonymous_answers_carry_no_rate_limit_fields(
    strict_client: httpx.AsyncClient,
) -> None:
    answer = await strict_client.post("/graphql", json={"query": "{ __typename }"})
    assert answer.status_code == 200
    assert "RateLimit" not in answer.headers
    assert "RateLimit-Policy" not in answer.headers
