"""The compiler's decisions without a database: what compiles, what falls back, its bounds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from graphql import parse

from bench.compile import multiplied
from graph.execution.codegen import Attribute, Call, Constant, builder
from graph.execution.collection import MAX_PLAN_FIELDS
from graph.execution.extension import MAX_PLANS_PER_DOCUMENT, CompiledPlans
from graph.execution.specs import Fallback, Unsupported
from graph.schema.record import schema

GQL = schema._schema


def plan(document: str, variables: dict[str, Any] | None = None, name: str | None = None) -> Any:
    plans = CompiledPlans(10)
    compiled, _ = plans.plan_for(GQL, parse(document), (document, name), variables or {})
    return compiled


def fallback_reason(document: str, variables: dict[str, Any] | None = None) -> str:
    with pytest.raises(Fallback) as raised:
        plan(document, variables)
    return raised.value.reason


def test_the_nested_list_compiles_to_one_load_per_relation_level() -> None:
    compiled = plan(
        """{ users(first: 100) { edges { node { id submissions(first: 10) { edges { node {
            id model { id } assets { id } results { id } } } } } } } }"""
    )
    loads = [relation.load.__name__ for relation in compiled.relations]
    assert loads == [
        "user_page",
        "submission_pages",
        "models_by_id",
        "assets_of_submissions",
        "results_of_submissions",
    ]


def test_total_count_adds_a_count_load_only_when_selected() -> None:
    without = plan("{ submissions { edges { node { id } } } }")
    with_count = plan("{ submissions { totalCount n: totalCount } }")
    assert [r.load.__name__ for r in without.relations] == ["viewer_submission_page"]
    assert [r.load.__name__ for r in with_count.relations] == [
        "viewer_submission_page",
        "viewer_submission_count",
    ]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{ webhookEndpoints { id } }", "field:Query.webhookEndpoints"),
        ('{ node(id: "x") { id } }', "field:Query.node"),
        ("{ __schema { queryType { name } } }", "field:Query.__schema"),
        ('{ __type(name: "User") { name } }', "field:Query.__type"),
        ("mutation { updateViewer(input: {}) { id } }", "operation"),
        ("subscription { submissionUpdated { id } }", "operation"),
        ('{ model(id: "x") { stats { predictions } } }', "field:Model.stats"),
        ('{ model(id: "x") { drift { status } } }', "field:Model.drift"),
        ('{ model(id: "x") { quality { labelled } } }', "field:Model.quality"),
        ('{ result(id: "x") { feedback } }', "field:Result.feedback"),
        ("{ modelAlerts { totalCount } }", "field:Query.modelAlerts"),
    ],
)
def test_what_the_compiler_does_not_cover_falls_back_with_a_reason(
    document: str, reason: str
) -> None:
    assert fallback_reason(document) == reason


def test_variables_that_fail_coercion_fall_back_to_the_reference_errors() -> None:
    document = "query Q($first: Int) { submissions(first: $first) { totalCount } }"
    assert fallback_reason(document, {"first": "many"}) == "variables"


def test_skip_and_include_with_variables_get_one_plan_per_condition_value() -> None:
    document = "query Q($more: Boolean!) { viewer { id email @include(if: $more) } }"
    plans = CompiledPlans(10)
    key = (document, None)
    short, _ = plans.plan_for(GQL, parse(document), key, {"more": False})
    long, _ = plans.plan_for(GQL, parse(document), key, {"more": True})
    again, _ = plans.plan_for(GQL, parse(document), key, {"more": False})
    assert short is again
    assert long is not short
    template = plans.templates.get(key)
    assert template is not None
    assert set(template.plans) == {(False,), (True,)}
    assert MAX_PLANS_PER_DOCUMENT >= 2


def test_the_plan_cache_is_bounded() -> None:
    plans = CompiledPlans(3)
    for n in range(10):
        document = f"{{ viewer {{ id }} a{n}: models {{ id }} }}"
        plans.plan_for(GQL, parse(document), (document, None), {})
    assert len(plans.templates) == 3


def test_a_fragment_multiplied_document_stops_compiling_at_the_field_bound() -> None:
    assert plan(multiplied(3)) is not None
    assert fallback_reason(multiplied(16)) == "too_large"
    wide = " ".join(f"u{i}: viewer {{ id email name }}" for i in range(MAX_PLAN_FIELDS))
    assert fallback_reason("{ " + wide + " }") == "too_large"


def test_unsupported_reasons_are_cached_with_the_document() -> None:
    plans = CompiledPlans(10)
    document = "{ webhookEndpoints { id } }"
    for _ in range(2):
        with pytest.raises(Unsupported):
            plans.plan_for(GQL, parse(document), (document, None), {})
    assert len(plans.templates) == 1


def test_generated_builders_take_keys_as_data_and_only_identifier_attributes() -> None:
    hostile = "'}; import os; os.system('true'); {'"
    build = builder(
        [
            (hostile, Attribute("name", str, lambda v: v)),
            ("n", Attribute("size", int, lambda v: -1)),
            ("c", Constant(hostile)),
            ("w", Call(lambda obj, values: values[0])),
        ]
    )
    entity = SimpleNamespace(name="x", size=2**40)
    assert build(entity, ["loaded"]) == {hostile: "x", "n": -1, "c": hostile, "w": "loaded"}
    with pytest.raises(ValueError, match="not an attribute name"):
        builder([("k", Attribute("a.b", str, str))])
    with pytest.raises(ValueError, match="not an attribute name"):
        builder([("k", Attribute("import", str, str))])
