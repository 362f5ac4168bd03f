"""The Starlette application: /graphql (HTTP and WebSocket), health, readiness, metrics, JWKS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from graph.dependencies import AppDependencies
from graph.transport.body_limit import RequestBodyLimit
from graph.transport.compression import Compression
from graph.transport.edge import CURRENT_REQUEST_ID, REQUEST_ID_HEADER, Edge
from graph.transport.graphiql import graphiql_routes
from graph.transport.http_errors import (
    BAD_REQUEST,
    INTERNAL,
    UNAVAILABLE,
    error_response,
    request_id_of,
)
from graph.transport.models_page import models_page_routes
from graph.transport.view import AssayGraphQL
from telemetry import metrics

__all__ = ["CURRENT_REQUEST_ID", "REQUEST_ID_HEADER", "create_app"]


def create_app(deps: AppDependencies) -> Starlette:
    graphql = AssayGraphQL(deps)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        failures = await deps.readiness()
        status = 503 if failures else 200
        degraded = deps.degradations() if deps.degradations is not None else {}
        body = {
            "status": "unavailable" if failures else "ready",
            "failures": failures,
            "degraded": degraded,
        }
        return JSONResponse(body, status_code=status)

    async def metrics_endpoint(_: Request) -> Response:
        if deps.broker is not None:
            metrics.OPEN_SUBSCRIPTIONS.set(deps.broker.subscriber_count)
        body, content_type = metrics.render()
        return PlainTextResponse(body, media_type=content_type)

    async def jwks(_: Request) -> Response:
        assert deps.jwks is not None
        return JSONResponse(deps.jwks(), headers={"Cache-Control": "public, max-age=300"})

    routes: list[BaseRoute] = [
        # Every method reaches the view, which answers the ones it does not serve with 405 in
        # the contract's error shape (the router's own 405 would be plain text).
        Route("/graphql", graphql),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *graphiql_routes(enabled=deps.graphiql),
        *models_page_routes(
            enabled=deps.graphiql, token=deps.models_page_token, public_host=deps.public_host
        ),
        *deps.routes,
    ]
    if deps.jwks is not None:
        routes.append(Route("/.well-known/jwks.json", jwks))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        for start in deps.on_startup:
            await start()
        try:
            yield
        finally:
            for stop in deps.on_shutdown:
                await stop()

    handlers = {HTTPException: _http_error, Exception: _internal_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.add_middleware(RequestBodyLimit, max_bytes=deps.max_request_bytes, paths=["/graphql"])
    # Every answer of the application, the fast lane's included; not the blob routes.
    app.add_middleware(Compression, skip_path_prefix=deps.blob_path_prefix)
    # Request id, security headers and CORS in one layer, outside the body limit: a browser
    # can read its 413.
    app.add_middleware(
        Edge,
        cors=deps.cors.middleware(),
        strict_transport=deps.strict_transport_security,
        blob_cors=deps.cors.blob_middleware(),
        blob_path_prefix=deps.blob_path_prefix,
    )
    return app


# The router's own answers (no such path, a method a route does not serve), in the error shape.
_CODES = {404: "NOT_FOUND", 503: UNAVAILABLE}


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    status = error.status_code
    code = _CODES.get(status, BAD_REQUEST if status < 500 else INTERNAL)
    return error_response(request.scope, status, error.detail, code, headers=error.headers)


async def _internal_error(request: Request, _: Exception) -> Response:
    """Starlette's last resort (the exception is logged by the server): outside the Edge
    layer, so the request id header is added here."""
    request_id = request_id_of(request.scope)
    return error_response(
        request.scope, 500, "internal error", INTERNAL, headers={"x-request-id": request_id}
    )
