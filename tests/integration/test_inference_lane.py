"""The fast lane for runInference answers exactly as the full path does.

Two apps share one database and differ only in `compiled_execution` (off, the fast lane is
off too): the lane app learns each document once on its full path, then answers it below
Strawberry; the reference app answers everything through Strawberry. Status codes, headers
and body bytes must be the same, once the ids of the new submission and result (two apps, two
submissions) and the model's measured processing time are normalised. Documents the lane
cannot serve still get the full path's answer.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Final

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.principal import Principal
from domain.services.submissions import SubmissionRequest
from domain.submissions import Result, Submission
from persistence.tables import submissions
from server.settings import Settings
from tests.integration import differential as d
from tests.integration.conftest import IRIS_INPUT, TokenFactory
from tests.integration.lanes import (
    Apps,
    Case,
    budget_apps,
    compare,
    fresh,
    headers_of,
    pair,
    post,
)
from tests.integration.test_pipeline import view_of

OWNER: Final = "ivy@example.com"
BUDGET: Final = 3
DIABETES_INPUT: Final = {
    **{"age": 50, "sex": 1, "bmi": 26.5, "bp": 90.0, "s1": 190, "s2": 115.0},
    **{"s3": 50.0, "s4": 4.0, "s5": 4.6, "s6": 91},
}  # the rate-limited pair's inference burst

PLAIN: Final = """
mutation Run($input: RunInferenceInput!) {
  runInference(input: $input) {
    submission { status }
    result { prediction }
  }
}"""
EVERYTHING: Final = """
mutation Everything($input: RunInferenceInput!) {
  __typename
  ran: runInference(input: $input) {
    __typename
    submission {
      __typename id input status error attempts createdAt updatedAt
      metadata { key value }
    }
    result {
      __typename id prediction confidence modelVersion processingTimeMs createdAt
      alternatives { value confidence }
    }
  }
}"""
FRAGMENTS: Final = """
mutation Fragments($input: RunInferenceInput!, $withResult: Boolean!) {
  runInference(input: $input) {
    ...Payload
    again: submission { status }
  }
}
fragment Payload on RunInferencePayload {
  submission { ...Fields ... on Node { id } }
  result @include(if: $withResult) { answer: prediction took: processingTimeMs }
}
fragment Fields on Submission { status attempts }"""
TWO_OPERATIONS: Final = """
query Other { __typename }
mutation Named($input: RunInferenceInput!) {
  runInference(input: $input) { result { confidence } }
}"""


def literal(model_id: str, value: Mapping[str, float] | None = None) -> str:
    """A document with its input written in the text, not in variables."""
    features = ", ".join(f"{k}: {v}" for k, v in (value or IRIS_INPUT).items())
    selection = "{ submission { status attempts } result { prediction confidence } }"
    argument = f'{{modelId: "{model_id}", input: {{{features}}}}}'
    return f"mutation {{ runInference(input: {argument}) {selection} }}"


# ------------------------------------------------------------------ exchanges


def run_input(model_id: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "input": {"modelId": model_id, "input": IRIS_INPUT if value is None else value, **extra}
    }


# ------------------------------------------------------------------ the differential corpus


def corpus(models: Mapping[str, str]) -> list[Case]:
    iris, diabetes = models["iris-species"], models["diabetes-progression"]
    unknown = d.gid("Model", uuid.uuid4())
    everything, plain, fragments = fresh(EVERYTHING), fresh(PLAIN), fresh(FRAGMENTS)
    labelled = run_input(iris, metadata=[{"key": "team", "value": "vision"}])
    return [
        Case("plain", plain, run_input(iris)),
        Case("every scalar, aliases, typenames", everything, labelled),
        Case("another model", everything, run_input(diabetes, DIABETES_INPUT)),
        Case("fragments, @include true", fragments, {**run_input(iris), "withResult": True}),
        Case("fragments, @include false", fragments, {**run_input(iris), "withResult": False}),
        Case("named in a document of two", fresh(TWO_OPERATIONS), run_input(iris), "Named"),
        Case("literal input", literal(iris)),
        Case(
            "graphql-response+json",
            plain,
            run_input(iris),
            accept="application/graphql-response+json",
        ),
        # Refused by the use case, after the charge: the lane's own error answers.
        Case("unknown model", everything, run_input(unknown)),
        Case("not a model id", plain, run_input("not-an-id")),
        Case("a user's id as the model", plain, run_input(d.gid("User", uuid.uuid4()))),
        Case("input outside the schema", plain, run_input(iris, {"sepal_length_cm": "long"})),
        Case("input missing fields", everything, run_input(iris, {})),
        Case("literal, wrong input", literal(iris, {"sepal_length_cm": -1.0})),
        Case("key too long", plain, run_input(iris, idempotencyKey="k" * 201)),
        Case("metadata refused", plain, run_input(iris, metadata=[{"key": "", "value": "x"}])),
        Case(
            "asset id of another type",
            plain,
            run_input(iris, assetIds=[d.gid("Model", uuid.uuid4())]),
        ),
        Case("unknown asset", plain, run_input(iris, assetIds=[d.gid("Asset", uuid.uuid4())])),
        # Handed on before anything runs: the full path answers, on both apps.
        Case("variables that do not coerce", plain, {"input": {"modelId": iris}}, is_served=False),
        Case("no variables", plain, None, is_served=False),
        Case("signed out", plain, run_input(iris), signed_in=False, is_served=False),
    ]


async def test_the_lane_answers_every_case_as_the_full_path_does(apps: Apps) -> None:
    cases = corpus(apps.models)
    for document in dict.fromkeys((c.query, c.operation_name) for c in cases):
        learn = next(c for c in cases if (c.query, c.operation_name) == document)
        _, counted = await post(apps.lane, apps.bearer, learn.body(), None)
        assert counted == Counter({"unknown_document": 1}), learn.label

    for case in cases:
        lane, _, counted = await compare(apps, case)
        assert counted["answered"] == (1 if case.is_served else 0), (case.label, counted)
        if case.is_served:
            assert lane.json()["data"] is not None or lane.json()["errors"][0]["path"], case.label


async def test_a_replayed_idempotency_key_is_answered_with_the_first_submission(
    apps: Apps, db: AsyncEngine
) -> None:
    document, iris = fresh(EVERYTHING), apps.models["iris-species"]
    await post(apps.lane, apps.bearer, {"query": document, "variables": run_input(iris)}, None)
    key = f"key-{uuid.uuid4()}"
    first = Case("first", document, run_input(iris, idempotencyKey=key))
    other = Case(
        "another input",
        document,
        run_input(iris, {**IRIS_INPUT, "sepal_width_cm": 3.0}, idempotencyKey=key),
    )

    _, counted = await post(apps.lane, apps.bearer, first.body(), None)  # the lane runs it
    assert counted == Counter({"answered": 1})

    lane, full, counted = await compare(apps, first)  # both answer with the first submission
    assert counted["answered"] == 1
    assert lane.content == full.content  # the very same submission: nothing to normalise
    lane, _, counted = await compare(apps, other)
    assert counted["answered"] == 1
    assert lane.json()["errors"][0]["extensions"]["code"] == "CONFLICT"
    async with db.connect() as conn:
        keyed = await conn.scalar(
            sa.select(sa.func.count()).where(submissions.c.idempotency_key == key)
        )
    assert keyed == 1


@pytest.fixture(scope="module")
async def budget_pair(
    settings: Settings, postgres_url: str
) -> AsyncIterator[tuple[Starlette, Starlette]]:
    async for both in budget_apps(settings, postgres_url, BUDGET):
        yield both


async def test_the_inference_budget_is_charged_and_given_back_as_on_the_full_path(
    budget_pair: tuple[Starlette, Starlette],
    db: AsyncEngine,
    default_models: dict[str, str],
    token: TokenFactory,
) -> None:
    iris, document = default_models["iris-species"], fresh(PLAIN)
    async with pair(*budget_pair, token(OWNER), default_models) as apps:
        lane, full = apps.lane, apps.full
        await post(lane, apps.bearer, {"query": document, "variables": run_input(iris)}, None)
        await post(full, apps.bearer, {"query": document, "variables": run_input(iris)}, None)
        refused = Case("refused input: given back", document, run_input(iris, {}))
        for _ in range(BUDGET + 1):  # more than the budget: each one was given back
            _, _, counted = await compare(apps, refused)
            assert counted["answered"] == 1
        ran = Case("ran", document, run_input(iris))
        for _ in range(BUDGET - 1):
            _, _, counted = await compare(apps, ran)
            assert counted["answered"] == 1
        # The budget is spent: the lane hands on, the full path refuses (retryAfterSeconds
        # is a time: compared in shape only).
        lane_refused, counted = await post(lane, apps.bearer, ran.body(), None)
        full_refused, _ = await post(full, apps.bearer, ran.body(), None)
        assert counted == Counter({"rate_limit": 1})
        for response in (lane_refused, full_refused):
            assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert headers_of(lane_refused) == headers_of(full_refused)


# ------------------------------------------------------------------ what the lane leaves alone


async def test_a_document_the_lane_cannot_serve_is_answered_by_the_full_path(apps: Apps) -> None:
    iris = apps.models["iris-species"]
    with_relation = fresh(
        "mutation($input: RunInferenceInput!) { runInference(input: $input) "
        "{ submission { status model { name } } result { prediction } } }"
    )
    two_roots = fresh(
        "mutation($a: RunInferenceInput!, $b: RunInferenceInput!) { "
        "one: runInference(input: $a) { submission { status } } "
        "two: runInference(input: $b) { submission { status } } }"
    )
    cases = [
        Case("a relation below the payload", with_relation, run_input(iris), is_served=False),
        Case(
            "two root fields",
            two_roots,
            {"a": run_input(iris)["input"], "b": run_input(iris)["input"]},
            is_served=False,
        ),
    ]
    for case in cases:
        for _ in range(2):  # the second time too: it was never learned
            lane, _, counted = await compare(apps, case)
            assert counted == Counter({"unknown_document": 1}), case.label
            assert "errors" not in lane.json(), lane.json()
    body = lane.json()["data"]
    assert body["one"]["submission"]["status"] == body["two"]["submission"]["status"] == "SUCCEEDED"


async def test_an_answer_graphql_cannot_carry_is_written_by_the_full_path_without_a_second_run(
    apps: Apps, lane_app: Starlette, full_app: Starlette, db: AsyncEngine
) -> None:
    """No model here answers with a value outside GraphQL's types (NaN and infinities fail
    the submission first), so the use case's answer is doctored on both apps: a processing
    time past Int's range. The reference executor reports it at its path; so must the lane."""
    iris, document = apps.models["iris-species"], fresh(EVERYTHING)
    await post(apps.lane, apps.bearer, {"query": document, "variables": run_input(iris)}, None)
    with pytest.MonkeyPatch.context() as patch:
        for app in (lane_app, full_app):
            inference = view_of(app).deps.inference
            assert inference is not None
            patch.setattr(inference, "run", _too_long(inference.run))
        before = await _count(db)
        lane, full, counted = await compare(apps, Case("too long", document, run_input(iris)))
    assert counted == Counter({"answer_fallback": 1})
    assert await _count(db) == before + 2  # one run on each app: none twice
    error = lane.json()["errors"][0]
    assert error["path"] == ["ran", "result", "processingTimeMs"]
    assert lane.json()["data"]["ran"]["result"] is None
    assert full.json()["data"]["ran"]["submission"]["status"] == "SUCCEEDED"


Run = Callable[[Principal, SubmissionRequest], Awaitable[tuple[Submission, Result | None]]]


def _too_long(run: Run) -> Run:
    async def doctored(
        principal: Principal, request: SubmissionRequest
    ) -> tuple[Submission, Result | None]:
        submission, result = await run(principal, request)
        assert result is not None
        return submission, replace(result, processing_time_ms=2**31)

    return doctored


async def _count(db: AsyncEngine) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(submissions)) or 0)
