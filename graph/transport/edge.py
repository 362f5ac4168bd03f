"""What every HTTP answer carries, added in one pure-ASGI layer: the request id, the security
headers and CORS.

One layer instead of three: the request headers are read once, the headers an answer gets
are computed once per kind of request (signed in or not), and the response start is
rewritten once. Three layers each wrapped `send`, parsed the request headers and rebuilt the
response headers (about 5% of a point lookup's CPU, measured with py-spy). Browsers' requests
(those with an Origin) keep Starlette's CORSMiddleware for preflights and CORS headers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from contextvars import ContextVar

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.transport.security_headers import security_headers

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = REQUEST_ID_HEADER.encode()
# The request being served, for log lines written anywhere below it (server/logging.py).
CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("assay_request_id", default=None)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_VARY = b"vary"
Header = tuple[bytes, bytes]


def new_request_id() -> str:
    """32 random hex digits, as uuid4().hex gave, without building a UUID."""
    return os.urandom(16).hex()


class Edge:
    """Honour a well-formed X-Request-ID or make one, expose it to handlers and echo it back;
    add the security headers (graph/transport/security_headers.py); apply the CORS policy."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cors: Middleware,
        strict_transport: bool,
        blob_cors: Middleware | None = None,
        blob_path_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.cors = cors.cls(app, *cors.args, **cors.kwargs)
        # The local blob store's URLs: CORS as the production bucket answers it.
        self.blob_cors = self.cors
        if blob_cors is not None:
            self.blob_cors = blob_cors.cls(app, *blob_cors.args, **blob_cors.kwargs)
        self.blob_path_prefix = blob_path_prefix
        self._headers = {
            signed_in: security_headers(
                is_authenticated=signed_in, strict_transport=strict_transport
            )
            for signed_in in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        incoming, signed_in, origin = _read(scope["headers"])
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = CURRENT_REQUEST_ID.set(request_id)
        try:
            if kind == "websocket":  # nothing to add to a handshake
                await self.app(scope, receive, send)
                return
            ours = [*self._headers[signed_in], (_REQUEST_ID, request_id.encode())]
            if origin:  # a browser's: Starlette's CORS answers preflights and adds its headers
                cors = self.cors
                if self.blob_path_prefix and scope["path"].startswith(self.blob_path_prefix):
                    cors = self.blob_cors
                await cors(scope, receive, _adding(send, ours, vary=False))
            else:  # CORS adds only Vary: Origin here (a cache must not serve it to a browser)
                await self.app(scope, receive, _adding(send, ours, vary=True))
        finally:
            CURRENT_REQUEST_ID.reset(token)


def _read(headers: Iterable[Sequence[bytes]]) -> tuple[str, bool, bool]:
    """The X-Request-ID sent (the last one), whether an Authorization header and an Origin
    header came."""
    incoming, signed_in, origin = b"", False, False
    for name, value in headers:
        if name == _REQUEST_ID:
            incoming = value
        elif name == b"authorization":
            signed_in = True
        elif name == b"origin":
            origin = True
    return incoming.decode("latin-1"), signed_in, origin


def _adding(send: Send, ours: list[Header], *, vary: bool) -> Send:
    """`send` with `ours` on the response start: ours replace the answer's own headers of the
    same names (the request id is appended, as before); Vary gains Origin when `vary`."""
    replaced = {name for name, _ in ours if name != _REQUEST_ID}

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = _merged(message.get("headers", ()), ours, replaced, vary)
        await send(message)

    return send_with_headers


def _merged(
    raw: Iterable[Sequence[bytes]], ours: list[Header], replaced: set[bytes], vary: bool
) -> list[Header]:
    headers: list[Header] = []
    varies: list[bytes] = []
    for name, value in raw:
        if name in replaced:
            continue
        if vary and name == _VARY:
            varies.append(value)
        else:
            headers.append((name, value))
    if vary:
        headers.append((_VARY, b", ".join([*varies, b"Origin"])))
    headers.extend(ours)
    return headers
