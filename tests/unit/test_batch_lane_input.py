"""The batch lane's direct build of batchInference's argument equals Strawberry's conversion."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from strawberry.types.arguments import convert_arguments

from graph.schema.record import schema
from graph.transport.batch_lane import _plain_input

MUTATION = """mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id } } }"""
IRIS = {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4}
MODEL = "TW9kZWw6MQ=="


def _converted(given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Strawberry's conversion of `given` as the batchInference variable, and the raw
    argument graphql-core coerced it to."""
    gql = schema._schema
    operation = parse(MUTATION).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    definitions = operation.variable_definitions or ()
    coerced = get_variable_values(gql, definitions, {"input": given})
    assert isinstance(coerced, VariableValues), coerced
    node = operation.selection_set.selections[0]
    mutation = gql.mutation_type
    assert mutation is not None
    raw = get_argument_values(mutation.fields["batchInference"], node, coerced)  # type: ignore[arg-type] # a FieldNode
    field = schema.get_field_for_type(field_name="batchInference", type_name="Mutation")
    assert field is not None
    converter = schema.schema_converter
    kwargs = convert_arguments(
        raw, field.arguments, scalar_registry=converter.scalar_registry, config=schema.config
    )
    return kwargs["input"], raw["input"]


@pytest.mark.parametrize(
    "given",
    [
        {"modelId": MODEL, "inputs": [IRIS]},
        {"modelId": MODEL, "inputs": [IRIS, [1, "two", None], 3.5, {"deep": [True]}]},
        {"modelId": MODEL, "inputs": IRIS},  # one input, coerced into a list of one
        {"modelId": MODEL, "inputs": [IRIS], "callbackUrl": "https://example.com/hook"},
        {"modelId": MODEL, "inputs": [IRIS], "callbackUrl": None, "metadata": None},
    ],
)
def test_plain_fields_are_built_as_strawberry_converts_them(given: dict[str, Any]) -> None:
    converted, raw = _converted(given)
    built = _plain_input(raw)
    assert built is not None
    assert built == converted


def test_metadata_is_left_to_strawberry() -> None:
    _, raw = _converted(
        {"modelId": MODEL, "inputs": [IRIS], "metadata": [{"key": "a", "value": "b"}]}
    )
    assert _plain_input(raw) is None
