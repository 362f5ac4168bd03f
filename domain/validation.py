"""Validating JSON documents against a model's JSON Schema, with every failing path named."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from domain.models import JSONValue

MAX_ERRORS = 20


@lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads(schema_json))


def _path(prefix: str, error: ValidationError) -> str:
    parts = [prefix, *(str(p) for p in error.absolute_path)]
    return ".".join(parts)


def schema_errors(
    schema: Mapping[str, JSONValue], document: JSONValue, prefix: str
) -> dict[str, str]:
    """Input path -> message for each way `document` fails `schema` (empty when valid)."""
    validator = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    problems: dict[str, str] = {}
    for error in errors[:MAX_ERRORS]:
        problems.setdefault(_path(prefix, error), error.message)
    return problems
