"""Relations reach the one statement from their declaration alone (graph/execution/declarations.py
-> domain/projections.py's Join -> persistence/projections.py), and a declared column the
entity or its table lacks fails at once rather than at run time."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
import strawberry
from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode, parse

from domain import projections as p
from domain.models import Model
from domain.submissions import Submission
from graph.execution.declarations import (
    Column,
    Computed,
    Entity,
    ReferenceOnly,
    Source,
    ToMany,
    declarations_of,
    declared,
    identifier,
    to_many,
    to_one,
)
from graph.execution.extension import CompiledPlans
from graph.execution.projection import ProjectionPlan
from graph.execution.specs import Loaded, Run
from graph.ids import to_global_id
from graph.schema.record import schema
from persistence.projections import ENTITIES, rendered, shape_of
from tests.integration import differential as d


async def _submissions_of_models(run: Run, ids: Sequence[uuid.UUID], _: None) -> Loaded:
    raise AssertionError("the one-statement path reads no level load")


async def _models_by_id(run: Run, ids: Sequence[uuid.UUID], _: None) -> Loaded:
    raise AssertionError("the one-statement path reads no level load")


# A relation the product does not have (a model's submissions), declared and nothing else.
@strawberry.type(name="Run")
class _Run(Entity):
    id: strawberry.ID = identifier()
    status: str
    entity: strawberry.Private[Submission]
    model: _ModelShown = to_one("model_id", load=_models_by_id)


@strawberry.type(name="Engine")
class _ModelShown(Entity):
    id: strawberry.ID = identifier()
    name: str
    entity: strawberry.Private[Model]
    runs: list[_Run] = to_many(_submissions_of_models, key="model_id")


@strawberry.type
class _Query:
    @declared(Source(_models_by_id, "Model"))
    def engine(self, id: strawberry.ID) -> _ModelShown | None:
        raise AssertionError("the reference path is not run here")


def _sql(gql: GraphQLSchema, document: str, variables: dict[str, Any]) -> str:
    plan, coerced = CompiledPlans(4).projection_for(
        gql, parse(document), (document, None), variables
    )
    assert isinstance(plan, ProjectionPlan), plan
    slots = plan.slots(coerced)
    return rendered(plan.projection, False, shape_of(slots)).sql


def test_a_relation_declared_on_its_field_is_joined_in_the_statement() -> None:
    gql = strawberry.Schema(query=_Query)._schema
    document = "query($id: ID!) { engine(id: $id) { name runs { status model { name } } } }"

    sql = _sql(gql, document, {"id": to_global_id("Model", uuid.uuid4())})

    # engine -> t1 (models), runs -> t2 (submissions by model_id), model -> t3 (by id)
    assert re.search(r"FROM models t1 WHERE t1\.id = \$\d+::uuid", sql)
    assert "FROM submissions t2 WHERE t2.model_id = t1.id AND t2.owner_id = $" in sql
    assert "ORDER BY t2.created_at, t2.id" in sql  # a to-many's default order
    assert "FROM models t3 WHERE t3.id = t2.model_id)" in sql  # by id: no ORDER BY, no LIMIT


def test_the_join_is_what_the_field_declares() -> None:
    declared_here = declarations_of(strawberry.Schema(query=_Query)._schema)
    runs = declared_here.fields["Engine"]["runs"]
    assert declared_here.entities == {"Run": "Submission", "Engine": "Model"}
    assert isinstance(runs, ToMany)
    assert runs.join("Submission") == p.Join("Submission", "model_id", p.Parent("id"))


@strawberry.type(name="Upcoming")
class _Missing(Entity):
    id: strawberry.ID = identifier()
    available_at: datetime  # Submission has no such attribute
    entity: strawberry.Private[Submission]


@strawberry.type
class _MissingQuery:
    @declared(Source(_models_by_id, "Submission"))
    def upcoming(self, id: strawberry.ID) -> _Missing | None:
        raise AssertionError("never resolved")


def test_a_column_the_entity_lacks_fails_when_the_declarations_are_read() -> None:
    gql = strawberry.Schema(query=_MissingQuery)._schema
    with pytest.raises(TypeError, match=r"Upcoming\.availableAt: Submission has no attribute"):
        declarations_of(gql)


def test_every_column_of_the_schema_is_a_column_of_its_entitys_table() -> None:
    """What the store reads for each declared column exists: an attribute the entity has but
    its table lacks fails here, not mid-request."""
    declared_here = declarations_of(schema._schema)
    checked = 0
    for type_name, entity in declared_here.entities.items():
        if entity not in ENTITIES:
            continue  # shown only by the reference executor (batches, webhooks, ...)
        for declaration in declared_here.fields[type_name].values():
            if isinstance(declaration, Column):
                assert declaration.attribute is not None
                ENTITIES[entity].column("t", declaration.attribute)  # raises when missing
                checked += 1
    assert checked > 25


def test_every_field_a_query_reaches_renders_as_sql_or_says_why_not() -> None:
    """Each field, reached by the shortest path from Query, compiles to one statement whose
    joins and columns render (their entities have tables, their columns exist), unless the
    path crosses a field declared Computed or ReferenceOnly: no relation is left to a
    registry the declaration does not feed."""
    gql = schema._schema
    declared_here = declarations_of(gql)
    left_out = {
        f"field:{type_name}.{name}"
        for type_name, fields in declared_here.fields.items()
        for name, declaration in fields.items()
        if isinstance(declaration, Computed | ReferenceOnly)
    }
    rendered_count = 0
    for found in d.every_field_documents(gql):
        plan, slots = _compiled(gql, found.query)
        if isinstance(plan, str):
            assert plan in left_out, (found.coordinate, plan)
            continue
        for is_admin in (False, True):
            assert rendered(plan.projection, is_admin, shape_of(slots)).sql
        rendered_count += 1
    assert rendered_count > 50


def _compiled(gql: GraphQLSchema, query: str) -> tuple[ProjectionPlan | str, list[p.SlotValue]]:
    """The document's plan and its slots, with an id of the root field's type for `$v0_id`."""
    [variables, *_] = d.variable_sets(query, None) or [{}]
    document = parse(query)
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    root = operation.selection_set.selections[0]
    if "v0_id" in variables and isinstance(root, FieldNode):
        type_name = root.name.value[0].upper() + root.name.value[1:]
        variables = {**variables, "v0_id": to_global_id(type_name, uuid.uuid4())}
    plan, coerced = CompiledPlans(4).projection_for(gql, document, (query, None), variables)
    if isinstance(plan, str):
        return plan, []
    return plan, plan.slots(coerced)
