"""The fast lane for batchInference answers exactly as the full path does.

As tests/integration/test_inference_lane.py does for runInference: two apps share one
database and differ only in `compiled_execution` (off, the lanes are off too). The lane app
learns each document once on its full path, then answers it below Strawberry; the reference
app answers everything through Strawberry. Status codes, headers and body bytes must be the
same once the ids of the new submissions and batch (two apps, two batches) are numbered by
first appearance. No workers run: every batch stays PENDING, on both apps alike.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.services import submissions as submission_service
from domain.submissions import Submission
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

OWNER: Final = "bea@example.com"
BUDGET: Final = 5  # inputs, in the rate-limited pair

PLAIN: Final = """
mutation B1($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id } }
}"""
NESTED: Final = """
mutation Nested($input: BatchInferenceInput!) {
  batchInference(input: $input) {
    submissions { id status input batch { id } }
    batch { id status counts { pending } }
  }
}"""
EVERYTHING: Final = """
mutation Everything($input: BatchInferenceInput!) {
  __typename
  queued: batchInference(input: $input) {
    __typename
    submissions {
      __typename id input status error attempts createdAt updatedAt
      metadata { __typename key value }
      batch { __typename id size }
    }
    batch {
      __typename id size status callbackUrl createdAt completedAt
      counts { __typename pending running succeeded failed cancelled }
    }
  }
}"""
FRAGMENTS: Final = """
mutation Fragments($input: BatchInferenceInput!, $withBatch: Boolean!) {
  batchInference(input: $input) {
    ...Payload
    again: submissions { state: status }
  }
}
fragment Payload on BatchInferencePayload {
  submissions { ...Fields ... on Node { id } }
  batch @include(if: $withBatch) { total: size counts { ...Counts } }
}
fragment Fields on Submission { status attempts }
fragment Counts on BatchCounts { pending cancelled }"""
TWO_OPERATIONS: Final = """
query Other { __typename }
mutation Named($input: BatchInferenceInput!) {
  batchInference(input: $input) { batch { size } }
}"""

GOOD: Final = [
    IRIS_INPUT,
    {**IRIS_INPUT, "petal_width_cm": 1.8},
    {**IRIS_INPUT, "petal_length_cm": 5},
]


def literal(model_id: str) -> str:
    """A document with its inputs written in the text, not in variables."""
    rows = ", ".join("{" + ", ".join(f"{k}: {v}" for k, v in row.items()) + "}" for row in GOOD)
    argument = f'{{modelId: "{model_id}", inputs: [{rows}]}}'
    return f"mutation {{ batchInference(input: {argument}) {{ submissions {{ id status }} }} }}"


# ------------------------------------------------------------------ exchanges


def batch_input(model_id: str, inputs: Sequence[Any] | Any = None, **extra: Any) -> dict[str, Any]:
    return {"input": {"modelId": model_id, "inputs": GOOD if inputs is None else inputs, **extra}}


async def learn(apps: Apps, cases: Sequence[Case]) -> None:
    """Each document's first POST: the lane app's full path answers and remembers it."""
    for document in dict.fromkeys((c.query, c.operation_name) for c in cases):
        first = next(c for c in cases if (c.query, c.operation_name) == document)
        _, counted = await post(apps.lane, apps.bearer, first.body())
        assert counted == Counter({"unknown_document": 1}), first.label


# ------------------------------------------------------------------ the differential corpus


def corpus(models: Mapping[str, str]) -> list[Case]:
    iris, diabetes = models["iris-species"], models["diabetes-progression"]
    plain, nested, everything = fresh(PLAIN), fresh(NESTED), fresh(EVERYTHING)
    fragments = fresh(FRAGMENTS)
    thousand = [{**IRIS_INPUT, "sepal_length_cm": 4.5 + n % 30 / 10} for n in range(1000)]
    bad_among_good = [*GOOD, {**IRIS_INPUT, "sepal_length_cm": "long"}, *GOOD]
    labels = [{"key": "team", "value": "vision"}, {"key": "run", "value": "7"}]
    return [
        Case("plain", plain, batch_input(iris)),
        Case("a thousand inputs", plain, batch_input(iris, thousand)),
        Case("nested fields", nested, batch_input(iris)),
        Case("every field, aliases, typenames", everything, batch_input(iris)),
        Case("metadata", everything, batch_input(iris, metadata=labels)),
        Case("fragments, @include true", fragments, {**batch_input(iris), "withBatch": True}),
        Case("fragments, @include false", fragments, {**batch_input(iris), "withBatch": False}),
        Case("one input, not in a list", nested, batch_input(iris, IRIS_INPUT)),
        Case("named in a document of two", fresh(TWO_OPERATIONS), batch_input(iris), "Named"),
        Case("literal inputs", literal(iris)),
        # Refused by the use case, after the charge: the lane's own error answers.
        Case("unknown model", nested, batch_input(d.gid("Model", uuid.uuid4()))),
        Case("not a model id", plain, batch_input("not-an-id")),
        Case("a user's id as the model", plain, batch_input(d.gid("User", uuid.uuid4()))),
        Case("input of another model", everything, batch_input(diabetes)),
        Case("a bad input among good ones", nested, batch_input(iris, bad_among_good)),
        Case("no inputs", plain, batch_input(iris, [])),
        Case("too many inputs", plain, batch_input(iris, [*thousand, IRIS_INPUT])),
        Case("metadata refused", plain, batch_input(iris, metadata=[{"key": "", "value": "x"}])),
        Case("callbackUrl without a secret", nested, batch_input(iris, callbackUrl="https://a.b/")),
        # Handed on before anything runs: the full path answers, on both apps.
        Case(
            "NUL in an input (input hygiene)",
            plain,
            batch_input(iris, [*GOOD, {**IRIS_INPUT, "note": "a\x00b"}]),
            is_served=False,
        ),
        Case("variables that do not coerce", plain, {"input": {"modelId": iris}}, is_served=False),
        Case("no variables", plain, None, is_served=False),
    ]


async def test_the_lane_answers_every_case_as_the_full_path_does(
    apps: Apps, db: AsyncEngine
) -> None:
    cases = corpus(apps.models)
    await learn(apps, cases)
    for case in cases:
        before = await _count(db)
        lane, _, counted = await compare(apps, case)
        assert counted["answered"] == (1 if case.is_served else 0), (case.label, counted)
        queued = await _count(db) - before
        body = lane.json()
        if body.get("data"):  # both apps queued the batch, each once
            assert queued > 0, case.label
            assert queued % 2 == 0, case.label
        else:  # refused: nothing queued on either app
            assert queued == 0, case.label
            assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


async def test_a_bad_input_among_good_ones_is_named_by_its_index(apps: Apps) -> None:
    document, iris = fresh(PLAIN), apps.models["iris-species"]
    case = Case("bad input", document, batch_input(iris, [*GOOD, {"sepal_length_cm": "long"}]))
    await learn(apps, [case])
    lane, _, counted = await compare(apps, case)
    assert counted == Counter({"answered": 1})
    [error] = lane.json()["errors"]
    assert error["path"] == ["batchInference"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    named = error["extensions"]["fields"]
    assert named
    assert all(path.startswith("input.inputs.3") for path in named), named


async def test_a_callback_url_with_a_secret_is_checked_as_on_the_full_path(apps: Apps) -> None:
    rotated, _ = await post(
        apps.full, apps.bearer, {"query": "mutation { rotateCallbackSecret { secret } }"}
    )
    assert rotated.json()["data"]["rotateCallbackSecret"]["secret"]
    iris, document = apps.models["iris-species"], fresh(EVERYTHING)
    cases = [
        Case("accepted", document, batch_input(iris, callbackUrl="http://127.0.0.1:9/hook")),
        Case("not http", document, batch_input(iris, callbackUrl="ftp://x")),
        # Past the string bound: the input hygiene rule refuses it, on the full path.
        Case(
            "too long",
            document,
            batch_input(iris, callbackUrl="https://a.b/" + "x" * 2048),
            is_served=False,
        ),
    ]
    await learn(apps, cases)
    answers = []
    for case in cases:
        lane, _, counted = await compare(apps, case)
        outcome = "answered" if case.is_served else "input"
        assert counted == Counter({outcome: 1}), case.label
        answers.append(lane.json())
    accepted, *refused = answers
    assert accepted["data"]["queued"]["batch"]["callbackUrl"] == "http://127.0.0.1:9/hook"
    for answer in refused:
        assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# ------------------------------------------------------------------ the rate limit


@pytest.fixture(scope="module")
async def budget_pair(
    settings: Settings, postgres_url: str
) -> AsyncIterator[tuple[Starlette, Starlette]]:
    async for both in budget_apps(settings, postgres_url, BUDGET):
        yield both


async def test_the_inference_budget_is_charged_per_input_and_given_back_as_on_the_full_path(
    budget_pair: tuple[Starlette, Starlette],
    db: AsyncEngine,
    default_models: dict[str, str],
    token: TokenFactory,
) -> None:
    iris, document = default_models["iris-species"], fresh(NESTED)
    async with pair(*budget_pair, token(OWNER), default_models) as apps:
        lane, full = apps.lane, apps.full
        refused = Case("refused: given back", document, batch_input(iris, [*GOOD[:2], {}]))
        await learn(apps, [refused])  # three inputs charged, and given back
        await post(full, apps.bearer, refused.body())
        for _ in range(3):  # 9 inputs in all, more than the budget: each batch was given back
            _, _, counted = await compare(apps, refused)
            assert counted["answered"] == 1
        ran = Case("ran", document, batch_input(iris))  # three inputs: two left
        _, _, counted = await compare(apps, ran)
        assert counted["answered"] == 1
        # Three more than the budget holds: the lane hands on, the full path refuses
        # (retryAfterSeconds is a time: compared in shape only).
        lane_refused, counted = await post(lane, apps.bearer, ran.body())
        full_refused, _ = await post(full, apps.bearer, ran.body())
        assert counted == Counter({"rate_limit": 1})
        for response in (lane_refused, full_refused):
            assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert headers_of(lane_refused) == headers_of(full_refused)
        assert lane_refused.status_code == full_refused.status_code


# ------------------------------------------------------------------ what the lane leaves alone


async def test_a_document_the_lane_cannot_serve_is_answered_by_the_full_path(apps: Apps) -> None:
    iris = apps.models["iris-species"]
    cases = [
        Case(
            "a relation below a submission",
            fresh(
                "mutation($input: BatchInferenceInput!) { batchInference(input: $input) "
                "{ submissions { id model { name } } } }"
            ),
            batch_input(iris),
            is_served=False,
        ),
        Case(
            "the batch's owner",
            fresh(
                "mutation($input: BatchInferenceInput!) { batchInference(input: $input) "
                "{ batch { size owner { email } } } }"
            ),
            batch_input(iris),
            is_served=False,
        ),
        Case(
            "two root fields",
            fresh(
                "mutation($a: BatchInferenceInput!, $b: BatchInferenceInput!) { "
                "one: batchInference(input: $a) { batch { size } } "
                "two: batchInference(input: $b) { batch { size } } }"
            ),
            {"a": batch_input(iris)["input"], "b": batch_input(iris)["input"]},
            is_served=False,
        ),
    ]
    for case in cases:
        for _ in range(2):  # the second time too: it was never learned
            lane, _, counted = await compare(apps, case)
            assert counted == Counter({"unknown_document": 1}), case.label
            assert "errors" not in lane.json(), lane.json()


async def test_an_answer_graphql_cannot_carry_is_written_by_the_full_path_without_a_second_batch(
    apps: Apps, db: AsyncEngine
) -> None:
    """No batch holds a value outside GraphQL's types, so the use case's answer is doctored
    on both apps: an attempts count past Int's range. The reference executor reports it at
    its path; so must the lane, without queueing the batch twice."""
    iris, document = apps.models["iris-species"], fresh(EVERYTHING)
    case = Case("too many attempts", document, batch_input(iris))
    await learn(apps, [case])
    with pytest.MonkeyPatch.context() as patch:
        create_batch = submission_service.create_batch

        async def doctored(*args: Any, **kwargs: Any) -> list[Submission]:
            stored = await create_batch(*args, **kwargs)
            return [replace(stored[0], attempts=2**31), *stored[1:]]

        patch.setattr(submission_service, "create_batch", doctored)
        before = await _count(db)
        lane, _, counted = await compare(apps, case)
    assert counted == Counter({"answer_fallback": 1})
    assert await _count(db) == before + 2 * len(GOOD)  # one batch on each app: none twice
    assert lane.json()["data"] is None
    assert lane.json()["errors"][0]["path"] == ["queued", "submissions", 0, "attempts"]


async def _count(db: AsyncEngine) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(submissions)) or 0)
