"""The one-statement plans without a database: what compiles to a projection, its SQL text."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    parse,
)

from bench.workloads import W1_QUERY, W2_QUERY
from domain import projections as p
from domain.pagination import Keyset, PageRequest
from graph.execution.catalog import spec_of
from graph.execution.declarations import (
    Column,
    Computed,
    Declaration,
    Identifier,
    Paged,
    ReferenceOnly,
    Source,
    Stored,
    ToMany,
    ToOne,
    declarations_of,
    declared,
)
from graph.execution.extension import CompiledPlans
from graph.execution.projection import ProjectionPlan
from graph.ids import to_cursor, to_global_id
from graph.schema.record import schema
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
    after = to_cursor(Keyset(datetime(2026, 1, 2, tzinfo=UTC), uuid.uuid4()), "Submission")
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


def _queryable_types(gql: GraphQLSchema = GQL) -> list[GraphQLObjectType]:
    """The object types a query can reach (mutation payloads and the like are not)."""
    assert gql.query_type is not None
    seen: dict[str, GraphQLObjectType] = {}
    todo: list[Any] = [gql.query_type]
    while todo:
        named = get_named_type(todo.pop())
        if named.name in seen or named.name.startswith("__"):
            continue
        if isinstance(named, GraphQLInterfaceType):
            todo.extend(gql.get_possible_types(named))
        elif isinstance(named, GraphQLObjectType):
            seen[named.name] = named
            todo.extend(f.type for f in named.fields.values())
    return list(seen.values())


STRUCTURAL = frozenset({"PageInfo"})  # written by the connection that holds it
_PROJECTED = Column | Identifier | ToOne | ToMany | Stored | Paged | Source
_LEFT_OUT = Computed | ReferenceOnly  # each with its reason


def _fields_without(gql: GraphQLSchema, serves: Callable[[str, Declaration], bool]) -> list[str]:
    """Reachable fields whose declaration `serves` rejects and that do not say why."""
    declarations = declarations_of(gql)
    missing = []
    for gql_type in _queryable_types(gql):
        skipped = gql_type.name in STRUCTURAL or gql_type.name in declarations.reference_only_types
        if skipped or gql_type.name.endswith(("Connection", "Edge")):
            continue
        for name in gql_type.fields:
            declaration = declarations.fields.get(gql_type.name, {}).get(name)
            if declaration is None or not serves(gql_type.name, declaration):
                missing.append(f"{gql_type.name}.{name}")
    return missing


def _projected(_: str, declaration: Declaration) -> bool:
    return isinstance(declaration, _PROJECTED | _LEFT_OUT)


def _batched(type_name: str, declaration: Declaration) -> bool:
    return spec_of(type_name, declaration) is not None or isinstance(declaration, ReferenceOnly)


def test_every_field_is_declared_for_the_projection_or_says_why_not() -> None:
    """A new field either compiles to the one statement or says why it cannot
    (Computed, ReferenceOnly); a field that is neither would silently run slow."""
    assert not _fields_without(GQL, _projected)
    assert len(_queryable_types()) > 10


def test_every_field_is_served_by_the_batched_plan_or_marked_reference_only() -> None:
    assert not _fields_without(GQL, _batched)


@strawberry.type
class _Pet:
    name: str  # a leaf without a resolver: a Column by convention


@strawberry.type
class _Owner:
    id: strawberry.ID
    pet: _Pet  # an object without a declaration: neither compiler knows where it comes from

    @strawberry.field
    def nickname(self) -> str:  # a resolver without a declaration
        return "rex"

    @declared(ReferenceOnly("only the reference executor walks"))
    def walks(self) -> int:
        return 0


@strawberry.type
class _Query:
    @declared(ReferenceOnly("a test"))
    def owner(self) -> _Owner:
        return _Owner(id=strawberry.ID("1"), pet=_Pet(name="rex"))


def test_the_coverage_checks_catch_a_field_without_a_declaration() -> None:
    gql = strawberry.Schema(query=_Query)._schema
    assert _fields_without(gql, _projected) == ["Owner.pet", "Owner.nickname"]
    assert _fields_without(gql, _batched) == ["Owner.pet", "Owner.nickname"]
