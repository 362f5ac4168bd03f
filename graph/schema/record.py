"""The Strawberry schema of record, with error codes and request ids on every error."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import BatchingConfig, StrawberryConfig
from strawberry.schema.schema import StreamResult
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from graph.errors import format_error, log_unexpected
from graph.execution.catalog import catalog_of
from graph.execution.context import Context
from graph.execution.pipeline import OperationRecord
from graph.schema.assets import AssetType
from graph.schema.batches import BatchType
from graph.schema.model_alerts import ModelAlertType
from graph.schema.models import ModelType
from graph.schema.results import ResultType
from graph.schema.root import Mutation, Query, Subscription
from graph.schema.submissions import SubmissionType
from graph.schema.users import UserType
from graph.schema.webhooks import WebhookDeliveryType, WebhookEndpointType


def _request_id(execution_context: ExecutionContext) -> str:
    context = execution_context.context
    return context.request_id if isinstance(context, Context) else "-"


class ContractErrors(SchemaExtension):
    """Give every error the contract's extensions.code and extensions.requestId; mask internals."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            request_id = _request_id(self.execution_context)
            result.errors = [format_error(e, request_id) for e in result.errors]


async def _with_contract_errors(results: StreamResult, request_id: str) -> StreamResult:
    """Subscription results bypass on_operation's rewrite: give their errors codes too."""
    async for result in results:
        if isinstance(result, ExecutionResult) and result.errors:
            log_unexpected(result.errors, request_id)
            result.errors = [format_error(e, request_id) for e in result.errors]
        yield result


class AssaySchema(strawberry.Schema):
    async def stream(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
    ) -> StreamResult:
        results = await super().stream(
            query,
            variable_values,
            context_value,
            root_value,
            operation_name,
            operation_extensions,
            allowed_operation_types,
        )
        request_id = context_value.request_id if isinstance(context_value, Context) else "-"
        return _with_contract_errors(results, request_id)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected (domain, validation) errors are answers, not incidents: log only the rest.
        log_unexpected(errors, _request_id(execution_context) if execution_context else "-")


def build_schema(
    extra_extensions: Sequence[type[SchemaExtension] | Callable[[], SchemaExtension]] = (),
    max_batch_operations: int | None = None,
    *,
    record: type[SchemaExtension] | Callable[[], SchemaExtension] = OperationRecord,
) -> AssaySchema:
    # The record step wraps ContractErrors, so it counts errors with their final codes;
    # extensions after ContractErrors (QueryProtection) finish first, before errors get codes.
    batching = None
    if max_batch_operations is not None:
        batching = BatchingConfig(max_operations=max_batch_operations)
    built = AssaySchema(
        config=StrawberryConfig(batching_config=batching),
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            UserType,
            AssetType,
            ModelType,
            SubmissionType,
            ResultType,
            WebhookEndpointType,
            WebhookDeliveryType,
            BatchType,
            ModelAlertType,
        ],
        extensions=[record, ContractErrors, *extra_extensions],
    )
    catalog_of(built._schema)  # every field's declaration read once, now rather than mid-request
    return built


schema = build_schema()
