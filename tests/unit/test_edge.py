"""The edge layer (graph/transport/edge.py): request ids, security headers and CORS, one pass."""

from __future__ import annotations

import re

from starlette.types import Message, Receive, Scope, Send

from graph.transport.cors import CorsPolicy
from graph.transport.edge import CURRENT_REQUEST_ID, Edge

Headers = list[tuple[bytes, bytes]]


def answering(headers: Headers, seen: list[object]) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["state"]["request_id"], CURRENT_REQUEST_ID.get()))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
            await send({"type": "http.response.body", "body": b"{}"})

    return app


async def call(edge: Edge, kind: str, headers: Headers) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": kind, "method": "POST", "path": "/graphql", "headers": headers}
    await edge(scope, receive, send)
    return sent


def edge(app: object, *, strict_transport: bool = False) -> Edge:
    policy = CorsPolicy.from_setting("https://app.example.com", local_by_default=False)
    return Edge(app, cors=policy.middleware(), strict_transport=strict_transport)  # type: ignore[arg-type]


async def test_a_signed_in_answer_gets_its_headers_once_replacing_the_apps_own() -> None:
    seen: list[object] = []
    own = [(b"cache-control", b"public"), (b"vary", b"Accept-Encoding"), (b"x-a", b"1")]
    start, _ = await call(
        edge(answering(own, seen), strict_transport=True),
        "http",
        [(b"authorization", b"Bearer x"), (b"x-request-id", b"abc-123")],
    )
    headers = start["headers"]
    assert sorted(headers) == sorted(
        [
            (b"x-a", b"1"),
            (b"vary", b"Accept-Encoding, Origin"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-store"),
            (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
            (b"x-request-id", b"abc-123"),
        ]
    )
    assert seen == [("abc-123", "abc-123")]
    assert CURRENT_REQUEST_ID.get() is None  # reset once the request is answered


async def test_an_unsafe_request_id_is_replaced_and_anonymous_answers_may_be_cached() -> None:
    seen: list[object] = []
    start, _ = await call(edge(answering([], seen)), "http", [(b"x-request-id", b"a b\n")])
    headers = dict(start["headers"])
    assert re.fullmatch(rb"[0-9a-f]{32}", headers[b"x-request-id"])
    assert b"cache-control" not in headers
    assert seen == [(headers[b"x-request-id"].decode(),) * 2]


async def test_a_browsers_request_gets_cors_headers_for_an_allowed_origin() -> None:
    start, _ = await call(
        edge(answering([], [])), "http", [(b"origin", b"https://app.example.com")]
    )
    headers = dict(start["headers"])
    assert headers[b"access-control-allow-origin"] == b"https://app.example.com"
    assert headers[b"x-content-type-options"] == b"nosniff"


async def test_a_websocket_gets_a_request_id_and_nothing_else() -> None:
    seen: list[object] = []
    sent = await call(edge(answering([], seen)), "websocket", [])
    assert sent == []
    assert len(seen) == 1
