"""Validating JSON documents against a model's JSON Schema, with every failing path named.

Each schema is compiled once (cached by its JSON text, so once per model version): the
validator, and for the common shape of a model's input (an object of scalar fields with
bounds) a plain predicate that accepts a valid document in a few microseconds. The
predicate only ever accepts what the validator accepts; anything it does not accept, or any
schema it does not understand, goes to the validator, which names the problems.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from domain.models import JSONValue

MAX_ERRORS = 20

Check = Callable[[object], bool]

# Keywords that never make a document invalid.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "examples", "default", "deprecated"}
)
_OBJECT_KEYWORDS = _ANNOTATIONS | {"type", "properties", "required", "additionalProperties"}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_SCALAR_KEYWORDS = _ANNOTATIONS | {"type", "enum", *_BOUNDS}


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads(schema_json))


@lru_cache(maxsize=256)
def _fast_check(schema_json: bytes) -> Check | None:
    schema = orjson.loads(schema_json)
    return _object_check(schema) if isinstance(schema, dict) else None


def _is_bound(value: object) -> bool:
    return type(value) in (int, float)


def _bounds_check(schema: Mapping[str, object]) -> Check | None:
    """The numeric bounds as one predicate; None when a bound is not a number."""
    bounds = {k: schema[k] for k in _BOUNDS if k in schema}
    if not all(_is_bound(b) for b in bounds.values()):
        return None
    low, high = bounds.get("minimum"), bounds.get("maximum")
    above, below = bounds.get("exclusiveMinimum"), bounds.get("exclusiveMaximum")

    def within(v: Any) -> bool:
        return (
            (low is None or v >= low)
            and (high is None or v <= high)
            and (above is None or v > above)
            and (below is None or v < below)
        )

    return within


def _scalar_check(schema: object) -> Check | None:
    """A predicate for a scalar field's schema, or None when it uses anything else."""
    if not isinstance(schema, dict) or not set(schema) <= _SCALAR_KEYWORDS:
        return None
    kind = schema.get("type")
    if "enum" in schema:
        members = schema["enum"]
        if kind is not None or not isinstance(members, list):
            return None
        if not all(type(m) is str for m in members) or set(schema) & set(_BOUNDS):
            return None
        allowed = frozenset(members)
        return lambda v: type(v) is str and v in allowed
    bounded = _bounds_check(schema)
    if bounded is None:
        return None
    # Stricter than JSON Schema where it is cheaper (an integral float for "integer"): a
    # document the predicate refuses is only checked again by the validator.
    types: dict[object, tuple[type, ...]] = {
        "number": (int, float),
        "integer": (int,),
        "string": (str,),
        "boolean": (bool,),
    }
    accepted = types.get(kind)
    if accepted is None:
        return None
    if kind in ("string", "boolean"):
        if set(schema) & set(_BOUNDS):
            return None
        return lambda v: type(v) in accepted
    return lambda v: type(v) in accepted and bounded(v)


def _object_check(schema: Mapping[str, object]) -> Check | None:
    """A predicate for an object of scalar fields, or None for any other schema."""
    if not set(schema) <= _OBJECT_KEYWORDS or schema.get("type") != "object":
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or type(additional) is not bool:
        return None
    if not isinstance(required, list) or not all(type(r) is str for r in required):
        return None
    fields: dict[str, Check] = {}
    for name, field_schema in properties.items():
        check = _scalar_check(field_schema)
        if check is None:
            return None
        fields[name] = check
    names = frozenset(fields)
    needed = frozenset(required)

    def passes(document: object) -> bool:
        if type(document) is not dict:
            return False
        keys = document.keys()
        if not needed <= keys or (not additional and not keys <= names):
            return False
        return all(name not in fields or fields[name](v) for name, v in document.items())

    return passes


def _path(prefix: str, error: ValidationError) -> str:
    parts = [prefix, *(str(p) for p in error.absolute_path)]
    return ".".join(parts)


def _errors(schema_json: bytes, document: JSONValue, prefix: str) -> dict[str, str]:
    validator = _validator(schema_json)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    problems: dict[str, str] = {}
    for error in errors[:MAX_ERRORS]:
        problems.setdefault(_path(prefix, error), error.message)
    return problems


def _compiled(schema: Mapping[str, JSONValue]) -> tuple[bytes, Check | None]:
    schema_json = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    return schema_json, _fast_check(schema_json)


def schema_errors(
    schema: Mapping[str, JSONValue], document: JSONValue, prefix: str
) -> dict[str, str]:
    """Input path -> message for each way `document` fails `schema` (empty when valid)."""
    schema_json, check = _compiled(schema)
    if check is not None and check(document):
        return {}
    return _errors(schema_json, document, prefix)


def batch_schema_errors(
    schema: Mapping[str, JSONValue], documents: Sequence[JSONValue], prefix: str
) -> dict[str, str]:
    """schema_errors of every document, each under `<prefix>.<index>`, the schema compiled
    once for all: a batch's valid rows cost a predicate call each."""
    schema_json, check = _compiled(schema)
    problems: dict[str, str] = {}
    for n, document in enumerate(documents):
        if check is None or not check(document):
            problems.update(_errors(schema_json, document, f"{prefix}.{n}"))
    return problems
