"""Refuse request bodies over a size limit with 413 (BAD_REQUEST), counting bytes as read."""

from __future__ import annotations

from collections.abc import Collection

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.transport.http_errors import error_response


class BodyTooLarge(Exception):
    """Raised from receive() mid-body; handlers below must let it through to this middleware."""


class RequestBodyLimit:
    """A body over `max_bytes` on one of `paths` gets 413 (Content-Length is not trusted alone)."""

    def __init__(self, app: ASGIApp, max_bytes: int, paths: Collection[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = frozenset(paths)

    def _too_large(self, scope: Scope) -> Response:
        message = f"Request body too large: the limit is {self.max_bytes} bytes"
        return error_response(scope, 413, message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope)(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                raise
            await self._too_large(scope)(scope, receive, send)
