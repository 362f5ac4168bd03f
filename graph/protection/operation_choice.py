"""A document with several operations must say which one to run (operationName)."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from graph.errors import AssayGraphQLError

SEVERAL_OPERATIONS = "The document holds several operations: name the one to run with operationName"


class OneOperationOrName(SchemaExtension):
    """Refuse, before validation, a document of several operations and no operationName.

    Strawberry would take the first operation for its checks; the request is unusable as
    sent (the contract's BAD_REQUEST), not a guess to run.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # ExecutionContext.operation_name falls back to the first operation's name; the name
        # the request gave is kept only in this private field.
        given: str | None = getattr(context, "_provided_operation_name", None)
        if given is None and document is not None:
            operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            if operations > 1:
                refused = AssayGraphQLError(SEVERAL_OPERATIONS, "BAD_REQUEST")
                context.pre_execution_errors = [*(context.pre_execution_errors or []), refused]
        yield
