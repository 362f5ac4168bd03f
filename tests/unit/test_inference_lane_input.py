"""The lane's direct build of runInference's argument equals Strawberry's conversion."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.types.arguments import convert_arguments

from graph.schema.record import schema
from graph.transport.inference_lane import _plain_input

MUTATION = """mutation($input: RunInferenceInput!) {
  runInference(input: $input) { submission { id } } }"""
IRIS = {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4}


def _converted(given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Strawberry's conversion of `given` as the runInference variable, and the raw
    argument graphql-core coerced it to."""
    gql = schema._schema
    document = parse(MUTATION)
    operation = document.definitions[0]
    coerced = get_variable_values(gql, operation.variable_definitions, {"input": given})  # type: ignore[attr-defined]
    assert isinstance(coerced, VariableValues), coerced
    node = operation.selection_set.selections[0]  # type: ignore[attr-defined]
    mutation = gql.mutation_type
    assert mutation is not None
    raw = get_argument_values(mutation.fields["runInference"], node, coerced)
    field = schema.get_field_for_type(field_name="runInference", type_name="Mutation")
    assert field is not None
    converter = schema.schema_converter
    kwargs = convert_arguments(
        raw, field.arguments, scalar_registry=converter.scalar_registry, config=schema.config
    )
    return kwargs["input"], raw["input"]


@pytest.mark.parametrize(
    "given",
    [
        {"modelId": "TW9kZWw6MQ==", "input": IRIS},
        {"modelId": "TW9kZWw6MQ==", "input": IRIS, "idempotencyKey": "k-1"},
        {"modelId": "TW9kZWw6MQ==", "input": [1, "two", None], "assetIds": ["QXNzZXQ6MQ=="]},
        {"modelId": "TW9kZWw6MQ==", "input": 3.5, "assetIds": None, "idempotencyKey": None},
        {"modelId": "TW9kZWw6MQ==", "input": {"nested": {"deep": [True]}}, "assetIds": []},
        {"modelId": "TW9kZWw6MQ==", "input": IRIS, "metadata": None},
    ],
)
def test_plain_fields_are_built_as_strawberry_converts_them(given: dict[str, Any]) -> None:
    converted, raw = _converted(given)
    built = _plain_input(raw)
    assert built is not None
    assert built == converted


def test_metadata_is_left_to_strawberry() -> None:
    _, raw = _converted(
        {"modelId": "TW9kZWw6MQ==", "input": IRIS, "metadata": [{"key": "a", "value": "b"}]}
    )
    assert _plain_input(raw) is None
