"""A validated operation's fields as both compilers see them: graphql-core's field
collection (so keys, order, fragments and @skip/@include mean what they mean on the
reference path), bounded in size, and without the directives the plans do not cover."""

from __future__ import annotations

from graphql import GraphQLObjectType, GraphQLSchema, OperationDefinitionNode
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues

from graph.execution.specs import Unsupported

MAX_PLAN_FIELDS = 1_000

Grouped = dict[str, FieldDetailsList]


class FieldCollector:
    """Collects fields for one plan, counting them against MAX_PLAN_FIELDS."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.operation = operation
        self.fields = 0

    def _query_type(self) -> GraphQLObjectType:
        query = self.schema.query_type
        assert query is not None
        return query

    def _root_fields(self) -> Grouped:
        return collect_fields(
            self.schema, self.fragments, self.variables, self._query_type(), self.operation
        ).grouped_field_set

    def _subfields(self, gql_type: GraphQLObjectType, details: FieldDetailsList) -> Grouped:
        return collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, gql_type, details
        ).grouped_field_set

    def _fields(self, grouped: Grouped) -> list[tuple[str, FieldDetailsList]]:
        """The fields in order, counted; Unsupported for @defer, fragment arguments, or a
        plan past the bound."""
        for details in grouped.values():
            for detail in details:
                if detail.defer_usage is not None or detail.fragment_variable_values is not None:
                    raise Unsupported("directive")
        self.fields += len(grouped)
        if self.fields > MAX_PLAN_FIELDS:
            raise Unsupported("too_large")
        return list(grouped.items())

    def _fields_of(
        self, gql_type: GraphQLObjectType, details: FieldDetailsList
    ) -> list[tuple[str, FieldDetailsList]]:
        return self._fields(self._subfields(gql_type, details))
