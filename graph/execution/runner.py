"""Running a plan: the loads level by level on one unit of work, then the response."""

from __future__ import annotations

from typing import Any

import orjson
from graphql.execution.values import VariableValues

from domain.projections import Anomaly, Constant, ProjectionReader
from graph.execution.codegen import Values
from graph.execution.compiler import Plan
from graph.execution.projection import ProjectionPlan
from graph.execution.specs import ROOT, Fallback, Run


async def execute(plan: Plan, run: Run, variables: VariableValues) -> dict[str, Any]:
    """The response data; raises Fallback or a DomainError where the reference must answer."""
    arguments = [relation.arguments(variables) for relation in plan.relations]
    values: Values = [{} for _ in plan.relations]
    async with run.uow:
        level: list[tuple[Any, list[Any]]] = [(plan.root, [ROOT])]
        while level:
            following: list[tuple[Any, list[Any]]] = []
            for selection, parents in level:
                for relation in selection.relations:
                    keys = list(dict.fromkeys(map(relation.key, parents)))
                    if not keys:
                        continue  # no parent, no statement: as the reference path
                    loaded = await relation.load(run, keys, arguments[relation.index])
                    values[relation.index] = loaded
                    if relation.children:
                        children = relation.flatten(loaded)
                        following.extend((child, children) for child in relation.children)
            level = following
    return plan.root.build(ROOT, values)


async def project(plan: ProjectionPlan, run: Run, variables: VariableValues) -> Any:
    """The response data from one statement, or None where the store answers no projections.

    The store writes JSON in its own spelling (spaces, escapes, numbers as written); parsing
    it gives the values the reference path would serialize, so the response bytes match."""
    roots = plan.projection.roots
    if all(isinstance(root, Constant) for _, root in roots):
        return {key: root.value for key, root in roots}  # `{ __typename }`: nothing to read
    slots = plan.slots(variables)  # a bad argument raises its DomainError before any I/O
    async with run.uow:
        # What isinstance(run.uow, Projecting) checks, without typing's runtime protocol
        # check (~3% of a point lookup's CPU).
        reader: ProjectionReader | None = getattr(run.uow, "projections", None)
        if reader is None:
            return None
        try:
            text = await reader.read(run.principal, plan.projection, slots)
        except Anomaly:
            raise Fallback("anomaly") from None
    return orjson.loads(text)
