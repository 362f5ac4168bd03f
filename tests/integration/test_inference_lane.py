"""The fast lane for runInference answers exactly as the full path does.

Two apps share one database and differ only in `compiled_execution` (off, the fast lane is
off too): the lane app learns each document once on its full path, then answers it below
Strawberry; the reference app answers everything through Strawberry. Status codes, headers
and body bytes must be the same, once the ids of the new submission and result (two apps, two
submissions) and the model's measured processing time are normalised. Documents the lane
cannot serve still get the full path's answer.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.principal import Principal
from domain.services.submissions import SubmissionRequest
from domain.submissions import Result, Submission
from persistence.tables import submissions
from server.settings import Settings
from telemetry import metrics
from tests.integration import differential as d
from tests.integration.bootstrapped import BASE_URL, variant
from tests.integration.conftest import IRIS_INPUT, TokenFactory
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


# ------------------------------------------------------------------ fixtures


async def _app(settings: Settings, postgres_url: str, **overrides: Any) -> AsyncIterator[Starlette]:
    app = d.build_frozen_app(variant(settings, **overrides), postgres_url)
    async for running in d.running(app):
        yield running


def _lane_settings(compiled: bool) -> dict[str, Any]:
    return {"compiled_execution": compiled, "rate_limit_burst": 1e12}


@pytest.fixture(scope="module")
async def lane_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    async for app in _app(settings, postgres_url, **_lane_settings(True)):
        yield app


@pytest.fixture(scope="module")
async def full_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    async for app in _app(settings, postgres_url, **_lane_settings(False)):
        yield app


@dataclass
class Apps:
    lane: httpx.AsyncClient
    full: httpx.AsyncClient
    bearer: str
    models: dict[str, str]


@pytest.fixture
async def apps(
    lane_app: Starlette,
    full_app: Starlette,
    db: AsyncEngine,
    default_models: dict[str, str],
    token: TokenFactory,
) -> AsyncIterator[Apps]:
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=lane_app), base_url=BASE_URL) as lane,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=full_app), base_url=BASE_URL) as full,
    ):
        yield Apps(lane, full, token(OWNER), default_models)


# ------------------------------------------------------------------ exchanges


def lane_counts() -> Counter[str]:
    return Counter(
        {
            sample.labels["outcome"]: int(sample.value)
            for family in metrics.FAST_LANE.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }
    )


async def post(
    client: httpx.AsyncClient, bearer: str | None, body: Mapping[str, Any], accept: str | None
) -> tuple[httpx.Response, Counter[str]]:
    headers = {"Content-Type": "application/json", "X-Request-ID": "inference-lane"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    if accept is not None:
        headers["Accept"] = accept
    before = lane_counts()
    response = await client.post("/graphql", content=orjson.dumps(body), headers=headers)
    return response, lane_counts() - before


_STRING: Final = re.compile(rb'"([A-Za-z0-9_-]{40,})"')
_TIMINGS: Final = re.compile(rb'"(processingTimeMs|took)":\d+')
_RATE: Final = re.compile(r"=\d+")


def normalised(content: bytes) -> bytes:
    """The body with each new Submission and Result id numbered by first appearance, and
    the model's measured time zeroed: all that differs between two apps' runs."""
    seen: dict[bytes, int] = {}

    def number(match: re.Match[bytes]) -> bytes:
        text = match.group(1)
        try:
            decoded = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return match.group(0)
        kind, _, rest = decoded.partition(":")
        if kind not in ("Submission", "Result") or len(rest) != 36:
            return match.group(0)
        return b'"%s#%d"' % (kind.encode(), seen.setdefault(text, len(seen)))

    return _TIMINGS.sub(rb'"\1":0', _STRING.sub(number, content))


def headers_of(response: httpx.Response) -> list[tuple[str, str]]:
    """All headers, in order, but what is left of the RateLimit budget (it changes)."""
    return [
        (name, _RATE.sub("=N", value) if name == "ratelimit" else value)
        for name, value in response.headers.multi_items()
        if name != "content-length"
    ]


@dataclass(frozen=True)
class Case:
    label: str
    query: str
    variables: dict[str, Any] | None = None
    operation_name: str | None = None
    accept: str | None = None
    signed_in: bool = True
    is_served: bool = True  # by the lane, once learned

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"query": self.query}
        if self.variables is not None:
            body["variables"] = self.variables
        if self.operation_name is not None:
            body["operationName"] = self.operation_name
        return body


async def compare(apps: Apps, case: Case) -> tuple[httpx.Response, httpx.Response, Counter[str]]:
    """The case sent to the lane app, then to the full app; both answers and the lane's count."""
    bearer = apps.bearer if case.signed_in else None
    lane, counted = await post(apps.lane, bearer, case.body(), case.accept)
    full, _ = await post(apps.full, bearer, case.body(), case.accept)
    assert (lane.status_code, headers_of(lane)) == (full.status_code, headers_of(full)), case
    assert normalised(lane.content) == normalised(full.content), (
        case.label,
        lane.content,
        full.content,
    )
    return lane, full, counted


def fresh(document: str) -> str:
    """A text neither app has seen: each test learns its own documents."""
    return f"# {uuid.uuid4()}\n{document}"


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
async def budget_lane_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    limits = {"inference_burst": BUDGET, "inference_rate_per_second": 1e-6}
    async for app in _app(settings, postgres_url, compiled_execution=True, **limits):
        yield app


@pytest.fixture(scope="module")
async def budget_full_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    limits = {"inference_burst": BUDGET, "inference_rate_per_second": 1e-6}
    async for app in _app(settings, postgres_url, compiled_execution=False, **limits):
        yield app


async def test_the_inference_budget_is_charged_and_given_back_as_on_the_full_path(
    budget_lane_app: Starlette,
    budget_full_app: Starlette,
    db: AsyncEngine,
    default_models: dict[str, str],
    token: TokenFactory,
) -> None:
    iris, document = default_models["iris-species"], fresh(PLAIN)
    lane_transport = httpx.ASGITransport(app=budget_lane_app)
    full_transport = httpx.ASGITransport(app=budget_full_app)
    async with (
        httpx.AsyncClient(transport=lane_transport, base_url=BASE_URL) as lane,
        httpx.AsyncClient(transport=full_transport, base_url=BASE_URL) as full,
    ):
        apps = Apps(lane, full, token(OWNER), default_models)
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
