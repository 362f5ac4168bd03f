"""Which runInference documents the lane learns, and the answers its plans write (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from domain.ids import to_global_id
from domain.submissions import SubmissionStatus
from graph.execution.inference_plans import (
    Answer,
    InferencePlan,
    compile_inference,
    known_inference,
)
from graph.schema.record import schema
from tests.unit.test_realtime import a_result, a_submission

GQL = schema._schema
VARIABLES = {"input": {"modelId": "TW9kZWw6MQ", "input": {"x": 1}}}
HEAD = "mutation($input: RunInferenceInput!, $on: Boolean = true)"


def plan_of(text: str, variables: dict[str, Any] | None = None) -> InferencePlan[Answer] | None:
    given = VARIABLES if variables is None else variables
    known = known_inference(GQL, parse(text), None, given, compile_inference)
    if known is None:
        return None
    coerced = known.coerced(GQL, given)
    assert coerced is not None
    plan = known.plan(GQL, coerced)
    assert not isinstance(plan, str)
    return plan


@pytest.mark.parametrize(
    "text",
    [
        f"{HEAD} {{ ran: runInference(input: $input) {{ submission {{ status }} }} }}",
        f"{HEAD} {{ __typename ran: runInference(input: $input) {{ __typename"
        " r: result { c: confidence alternatives { value confidence } } } }",
        f"{HEAD} {{ ran: runInference(input: $input) {{ ...P }} }}"
        " fragment P on RunInferencePayload { submission { ... on Node { id } ...F } }"
        " fragment F on Submission { attempts }",
        f"{HEAD} {{ ran: runInference(input: $input) {{ result @include(if: $on) {{ id }} }} }}",
    ],
)
def test_a_selection_of_payload_values_is_learned(text: str) -> None:
    plan = plan_of(text)
    assert plan is not None
    assert plan.key == "ran"


@pytest.mark.parametrize(
    "text",
    [
        f"{HEAD} {{ runInference(input: $input) {{ submission {{ model {{ name }} }} }} }}",
        f"{HEAD} {{ runInference(input: $input) {{ submission {{ results {{ id }} }} }} }}",
        f"{HEAD} {{ runInference(input: $input) {{ result {{ feedback }} }} }}",
        f"{HEAD} {{ runInference(input: $input) {{ submission {{ batch {{ id }} }} }} }}",
        f"{HEAD} {{ a: runInference(input: $input) {{ result {{ id }} }}"
        " b: runInference(input: $input) { result { id } } }",
        "mutation($id: ID!) { cancelSubmission(id: $id) { submission { id } } }",
        "query { __typename }",
        f"{HEAD} {{ runInference(input: $input) {{ result @defer {{ id }} }} }}",
    ],
)
def test_anything_else_is_left_to_the_full_path(text: str) -> None:
    assert plan_of(text, {**VARIABLES, "id": "x"}) is None


def test_variables_that_do_not_coerce_teach_nothing() -> None:
    text = f"{HEAD} {{ runInference(input: $input) {{ result {{ id }} }} }}"
    assert plan_of(text, {"input": {"modelId": "m"}}) is None


def test_the_plan_writes_the_answer_as_graphql_serializes_it() -> None:
    text = (
        f"{HEAD} {{ __typename runInference(input: $input) {{"
        " s: submission { __typename id status attempts createdAt }"
        " result @include(if: $on) { prediction confidence processingTimeMs } } }"
    )
    done = a_submission(SubmissionStatus.SUCCEEDED)
    submission = {
        "__typename": "Submission",
        "id": to_global_id("Submission", done.id),
        "status": "SUCCEEDED",
        "attempts": 1,
        "createdAt": "2026-01-01T00:00:00+00:00",
    }
    result = {"prediction": "virginica", "confidence": 0.9, "processingTimeMs": 3}
    shown, hidden = (
        plan_of(text, {**VARIABLES, "on": True}),
        plan_of(text, {**VARIABLES, "on": False}),
    )
    assert shown is not None
    assert hidden is not None

    answered = shown.write((done, a_result(done)))
    failed = shown.write((done, None))
    without = hidden.write((done, a_result(done)))

    payload = {"s": submission, "result": result}
    assert answered == {"__typename": "Mutation", "runInference": payload}
    assert failed["runInference"] == {"s": submission, "result": None}
    assert without["runInference"] == {"s": submission}
