"""The bench's compile-time cases: what they compile, not how fast (that is the bench's job)."""

from __future__ import annotations

from graphql import parse

from bench.compile import largest_accepted_multiplied, multiplied
from graph.execution.extension import CompiledPlans
from graph.schema.record import schema


def test_the_most_multiplied_document_the_default_limits_accept_compiles() -> None:
    levels, document = largest_accepted_multiplied()
    assert levels >= 1
    plan, _ = CompiledPlans(1).plan_for(schema._schema, parse(document), (document, None), {})
    assert plan.relations


def test_the_multiplied_document_doubles_its_subtrees_per_level() -> None:
    assert multiplied(3).count("...F3") == 2
    assert multiplied(3).count("fragment F") == 4
