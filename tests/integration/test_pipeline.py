"""One request pipeline: the full path and the fast lane take the same steps, in the same
order, through the same Pipeline (graph/execution/pipeline.py). This fails when they drift apart: a
step one path takes and the other skips, or does by other means."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import strawberry
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from graph.execution.pipeline import STEPS, Pipeline, RequestState
from graph.ids import parse_id, to_global_id
from graph.protection.limits import measure_operation
from graph.transport.view import AssayGraphQL
from server.bootstrap import build_app
from server.settings import Settings
from tests.factories import make_model, make_submission, make_user
from tests.integration.bootstrapped import BASE_URL, variant
from tests.integration.conftest import IRIS_INPUT, TokenFactory
from tests.integration.lanes import lane_counts

VIEWER = "query Me { viewer { id email submissions(first: 2) { totalCount } } }"
LOOKUP = "query Lookup($id: ID!) { submission(id: $id) { id status owner { id } } }"


def view_of(app: Starlette) -> AssayGraphQL:
    for route in app.router.routes:
        if isinstance(route, Route) and route.path == "/graphql":
            assert isinstance(route.endpoint, AssayGraphQL)
            return route.endpoint
    raise AssertionError("no /graphql route")


def pipeline_of(app: Starlette) -> Pipeline:
    return view_of(app).pipeline


@pytest.fixture(scope="module")
async def app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    # A bucket that does not refill during a test, so a charge shows as a difference.
    limits = {"rate_limit_burst": 1_000_000, "rate_limit_points_per_second": 0.001}
    built = build_app(variant(settings, **limits), postgres_url)
    async with built.router.lifespan_context(built):
        yield built


@pytest.fixture
async def client(app: Starlette, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def steps_of(
    client: httpx.AsyncClient, pipeline: Pipeline, bearer: str, query: str, **extra: Any
) -> tuple[list[str], Counter[str], dict[str, Any]]:
    """The pipeline steps one POST took, what the fast lane counted, and the body."""
    steps: list[str] = []
    pipeline.on_step = steps.append
    before = lane_counts()
    try:
        response = await client.post(
            "/graphql",
            content=orjson.dumps({"query": query, **extra}),
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        )
    finally:
        pipeline.on_step = None
    body: dict[str, Any] = response.json()
    return steps, lane_counts() - before, body


async def test_the_full_path_and_the_fast_lane_take_every_step_in_the_same_order(
    app: Starlette, client: httpx.AsyncClient, token: TokenFactory
) -> None:
    pipeline, bearer = pipeline_of(app), token("pia@example.com")
    query = f"# {uuid.uuid4()}\n{VIEWER}"

    full, full_lane, first = await steps_of(client, pipeline, bearer, query)
    fast, fast_lane, second = await steps_of(client, pipeline, bearer, query)

    assert full_lane == Counter({"unknown_document": 1})  # answered by the full path
    assert fast_lane == Counter({"answered": 1})  # answered by the lane
    assert full == fast == list(STEPS)
    assert first == second
    assert "errors" not in first


async def test_a_request_the_lane_hands_on_is_signed_in_once_and_charged_once(
    app: Starlette, client: httpx.AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    pipeline, bearer = pipeline_of(app), token("quinn@example.com")
    query = f"# {uuid.uuid4()}\n{LOOKUP}"
    _, _, me = await steps_of(client, pipeline, bearer, VIEWER)
    user_id = parse_id(me["data"]["viewer"]["id"], "User")
    assert user_id is not None
    model = await make_model(db, name=f"model-{uuid.uuid4().hex[:8]}")
    mine = to_global_id("Submission", await make_submission(db, user_id, model))
    other = await make_user(db, "rex@example.com")
    theirs = to_global_id("Submission", await make_submission(db, other, model))
    await steps_of(client, pipeline, bearer, query, variables={"id": mine})  # now known
    assert pipeline.rate_limiter is not None
    bucket = pipeline.rate_limiter.points
    before = bucket.available(f"user:{user_id}")

    # Another user's submission: the compiled path declines (NOT_FOUND needs the reference
    # executor's error), the lane gives back its charge and hands on; the full path neither
    # signs in nor tries the compiled path again.
    steps, lane, body = await steps_of(client, pipeline, bearer, query, variables={"id": theirs})

    assert lane == Counter({"fallback": 1})
    lane_steps = ["authenticate", "resolve_document", "limits", "charge", "execute"]
    assert steps == lane_steps + [s for s in STEPS if s != "authenticate"]
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    schema = view_of(app).schema
    assert isinstance(schema, strawberry.Schema)
    measure = measure_operation(schema._schema, parse(query), None, {"id": theirs})
    assert measure is not None
    assert round(before - bucket.available(f"user:{user_id}")) == measure.cost  # once


def test_request_state_is_one_typed_object_per_request() -> None:
    scope: dict[str, Any] = {"type": "http", "headers": []}
    request = Request(scope)
    state = RequestState.of(request)
    assert RequestState.of(request) is state
    assert (state.principal_or_error, state.compiled_declined, state.sub_response) == (
        None,
        False,
        None,
    )


RUN = """mutation Run($input: RunInferenceInput!) {
  runInference(input: $input) { submission { status } result { prediction } }
}"""


async def test_a_run_inference_takes_the_same_steps_on_the_full_path_and_the_lane(
    app: Starlette, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    pipeline, bearer = pipeline_of(app), token("rhea@example.com")
    query = f"# {uuid.uuid4()}\n{RUN}"
    variables = {"input": {"modelId": default_models["iris-species"], "input": IRIS_INPUT}}

    full, full_lane, first = await steps_of(client, pipeline, bearer, query, variables=variables)
    fast, fast_lane, second = await steps_of(client, pipeline, bearer, query, variables=variables)

    assert full_lane == Counter({"unknown_document": 1})
    assert fast_lane == Counter({"answered": 1})
    # A mutation has no compiled run: the execute step is the query paths'.
    assert full == fast == [step for step in STEPS if step != "execute"]
    assert first == second
    assert first["data"]["runInference"]["submission"]["status"] == "SUCCEEDED"


BATCH = """mutation Queue($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { status } batch { size } }
}"""


async def test_a_batch_inference_takes_the_same_steps_on_the_full_path_and_the_lane(
    app: Starlette, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    pipeline, bearer = pipeline_of(app), token("rhea@example.com")
    query = f"# {uuid.uuid4()}\n{BATCH}"
    inputs = [IRIS_INPUT, IRIS_INPUT]
    variables = {"input": {"modelId": default_models["iris-species"], "inputs": inputs}}

    full, full_lane, first = await steps_of(client, pipeline, bearer, query, variables=variables)
    fast, fast_lane, second = await steps_of(client, pipeline, bearer, query, variables=variables)

    assert full_lane == Counter({"unknown_document": 1})
    assert fast_lane == Counter({"answered": 1})
    assert full == fast == [step for step in STEPS if step != "execute"]
    assert first == second
    assert first["data"]["batchInference"]["batch"]["size"] == 2
