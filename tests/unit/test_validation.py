"""The compiled schema check: it accepts exactly what the JSON Schema validator accepts, names
the same problems, and compiles each schema once."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from domain import validation
from domain.validation import batch_schema_errors, schema_errors

FLAT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "x": {"type": "number", "minimum": 0, "maximum": 10, "description": "x"},
        "n": {"type": "integer", "exclusiveMinimum": -1, "exclusiveMaximum": 5},
        "label": {"type": "string"},
        "flag": {"type": "boolean"},
        "species": {"enum": ["setosa", "virginica"]},
    },
    "required": ["x", "species"],
    "additionalProperties": False,
}
OPEN = FLAT | {"additionalProperties": True, "required": []}
# Shapes the predicate does not understand: the validator alone decides.
NESTED = FLAT | {"properties": {"x": {"type": "array", "items": {"type": "number"}}}}
ANY_OF = {"anyOf": [{"type": "number"}, {"type": "string"}]}

VALUES: list[Any] = [
    0, 10, 11, -0.5, 5.5, 3, 4, 5, -1, 2.0, True, False, None, "setosa", "oak", "", [1.0], {},
    float("nan"), 2**70, -(2**70), 1e308,
]  # fmt: skip


def documents() -> list[Any]:
    """Documents around FLAT's edges: every field with every value, missing, extra."""
    base = {"x": 1.5, "n": 2, "label": "a", "flag": True, "species": "setosa"}
    docs: list[Any] = [base, {}, [], "text", 3, None, base | {"extra": 1}]
    docs += [{k: v for k, v in base.items() if k != missing} for missing in base]
    docs += [base | {field: value} for field, value in itertools.product(base, VALUES)]
    return docs


def validator_says(schema: dict[str, Any], document: Any) -> bool:
    return not any(Draft202012Validator(schema).iter_errors(document))


@pytest.mark.parametrize(
    "schema", [FLAT, OPEN, NESTED, ANY_OF], ids=["flat", "open", "nested", "any_of"]
)
def test_the_batch_check_agrees_with_the_validator_on_every_document(
    schema: dict[str, Any],
) -> None:
    docs = documents()
    problems = batch_schema_errors(schema, docs, "input.inputs")
    for n, document in enumerate(docs):
        named = {p: m for p, m in problems.items() if p.split(".")[2] == str(n)}
        assert (not named) == validator_says(schema, document), (n, document, named)
        assert named == schema_errors(schema, document, f"input.inputs.{n}")


def test_the_predicate_compiles_for_a_flat_schema_and_not_for_others() -> None:
    def compiled(schema: dict[str, Any]) -> bool:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        return validation._fast_check(key) is not None

    assert compiled(FLAT)
    assert compiled(OPEN)
    assert not compiled(NESTED)
    assert not compiled(ANY_OF)
    assert not compiled(FLAT | {"properties": {"x": {"type": "number", "minimum": True}}})
    assert not compiled(FLAT | {"properties": {"x": {"type": "string", "minLength": 1}}})


def test_a_bad_row_among_good_ones_is_named_alone_with_the_validators_message() -> None:
    good = {"x": 1, "species": "setosa"}
    rows = [good] * 999
    rows.insert(500, {"x": -1, "species": "setosa"})
    assert batch_schema_errors(FLAT, rows, "input.inputs") == {
        "input.inputs.500.x": "-1 is less than the minimum of 0"
    }


def test_the_predicate_itself_accepts_valid_documents_up_to_the_bounds() -> None:
    check = validation._fast_check(orjson.dumps(FLAT, option=orjson.OPT_SORT_KEYS))
    assert check is not None
    for x in (0, 10, 0.0, 10.0, 5):
        assert check({"x": x, "n": 4, "species": "virginica"}), x
    assert check({"x": 1, "n": 0, "label": "", "flag": False, "species": "setosa"})
    assert not check({"x": 1, "n": 5, "species": "setosa"})
