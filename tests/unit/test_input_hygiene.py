"""The boundary's hygiene rule on its own: what each argument value may hold, and its path."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

from graph.protection.input_hygiene import MAX_PROBLEMS, InputBounds, input_problems
from graph.schema.record import schema

BOUNDS = InputBounds(max_string_bytes=16, max_json_bytes=64)
RENAME = "mutation($input: UpdateViewerInput!) { updateViewer(input: $input) { id } }"
BATCH = """mutation($inputs: [JSON!]!) {
  batchInference(input: {modelId: "m", inputs: $inputs}) { submissions { id } }
}"""


def problems(query: str, variables: dict[str, Any]) -> dict[str, str]:
    document = parse(query)
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return input_problems(schema._schema, document, operation, variables, BOUNDS)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a\x00", "NUL"),
        ("a\ud800", "surrogate"),
        ("é" * 9, "16 UTF-8 bytes"),
    ],
)
def test_a_string_variable_is_refused_with_its_argument_path(name: str, why: str) -> None:
    found = problems(RENAME, {"input": {"name": name}})

    assert list(found) == ["input.name"]
    assert why in found["input.name"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"k\x00": 1}, "NUL"),
        ({"k": ["\udfff"]}, "surrogate"),
        ({"k": 2**64}, "between"),
        ({"k": float("inf")}, "finite"),
        ({"k": "x" * 100}, "64 bytes"),
    ],
)
def test_json_values_are_checked_inside_lists_by_index(value: object, why: str) -> None:
    found = problems(BATCH, {"inputs": [{"fine": 1}, value]})

    assert list(found) == ["input.inputs.1"]
    assert why in found["input.inputs.1"]


def test_clean_values_pass_and_deep_json_does_not_recurse() -> None:
    deep: object = 1
    for _ in range(5000):
        deep = [deep]

    assert problems(RENAME, {"input": {"name": "Ada", "language": "en"}}) == {}
    assert "64 levels" in problems(BATCH, {"inputs": [deep]})["input.inputs.0"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"k\x00": 1.5}, "NUL"),
        ({"k": "\udfff", "n": 1}, "surrogate"),
        ({"a": 1.0, "k": -(2**64)}, "between"),
        ({"k": float("nan")}, "finite"),
        ({"k": 1.0, "s": "x" * 100}, "64 bytes"),
        ({"k": True, "n": None, "s": "\x00"}, "NUL"),
        ({"\udfff": 1.0}, "surrogate"),
        ({"clé": "\udfff"}, "surrogate"),
    ],
)
def test_a_flat_row_of_scalars_is_held_to_the_same_rule(value: object, why: str) -> None:
    clean = {"a": 1.5, "b": 2, "c": "ok", "d": False, "e": None}
    found = problems(BATCH, {"inputs": [clean] * 3 + [value]})

    assert list(found) == ["input.inputs.3"]
    assert why in found["input.inputs.3"]


def test_a_list_of_json_values_names_at_most_the_bound_of_problems() -> None:
    clean = {"clé": "été", "n": 1}
    found = problems(BATCH, {"inputs": [clean, None, *[{"k": "\x00"}] * 50]})

    assert len(found) == MAX_PROBLEMS
    assert list(found)[:2] == ["input.inputs.2", "input.inputs.3"]
