"""The WebSocket adapter of the GraphQL view: JSON objects in, JSON text frames out.

strawberry sends the bytes of `encode_json` (orjson) as binary frames, which the
GraphQL-over-WebSocket protocols do not allow: the npm graphql-ws client, and so GraphiQL in a
browser, cannot read them. And it indexes every incoming message as an object, so valid JSON
that is not one (`[]`, `"x"`, `null`) raised a TypeError that dropped the connection (1006)
instead of closing it with 4400 as the protocol says.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, WebSocketDisconnected


class JsonTextWebSocketAdapter(ASGIWebSocketAdapter):
    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        async for message in super().iter_json(ignore_parsing_errors=ignore_parsing_errors):
            if isinstance(message, dict):
                yield message
            elif not ignore_parsing_errors:
                raise NonJsonMessageReceived

    async def send_json(self, message: Mapping[str, object]) -> None:
        encoded = self.view.encode_json(message)
        text = encoded.decode() if isinstance(encoded, bytes) else encoded
        try:
            await self.ws.send_text(text)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc
