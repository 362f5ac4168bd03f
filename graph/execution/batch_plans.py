"""Known batchInference documents: plans that write a batchInference's answer without Strawberry.

graph/execution/inference_plans.py's machinery with another compiler: a mutation text whose
one root field is `batchInference` (beside any `__typename`) is remembered once the full
pipeline accepted it (`RememberInference` with `compile_batch`), when everything it selects
is a value the answer holds: the payload's `submissions` (their values, and each one's
`batch`) and its `batch` (its values and `counts`; not its owner, model, estimate or
submissions, which need reads). graph/transport/batch_lane.py answers a later POST of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, OperationDefinitionNode
from graphql.execution.collect_fields import FieldDetailsList, FragmentDetails
from graphql.execution.values import VariableValues

from domain.batches import Batch
from domain.submissions import Submission
from graph.execution.codegen import Attribute, Build, Call, Constant, FieldCode, Values, builder
from graph.execution.compiler import Relation
from graph.execution.inference_plans import InferenceCompiler, InferencePlan
from graph.execution.outputs import fast_type, output
from graph.execution.specs import Unsupported
from graph.ids import to_global_id

BATCH_INFERENCE = "batchInference"

# The submissions as accepted, in input order, and their batch as the viewer reads it (read
# only when the plan shows it: InferencePlan.reads_more).
BatchAnswer = tuple[list[Submission], Batch | None]

# Batch's value fields, by GraphQL name: the entity's attribute (as BatchType.from_entity).
_BATCH_VALUES = {
    "size": "size",
    "status": "status",
    "callbackUrl": "callback_url",
    "createdAt": "created_at",
    "completedAt": "completed_at",
}
_COUNTS = frozenset({"pending", "running", "succeeded", "failed", "cancelled"})


class BatchCompiler(InferenceCompiler):
    """batchInference's payload. Every build takes the batch as its `values[0]`: the
    payload's `batch` and each submission's `batch` are the one batch the answer holds (the
    reference executor reads both through one DataLoader)."""

    root = BATCH_INFERENCE

    reads_batch = False  # set when the selection shows the batch anywhere

    def batch_plan(self) -> InferencePlan[BatchAnswer]:
        plan: InferencePlan[BatchAnswer] = self.root_plan(
            lambda answer, build: build(answer, [answer[1]])
        )
        return replace(plan, reads_more=self.reads_batch)

    def _payload(self, mutation: GraphQLObjectType, details: FieldDetailsList) -> Build:
        payload = self._object_type(mutation.fields[self.root].type)
        fields: list[tuple[str, FieldCode]] = []
        for key, sub_details in self._fields_of(payload, details):
            name = sub_details[0].node.name.value
            if name == "__typename":
                fields.append((key, Constant(payload.name)))
            elif name == "submissions":
                child = self._submission(self._object_type(payload.fields[name].type), sub_details)
                fields.append((key, Call(_each_submission(child))))
            elif name == "batch":
                batch = self._batch(self._object_type(payload.fields[name].type), sub_details)
                fields.append((key, Call(_the_batch(batch))))
            else:
                raise Unsupported(f"field:{payload.name}.{name}")
        return builder(fields)

    def _submission(self, gql_type: GraphQLObjectType, details: FieldDetailsList) -> Build:
        """A submission's values through the batched compiler's own field builders, and its
        batch; a relation (a load) is Unsupported."""
        specs = self.catalog.get(gql_type.name, {})
        relations: list[Relation] = []
        fields: list[tuple[str, FieldCode]] = []
        for key, sub_details in self._fields_of(gql_type, details):
            name = sub_details[0].node.name.value
            gql_field = gql_type.fields.get(name)
            if name == "__typename":
                fields.append((key, Constant(gql_type.name)))
            elif name == "batch" and gql_field is not None:
                batch = self._batch(self._object_type(gql_field.type), sub_details)
                fields.append((key, Call(_the_batch(batch))))
            elif (spec := specs.get(name)) is not None and gql_field is not None:
                fields.append((key, self._field(spec, gql_field, sub_details, relations)))
            else:
                raise Unsupported(f"field:{gql_type.name}.{name}")
        if relations:
            raise Unsupported("relation")
        return builder(fields)

    def _batch(self, gql_type: GraphQLObjectType, details: FieldDetailsList) -> Build:
        """The batch's values and counts; its relations and estimate are Unsupported."""
        self.reads_batch = True
        fields: list[tuple[str, FieldCode]] = []
        for key, sub_details in self._fields_of(gql_type, details):
            name = sub_details[0].node.name.value
            gql_field = gql_type.fields.get(name)
            if name == "__typename":
                fields.append((key, Constant(gql_type.name)))
            elif gql_field is None:
                raise Unsupported(f"field:{gql_type.name}.{name}")
            elif name == "id":
                fields.append((key, Call(_batch_id(output(gql_field.type)))))
            elif name in _BATCH_VALUES:
                attribute = _BATCH_VALUES[name]
                serialize = output(gql_field.type)
                fields.append((key, Attribute(attribute, fast_type(gql_field.type), serialize)))
            elif name == "counts":
                counts = self._counts(self._object_type(gql_field.type), sub_details)
                fields.append((key, Call(_counts_of(counts))))
            else:
                raise Unsupported(f"field:{gql_type.name}.{name}")
        return builder(fields)

    def _counts(self, gql_type: GraphQLObjectType, details: FieldDetailsList) -> Build:
        fields: list[tuple[str, FieldCode]] = []
        for key, sub_details in self._fields_of(gql_type, details):
            name = sub_details[0].node.name.value
            gql_field = gql_type.fields.get(name)
            if name == "__typename":
                fields.append((key, Constant(gql_type.name)))
            elif name in _COUNTS and gql_field is not None:
                serialize = output(gql_field.type)
                fields.append((key, Attribute(name, fast_type(gql_field.type), serialize)))
            else:
                raise Unsupported(f"field:{gql_type.name}.{name}")
        return builder(fields)


def _each_submission(build: Build) -> Callable[[BatchAnswer, Values], list[dict[str, Any]]]:
    return lambda answer, values: [build(s, values) for s in answer[0]]


def _the_batch(build: Build) -> Callable[[Any, Values], dict[str, Any]]:
    """The answer's one batch (values[0]), from the payload or from any of its submissions."""
    return lambda _, values: build(values[0], values)


def _counts_of(build: Build) -> Callable[[Batch, Values], dict[str, Any]]:
    return lambda batch, values: build(batch.counts, values)


def _batch_id(serialize: Callable[[Any], Any]) -> Callable[[Batch, Values], Any]:
    return lambda batch, _: serialize(to_global_id("Batch", batch.id))


def compile_batch(
    schema: GraphQLSchema,
    fragments: dict[str, FragmentDetails],
    variables: VariableValues,
    operation: OperationDefinitionNode,
) -> InferencePlan[BatchAnswer]:
    return BatchCompiler(schema, fragments, variables, operation).batch_plan()
