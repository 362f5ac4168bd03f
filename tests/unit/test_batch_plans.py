"""Which batchInference documents the batch lane learns, and the answers its plans write."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from graphql import parse

from domain.batches import Batch, BatchCounts
from domain.ids import to_global_id
from domain.submissions import Submission, SubmissionStatus
from graph.execution.batch_plans import BatchAnswer, compile_batch
from graph.execution.inference_plans import InferencePlan, known_inference
from graph.schema.record import schema
from tests.unit.test_realtime import NOW, a_submission

GQL = schema._schema
VARIABLES = {"input": {"modelId": "TW9kZWw6MQ", "inputs": [{"x": 1}, {"x": 2}]}}
HEAD = "mutation($input: BatchInferenceInput!, $on: Boolean = true)"


def plan_of(
    text: str, variables: dict[str, Any] | None = None
) -> InferencePlan[BatchAnswer] | None:
    given = VARIABLES if variables is None else variables
    known = known_inference(GQL, parse(text), None, given, compile_batch)
    if known is None:
        return None
    coerced = known.coerced(GQL, given)
    assert coerced is not None
    plan = known.plan(GQL, coerced)
    assert not isinstance(plan, str)
    return plan


def an_answer() -> tuple[list[Submission], Batch]:
    batch = Batch(
        id=uuid.uuid4(),
        owner_id=uuid.uuid4(),
        model_id=uuid.uuid4(),
        size=2,
        callback_url=None,
        created_at=NOW,
        updated_at=NOW,
        completed_at=None,
        cancelled_at=None,
        counts=BatchCounts(pending=2),
    )
    queued = [
        replace(a_submission(SubmissionStatus.PENDING), batch_id=batch.id, attempts=0)
        for _ in range(2)
    ]
    return queued, batch


@pytest.mark.parametrize(
    "text",
    [
        f"{HEAD} {{ q: batchInference(input: $input) {{ submissions {{ id }} }} }}",
        f"{HEAD} {{ __typename q: batchInference(input: $input) {{ __typename"
        " submissions { id status input metadata { key value } batch { id } }"
        " batch { id size status callbackUrl createdAt completedAt counts { pending } } } }",
        f"{HEAD} {{ q: batchInference(input: $input) {{ ...P }} }}"
        " fragment P on BatchInferencePayload { submissions { ... on Node { id } ...F } }"
        " fragment F on Submission { attempts }",
        f"{HEAD} {{ q: batchInference(input: $input) {{ batch @include(if: $on) {{ id }} }} }}",
    ],
)
def test_a_selection_of_values_the_answer_holds_is_learned(text: str) -> None:
    plan = plan_of(text)
    assert plan is not None
    assert plan.key == "q"


@pytest.mark.parametrize(
    "text",
    [
        f"{HEAD} {{ batchInference(input: $input) {{ submissions {{ model {{ name }} }} }} }}",
        f"{HEAD} {{ batchInference(input: $input) {{ submissions {{ results {{ id }} }} }} }}",
        f"{HEAD} {{ batchInference(input: $input) {{ batch {{ owner {{ id }} }} }} }}",
        f"{HEAD} {{ batchInference(input: $input) {{ batch {{ estimatedCompletionAt }} }} }}",
        f"{HEAD} {{ batchInference(input: $input) {{ batch {{ submissions {{ totalCount }} }} }}"
        " }",
        f"{HEAD} {{ a: batchInference(input: $input) {{ batch {{ id }} }}"
        " b: batchInference(input: $input) { batch { id } } }",
        f"{HEAD} {{ batchInference(input: $input) {{ batch @defer {{ id }} }} }}",
        "mutation($input: RunInferenceInput!) { runInference(input: $input) { result { id } } }",
    ],
)
def test_anything_else_is_left_to_the_full_path(text: str) -> None:
    variables: dict[str, Any] = VARIABLES
    if "RunInferenceInput" in text:
        variables = {"input": {"modelId": "TW9kZWw6MQ", "input": {"x": 1}}}
    assert plan_of(text, variables) is None


def test_the_plan_writes_the_answer_as_graphql_serializes_it() -> None:
    text = (
        f"{HEAD} {{ __typename batchInference(input: $input) {{"
        " s: submissions { id status attempts input createdAt batch { id } }"
        " batch @include(if: $on) { __typename size status completedAt counts { pending } } } }"
    )
    queued, batch = answer = an_answer()
    batch_id = to_global_id("Batch", batch.id)
    shown, hidden = (
        plan_of(text, {**VARIABLES, "on": True}),
        plan_of(text, {**VARIABLES, "on": False}),
    )
    assert shown is not None
    assert hidden is not None

    submissions = [
        {
            "id": to_global_id("Submission", s.id),
            "status": "PENDING",
            "attempts": 0,
            "input": {"x": 1},
            "createdAt": "2026-01-01T00:00:00+00:00",
            "batch": {"id": batch_id},
        }
        for s in queued
    ]
    shown_batch = {
        "__typename": "Batch",
        "size": 2,
        "status": "PENDING",
        "completedAt": None,
        "counts": {"pending": 2},
    }
    assert shown.write(answer) == {
        "__typename": "Mutation",
        "batchInference": {"s": submissions, "batch": shown_batch},
    }
    assert hidden.write(answer) == {"__typename": "Mutation", "batchInference": {"s": submissions}}


def test_only_a_plan_that_shows_the_batch_has_it_read() -> None:
    ids_only = f"{HEAD} {{ batchInference(input: $input) {{ submissions {{ id }} }} }}"
    by_submission = (
        f"{HEAD} {{ batchInference(input: $input) {{ submissions {{ batch {{ id }} }} }} }}"
    )
    by_payload = f"{HEAD} {{ batchInference(input: $input) {{ batch {{ size }} }} }}"
    plans = [plan_of(text, VARIABLES) for text in (ids_only, by_submission, by_payload)]

    assert [None if p is None else p.reads_more for p in plans] == [False, True, True]
    queued, _ = an_answer()
    assert plans[0] is not None
    assert plans[0].write((queued, None))["batchInference"]["submissions"][0]["id"]
