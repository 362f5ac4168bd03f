"""The Starlette application: /graphql (HTTP and WebSocket), health, readiness, metrics, JWKS."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.dependencies import AppDependencies
from graph.transport.body_limit import RequestBodyLimit
from graph.transport.graphiql import graphiql_routes
from graph.transport.security_headers import SecurityHeaders
from graph.transport.view import AssayGraphQL
from telemetry import metrics

REQUEST_ID_HEADER = "x-request-id"
# The request being served, for log lines written anywhere below it (server/logging.py).
CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("assay_request_id", default=None)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Honour a well-formed X-Request-ID or make one; expose it to handlers and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = CURRENT_REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT_REQUEST_ID.reset(token)


def create_app(deps: AppDependencies) -> Starlette:
    graphql = AssayGraphQL(deps)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        failures = await deps.readiness()
        status = 503 if failures else 200
        body = {"status": "unavailable" if failures else "ready", "failures": failures}
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

    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequestBodyLimit, max_bytes=deps.max_request_bytes, paths=["/graphql"])
    cors = deps.cors.middleware()  # outside the body limit: a browser can read its 413
    app.add_middleware(cors.cls, *cors.args, **cors.kwargs)
    app.add_middleware(SecurityHeaders, strict_transport=deps.strict_transport_security)
    app.add_middleware(RequestIdMiddleware)
    return app
