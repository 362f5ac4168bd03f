"""The GraphQL view: adapts HTTP and WebSocket to the request pipeline (execution/pipeline.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from domain.errors import DomainError, Unauthenticated, Unavailable
from domain.principal import Principal
from graph.dependencies import AppDependencies
from graph.errors import INTERNAL_MESSAGE, AssayGraphQLError, format_error
from graph.execution.batch_plans import BATCH_INFERENCE, BatchAnswer, compile_batch
from graph.execution.context import Context
from graph.execution.document_cache import CachedDocuments, DocumentCache
from graph.execution.extension import CompiledExecution, CompiledPlans, KnownQueries
from graph.execution.inference_plans import (
    RUN_INFERENCE,
    Answer,
    KnownInferences,
    RememberInference,
    compile_inference,
)
from graph.execution.pipeline import OperationRecord, Pipeline, RequestState
from graph.execution.query_protection import query_protection, rate_limit_key, rate_limited_error
from graph.protection.authentication import Authenticator
from graph.protection.operation_choice import OneOperationOrName
from graph.protection.persisted import PersistedQueries
from graph.realtime.sockets import EvictableSend
from graph.schema.record import build_schema
from graph.transport.batch_lane import BatchLane
from graph.transport.body_limit import BodyTooLarge
from graph.transport.fast_lane import FastLane
from graph.transport.graphiql import graphiql_response, is_own_host
from graph.transport.http_errors import (
    BAD_REQUEST,
    INTERNAL,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    error_response,
    unavailable_response,
)
from graph.transport.inference_lane import InferenceLane
from graph.transport.over_http import (
    GRAPHQL_RESPONSE_JSON,
    JSON,
    is_request_error,
    negotiate,
    request_error_status,
)
from graph.transport.websocket_adapter import JsonTextWebSocketAdapter
from graph.transport.ws_handlers import LegacyWSHandler, TransportWSHandler
from telemetry import metrics

PERSISTED_LOOKUP_COST = 10  # rate-limit points per persisted document read from the database
logger = logging.getLogger("assay.errors")

NOT_AN_OPERATION = (
    "The request body must be a JSON object with a string `query` and an object `variables` "
    "(or, when batching is on, an array of such objects)."
)


class AssayGraphQL(GraphQL[Context, None]):
    websocket_adapter_class = JsonTextWebSocketAdapter  # see graph/transport/websocket_adapter.py
    graphql_transport_ws_handler_class = TransportWSHandler  # see graph/transport/ws_handlers.py
    graphql_ws_handler_class = LegacyWSHandler

    def __init__(self, deps: AppDependencies, **kwargs: Any) -> None:
        extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = (
            [] if deps.introspection else [DisableIntrospection]
        )
        plans = CompiledPlans(deps.compiled_plan_cache_size, is_enabled=deps.compiled_execution)
        self.persisted = PersistedQueries(deps.persisted_operations, deps.persisted_queries)
        self.authenticator = Authenticator(
            verifier=deps.verifier,
            uow=deps.uow,
            read_uow=deps.read_uow,
            clock=deps.clock,
            admin_group=deps.admin_group,
            api_key_secrets=deps.api_key_secrets,
            sign_ins=deps.sign_ins,
        )
        # One pipeline for both paths: these extensions and the fast lane call its steps.
        pipeline = Pipeline(
            authenticate=self.authenticator.caller,
            persisted=self.persisted,
            limits=deps.limits,
            rate_limiter=deps.rate_limiter,
            plans=plans,
            shared_context=deps.shared_context(),
        )
        self.pipeline = pipeline
        extensions.append(query_protection(pipeline))
        documents = DocumentCache(deps.document_cache_size)
        extensions.append(lambda: CachedDocuments(documents))  # after QueryProtection
        extensions.append(OneOperationOrName)  # after CachedDocuments' validation errors
        extensions.extend(deps.schema_extensions)
        # The fast lane answers texts the pipeline accepted and answered compiled before.
        known = KnownQueries(deps.compiled_plan_cache_size) if deps.compiled_execution else None
        # Last: after the limits' on_execute.
        extensions.append(lambda: CompiledExecution(pipeline, known))
        # runInference texts the pipeline accepted, for graph/transport/inference_lane.py.
        # batchInference texts likewise, for graph/transport/batch_lane.py.
        inferences: KnownInferences[Answer] | None = None
        batches: KnownInferences[BatchAnswer] | None = None
        if known is not None:
            inferences = KnownInferences(deps.compiled_plan_cache_size)
            batches = KnownInferences(deps.compiled_plan_cache_size)
            extensions.append(
                lambda: RememberInference(inferences, RUN_INFERENCE, compile_inference)
            )
            extensions.append(lambda: RememberInference(batches, BATCH_INFERENCE, compile_batch))
        limits = deps.limits
        schema = build_schema(
            extensions,
            limits.max_batch_operations if limits.batching else None,
            record=lambda: OperationRecord(pipeline),
        )
        super().__init__(
            schema,
            graphql_ide="graphiql" if deps.graphiql else None,
            connection_init_wait_timeout=deps.ws_init_timeout,
            **kwargs,
        )
        self.deps = deps
        self.max_message_bytes = deps.max_subscription_message_bytes  # read by the handlers
        self.fast_lane = (
            FastLane(
                schema._schema,
                pipeline,
                known,
                deps.read_uow or deps.uow,
                inference=InferenceLane(schema, pipeline, inferences),
                batch=BatchLane(schema, pipeline, batches),
            )
            if known is not None and inferences is not None and batches is not None
            else None
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> Context:
        # Over WebSocket the token arrives later, in connection_init (on_ws_connect).
        if isinstance(request, Request):  # once per request: the fast lane may have already
            await self.pipeline.authenticate(request)
        return self.pipeline.context(request, response if isinstance(response, Response) else None)

    async def on_ws_connect(self, context: Context) -> dict[str, object] | None:
        params = context.connection_params or {}
        authorization = params.get("Authorization") or params.get("authorization")
        principal_or_error, expires_at = await self.authenticator.authenticate(
            authorization if isinstance(authorization, str) else None
        )
        if isinstance(principal_or_error, Unavailable):
            # Not a rejection: graph/transport/ws_handlers.py closes with 1013.
            raise principal_or_error
        websocket = context.request
        assert isinstance(websocket, WebSocket)
        if isinstance(principal_or_error, DomainError):
            if isinstance(principal_or_error, Unauthenticated):
                self.pipeline.charge_refusal(websocket)
            raise ConnectionRejectionError({"message": str(principal_or_error)})
        broker = self.deps.broker
        if broker is not None and getattr(websocket.state, "connected_user", None) is None:
            if not broker.connect(principal_or_error.user_id):
                raise ConnectionRejectionError({"message": "too many connections for this user"})
            websocket.state.connected_user = principal_or_error.user_id
        if self.deps.sockets is not None and getattr(websocket.state, "signed_in", None) is None:
            # Once per socket: a second legacy connection_init must not count it out twice.
            # A key's sockets are filed under the key too: revoking it closes them.
            holders = principal_or_error.revocable_ids
            self.deps.sockets.signed_in(websocket.state.slot, holders, context.close_socket)
            websocket.state.signed_in = (holders, context.close_socket)
        context.principal_or_error = principal_or_error
        if expires_at is not None:
            websocket.state.expiry = asyncio.create_task(_close_at(context, expires_at))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._serve_http(scope, receive, send)
            return
        sockets = self.deps.sockets
        address = scope["client"][0] if scope.get("client") else "unknown"
        gate = EvictableSend(send)
        slot = None if sockets is None else await sockets.admit(address, gate.evict)
        if sockets is not None and slot is None:
            metrics.WEBSOCKETS_REFUSED.inc()
            await send({"type": "websocket.close", "code": 1013, "reason": "too many sockets"})
            return
        state = scope.setdefault("state", {})
        state["address"] = address
        state["slot"] = slot
        try:
            await super().__call__(scope, receive, gate.send)
        finally:
            if sockets is not None and slot is not None:
                holders, close = state.get("signed_in", (None, None))
                sockets.release(slot, holders, close)
            if (expiry := state.get("expiry")) is not None:
                expiry.cancel()
            if (user_id := state.get("connected_user")) is not None and self.deps.broker:
                self.deps.broker.disconnect(user_id)

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        # Strawberry asks for cross-origin handshakes only (no Origin, or the server's own,
        # pass before): the same origins as HTTP's CORS, from ASSAY_CORS_ORIGINS.
        return self.deps.cors.allows(origin.rstrip("/"))

    async def render_graphql_ide(self, request: Request) -> Response:
        # The offline bundle of graph/transport/static/graphiql; in development, signed in
        # already, but only when asked under the server's own name (DNS rebinding).
        issue = self.deps.graphiql_token
        is_own = is_own_host(request.headers.get("host"), self.deps.public_host)
        return graphiql_response(request, issue() if issue is not None and is_own else None)

    # ------------------------------------------------ GraphQL over HTTP, persisted queries

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        metrics.start_request_statements()
        try:
            response = None
            if self.fast_lane is not None and scope["method"] == "POST":
                response = await self.fast_lane.answer(request)
            if response is None:
                response = await self.run(request)
        except ClientDisconnect:
            return  # the client went away mid-body (a load generator stopping): nobody to answer
        except HTTPException as error:
            headers = {"Allow": getattr(error, "allow", "GET, POST")}
            response = error_response(
                scope,
                error.status_code,
                error.reason,
                headers=headers if error.status_code == 405 else None,
            )
        except BodyTooLarge:
            raise  # RequestBodyLimit answers it (413), whoever was reading the body
        except Exception as error:
            response = _failure_response(scope, error)
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request: Any) -> bool:
        # A GET of a persisted query has no `query` parameter but is no page view.
        return super().should_render_graphql_ide(request) and (
            "extensions" not in request.query_params
        )

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = negotiate(request.headers.get("accept")) or JSON
        RequestState.of(request).sub_response = sub_response
        return sub_response

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        started = time.perf_counter()
        principal = context.principal_or_error
        try:
            resolved = await self.pipeline.resolve_document(
                request_data.query,
                request_data.extensions,
                principal,
                charge=lambda: self._charge_lookup(context),
            )
        except AssayGraphQLError as error:
            return self._refused(context, request_data, error, started)
        assert resolved is not None  # only the fast lane's in-memory resolution gives None
        try:
            result = await super().execute_single(
                request,
                request_adapter,
                sub_response,
                context,
                root_value,
                replace(request_data, query=resolved.document),
            )
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError) and (
                request_adapter.method == "GET"
            ):
                raise MethodNotAllowed("GET is for queries only: POST mutations") from error
            raise
        if (
            resolved.sha256
            and resolved.document
            and not is_request_error(result.data, result.errors)
        ):
            signed_in = principal.user_id if isinstance(principal, Principal) else None
            await self.persisted.remember(resolved.sha256, resolved.document, signed_in)
        return result

    def _refused(
        self,
        context: Context,
        request_data: GraphQLRequestData,
        error: AssayGraphQLError,
        started: float,
    ) -> ExecutionResult:
        """A request that never reached the schema: the same error shape, and the pipeline's
        record step counts and times it like any operation."""
        formatted = format_error(error, context.request_id)
        self.pipeline.record(
            context,
            operation_name=request_data.operation_name,
            operation_type="unknown",
            duration_seconds=time.perf_counter() - started,
            errors=[formatted],
        )
        return ExecutionResult(data=None, errors=[formatted])

    async def _charge_lookup(self, context: Context) -> None:
        """A persisted-document lookup in the database costs the caller points: unknown
        hashes are free to invent, and each one is a statement."""
        limiter = self.deps.rate_limiter
        if limiter is None:
            return
        wait = await limiter.acquire_settled(
            rate_limit_key(context, limiter), PERSISTED_LOOKUP_COST
        )
        if wait > 0:
            metrics.RATE_LIMIT_REFUSALS.inc()
            raise rate_limited_error(wait)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = await super().process_result(request, result)
        if result.errors and is_request_error(result.data, result.errors):
            response.pop("data", None)  # nothing executed: the spec's "no data entry"
            sub_response = RequestState.of(request).sub_response
            # An unusable request is 4xx under either media type (the contract's BAD_REQUEST).
            if sub_response is not None and (
                sub_response.media_type == GRAPHQL_RESPONSE_JSON
                or any((e.extensions or {}).get("code") == BAD_REQUEST for e in result.errors)
            ):
                sub_response.status_code = request_error_status(result.errors)
        if result.errors and any(
            (e.extensions or {}).get("code") == UNAVAILABLE for e in result.errors
        ):
            _answer_unavailable(request)
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or JSON
        response.headers["content-type"] = f"{media_type}; charset=utf-8"
        return response

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses invalid UTF-8 and lone surrogates with a JSONDecodeError (400), where
        # json.loads raises UnicodeDecodeError (500) or lets surrogates through to the encoder.
        return orjson.loads(data)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        _check_media_types(request)
        try:
            data = await super().parse_http_body(request)
        except AttributeError:  # strawberry calls .get() on a JSON body that is not an object
            raise HTTPException(400, NOT_AN_OPERATION) from None
        for item in data if isinstance(data, list) else ():
            if not isinstance(item.query, str | None) or not isinstance(
                item.variables, dict | None
            ):
                raise HTTPException(400, NOT_AN_OPERATION)
        return data


def _answer_unavailable(request: Request) -> None:
    """An outage is 503 with Retry-After under either media type: clients and proxies retry."""
    sub_response = RequestState.of(request).sub_response
    if sub_response is not None:
        sub_response.status_code = 503
        sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)


def _failure_response(scope: Scope, error: Exception) -> Response:
    """A request that failed outside GraphQL's error handling: UNAVAILABLE or INTERNAL."""
    request_id = scope.get("state", {}).get("request_id", "-")
    chain: BaseException | None = error
    while chain is not None and not isinstance(chain, Unavailable):
        chain = chain.__cause__ or chain.__context__
    if chain is not None:
        logger.warning("request %s: %s", request_id, chain)
        return unavailable_response(scope, str(chain))
    logger.error("unexpected error (request %s)", request_id, exc_info=error)
    return error_response(scope, 500, INTERNAL_MESSAGE, INTERNAL)


class MethodNotAllowed(HTTPException):
    """405 with the methods that would work (the Allow header)."""

    def __init__(self, reason: str, allow: str = "POST") -> None:
        super().__init__(405, reason)
        self.allow = allow


def _check_media_types(request: AsyncHTTPRequestAdapter) -> None:
    """406 when Accept names nothing we serve; 415 for a POST body that is not JSON."""
    if negotiate(request.headers.get("accept")) is None:
        raise HTTPException(406, f"Acceptable media types: {GRAPHQL_RESPONSE_JSON}, {JSON}")
    if request.method == "POST":
        media_type, _ = parse_content_type(request.content_type or "")
        if media_type.lower() != JSON:
            raise HTTPException(415, f"The request body must be {JSON}")


async def _close_at(context: Context, expires_at: datetime) -> None:
    delay = (expires_at - context.clock()).total_seconds()
    await asyncio.sleep(max(0.0, delay))
    await context.close_socket(4403, "token expired")
