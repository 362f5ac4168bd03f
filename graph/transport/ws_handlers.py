"""The two WebSocket protocols' handlers, bounded: a size cap per message, an init timeout
for the legacy protocol too, and legacy `start` messages that run any operation."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from graphql import GraphQLError
from strawberry.schema.schema import StreamResult
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionErrorMessage,
    ErrorMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError

from domain.errors import Unavailable
from graph.errors import AssayGraphQLError, format_error
from graph.execution.context import Context

INIT_TIMEOUT_CODE = 4408
# "Try Again Later": the sign-in could not reach the database. Strawberry's rejection code
# (4403) would tell a client its token is bad, and graphql-ws clients do not retry after it.
RETRY_LATER_CODE = 1013


class MessageTooLarge(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} > {limit}")
        self.size = size
        self.limit = limit


def too_large_error(error: MessageTooLarge, context: Context) -> GraphQLError:
    refusal = AssayGraphQLError(
        f"a subscription message of {error.size} bytes exceeds the limit of {error.limit}; "
        "select fewer fields",
        "QUERY_TOO_COMPLEX",
        size=error.size,
        limit=error.limit,
    )
    return format_error(refusal, context.request_id)


def check_size(result: ExecutionResult, limit: int) -> None:
    """Refuse a message whose data would exceed `limit` bytes once encoded."""
    size = len(orjson.dumps(result.data))
    if size > limit:
        raise MessageTooLarge(size, limit)


def _message_limit(view: Any) -> int | None:
    limit = getattr(view, "max_message_bytes", None)
    return limit if isinstance(limit, int) else None


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws; an oversized message ends its subscription with an error, and a
    sign-in that cannot reach the database closes the socket as retryable."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Unavailable as error:
            await self.websocket.close(code=RETRY_LATER_CODE, reason=str(error))

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: StreamResult
    ) -> None:
        limit = _message_limit(self.view)
        if limit is None:
            await super()._send_result_stream(operation, result_source)
            return
        try:
            await super()._send_result_stream(operation, _capped(result_source, limit))
        except MessageTooLarge as error:
            await operation.send_initial_errors([too_large_error(error, self.context)])


async def _capped(results: StreamResult, limit: int) -> StreamResult:
    async for result in results:
        if isinstance(result, ExecutionResult) and not isinstance(result, PreExecutionError):
            check_size(result, limit)
        yield result


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """subscriptions-transport-ws ("graphql-ws"), held to the same rules as the newer one."""

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Unavailable as error:
            rejection = ConnectionErrorMessage(
                type="connection_error", payload={"message": str(error)}
            )
            await self.send_message(rejection)
            await self.websocket.close(code=RETRY_LATER_CODE, reason=str(error))

    async def handle(self) -> None:
        timeout = asyncio.create_task(self._close_without_init())
        try:
            await super().handle()
        finally:
            timeout.cancel()

    async def _close_without_init(self) -> None:
        delay = getattr(self.view, "connection_init_wait_timeout", None)
        await asyncio.sleep(delay.total_seconds() if delay is not None else 60.0)
        if not self.connection_acknowledged:
            await self.websocket.close(
                code=INIT_TIMEOUT_CODE, reason="Connection initialisation timeout"
            )

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Like the base class, but any operation type runs (a query answers once, then
        `complete`), errors carry the contract's codes, and messages are size-capped."""
        try:
            results = await self.schema.stream(
                query=query,
                variable_values=variables,
                context_value=self.context,
                root_value=self.root_value,
                operation_name=operation_name,
            )
            self.subscriptions[operation_id] = results
            await self._send_results(operation_id, results)
            await self.send_message({"type": "complete", "id": operation_id})
        except asyncio.CancelledError:
            await self.send_message({"type": "complete", "id": operation_id})
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _send_results(self, operation_id: str, results: StreamResult) -> None:
        limit = _message_limit(self.view)
        is_first = True
        async with contextlib.aclosing(results):
            try:
                async for result in results:
                    if is_first and isinstance(result, PreExecutionError) and result.errors:
                        await self._send_error(operation_id, result.errors[0])
                        return
                    if not isinstance(result, ExecutionResult):
                        await self._send_error(
                            operation_id, GraphQLError("incremental delivery is not supported")
                        )
                        return
                    if limit is not None:
                        check_size(result, limit)
                    await self.send_data_message(result, operation_id)
                    is_first = False
            except MessageTooLarge as error:
                await self._send_error(operation_id, too_large_error(error, self.context))

    async def _send_error(self, operation_id: str, error: GraphQLError) -> None:
        await self.send_message(
            ErrorMessage(type="error", id=operation_id, payload=error.formatted)
        )
