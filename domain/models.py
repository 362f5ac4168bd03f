"""Models: a name, a version, JSON Schemas for input and output, and a runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

JSONValue = Any  # JSON documents are dynamic by nature; schemas constrain them, not types


@dataclass(frozen=True, slots=True)
class Model:
    id: UUID
    name: str
    version: str
    description: str
    input_schema: dict[str, JSONValue]
    output_schema: dict[str, JSONValue]
    runtime: str
    runtime_config: dict[str, JSONValue] = field(default_factory=dict)
    is_active: bool = True
    created_at: datetime | None = None
    # Changes whenever the model is registered again: a cached copy is current while it holds.
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ModelDefinition:
    """A model as a model directory declares it, before it is registered."""

    name: str
    version: str
    description: str
    input_schema: dict[str, JSONValue]
    output_schema: dict[str, JSONValue]
    runtime: str
    runtime_config: dict[str, JSONValue] = field(default_factory=dict)


class ModelFailure(Exception):
    """A prediction failed. `is_transient` failures are retried; the others fail the submission."""

    def __init__(self, message: str, *, is_transient: bool) -> None:
        super().__init__(message)
        self.is_transient = is_transient
