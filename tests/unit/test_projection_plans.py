"""The one-statement plans without a database: what compiles to a projection, its SQL text."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import GraphQLInterfaceType, GraphQLObjectType, get_named_type, parse

from bench.workloads import W1_QUERY, W2_QUERY
from domain import projections as p
from domain.pagination import Keyset, PageRequest
from graph.execution.extension import CompiledPlans
from graph.execution.projection import (
    DECLARED,
    REFERENCE_ONLY,
    REFERENCE_ONLY_TYPES,
    ProjectionPlan,
)
from graph.ids import to_cursor, to_global_id
from graph.schema import schema
from persistence.projections import rendered, shape_of

GQL = schema._schema


def projection(document: str, variables: dict[str, Any] | None = None) -> ProjectionPlan | str:
    plans = CompiledPlans(10)
    plan, _ = plans.projection_for(GQL, parse(document), (document, None), variables or {})
    return plan


def test_the_benchmark_documents_compile_to_one_projection_each() -> None:
    w1, w2 = (
        projection(W1_QUERY),
        projection(W2_QUERY, {"id": to_global_id("Submission", uuid.uuid4())}),
    )
    assert isinstance(w1, ProjectionPlan)
    assert isinstance(w2, ProjectionPlan)
    [(key, root)] = w1.projection.roots
    assert key == "users"
    assert isinstance(root, p.Root)
    assert isinstance(root.value, p.Window)
    assert len(w1.bindings) == 2  # users(first:) and each user's submissions(first:)


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{ assets { edges { node { downloadUrl } } } }", "field:Asset.downloadUrl"),
        ('{ node(id: "x") { id } }', "field:Query.node"),
        ("{ webhookEndpoints { id } }", "field:Query.webhookEndpoints"),
        (
            "{ submissions { a: edges { cursor } b: edges { cursor } } }",
            "field:SubmissionConnection.edges",
        ),
    ],
)
def test_what_one_statement_does_not_cover_is_unsupported_with_a_reason(
    document: str, reason: str
) -> None:
    assert projection(document) == reason


def test_arguments_are_parameters_never_sql_text() -> None:
    after = to_cursor(Keyset(datetime(2026, 1, 2, tzinfo=UTC), uuid.uuid4()))
    document = """query($after: String, $status: SubmissionStatus) {
      submissions(first: 3, after: $after, status: $status) {
        totalCount edges { node { id } } } }"""
    variables = {"after": after, "status": "FAILED"}
    plans = CompiledPlans(10)
    plan, coerced = plans.projection_for(GQL, parse(document), (document, None), variables)
    assert isinstance(plan, ProjectionPlan)
    slots = plan.slots(coerced)

    statement = rendered(plan.projection, False, shape_of(slots))

    assert "FAILED" not in statement.sql
    assert "2026" not in statement.sql
    assert re.search(r"owner_id = \$\d+::uuid", statement.sql)  # the viewer, as a parameter
    assert len(statement.getters) == 6  # viewer, first, status (count and page), after x2


def test_total_count_is_counted_only_when_selected() -> None:
    slots = [p.PageArguments(PageRequest(first=2), (("status", None),))]
    sql = {}
    for name, document in {
        "without": "{ submissions(first: 2) { edges { node { id } } } }",
        "with": "{ submissions(first: 2) { totalCount edges { node { id } } } }",
    }.items():
        plan = projection(document)
        assert isinstance(plan, ProjectionPlan)
        sql[name] = rendered(plan.projection, False, shape_of(slots)).sql
    assert "SELECT count(*)" not in sql["without"]
    assert "SELECT count(*)" in sql["with"]


def test_an_administrator_reads_without_the_owner_predicate() -> None:
    plan = projection("{ submissions(first: 2) { edges { node { id } } } }")
    assert isinstance(plan, ProjectionPlan)
    slots = [p.PageArguments(PageRequest(first=2), (("status", None),))]
    user = rendered(plan.projection, False, shape_of(slots)).sql
    admin = rendered(plan.projection, True, shape_of(slots)).sql
    owner = re.compile(r"owner_id = \$\d+::uuid")
    assert len(owner.findall(user)) == 2  # the root's owner, and the owner rule
    assert len(owner.findall(admin)) == 1  # the root's owner only


def _queryable_types() -> list[GraphQLObjectType]:
    """The object types a query can reach (mutation payloads and the like are not)."""
    assert GQL.query_type is not None
    seen: dict[str, GraphQLObjectType] = {}
    todo: list[Any] = [GQL.query_type]
    while todo:
        named = get_named_type(todo.pop())
        if named.name in seen or named.name.startswith("__"):
            continue
        if isinstance(named, GraphQLInterfaceType):
            todo.extend(GQL.get_possible_types(named))
        elif isinstance(named, GraphQLObjectType):
            seen[named.name] = named
            todo.extend(f.type for f in named.fields.values())
    return list(seen.values())


STRUCTURAL = frozenset({"PageInfo"})  # written by the connection that holds it


def test_every_field_is_declared_for_the_compiler_or_marked_reference_only() -> None:
    """A new field either compiles (a declaration in DECLARED) or says why it cannot
    (REFERENCE_ONLY); a field that is neither would silently run slow."""
    missing = []
    for gql_type in _queryable_types():
        skipped = gql_type.name in STRUCTURAL or gql_type.name in REFERENCE_ONLY_TYPES
        if skipped or gql_type.name.endswith(("Connection", "Edge")):
            continue
        for name in gql_type.fields:
            declared = name in DECLARED.get(gql_type.name, {})
            if not declared and f"{gql_type.name}.{name}" not in REFERENCE_ONLY:
                missing.append(f"{gql_type.name}.{name}")
    assert not missing, missing
    assert len(_queryable_types()) > 10
