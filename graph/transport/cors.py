"""Which web origins may call the API from a browser: CORS for HTTP, Origin for WebSocket
(checked in AssayGraphQL.is_websocket_origin_allowed against the same policy)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from graph.execution.query_protection import COST_HEADER
from graph.transport.http_errors import error_response

# Development's default: a web app on the developer's own machine, whatever its port.
LOCAL_ORIGINS = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"
# What browser clients send beyond the CORS-safelisted headers: the token, the request id
# they want logged, the cost report and the client names Apollo's persisted-query links add.
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-Request-ID",
    COST_HEADER,
    "apollographql-client-name",
    "apollographql-client-version",
)
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy")
PREFLIGHT_MAX_AGE_SECONDS = 600
# The local blob store's upload and download URLs answer a browser as the production
# bucket's CORS rule does (infra/assay_infra/storage.py): development and production alike.
BLOB_METHODS = ("PUT", "GET", "HEAD")
BLOB_HEADERS = ("Content-Type", "Content-Length", "If-None-Match")
BLOB_EXPOSED_HEADERS = ("ETag", "X-Request-ID")
BLOB_PREFLIGHT_MAX_AGE_SECONDS = 3000


@dataclass(frozen=True)
class CorsPolicy:
    origins: tuple[str, ...] = ()  # exact origins, or ("*",)
    origin_regex: str | None = None

    @classmethod
    def from_setting(cls, text: str, *, local_by_default: bool) -> CorsPolicy:
        origins = tuple(parse_origins(text))
        if not origins and local_by_default:
            return cls(origin_regex=LOCAL_ORIGINS)
        return cls(origins=origins)

    def allows(self, origin: str) -> bool:
        if "*" in self.origins or origin in self.origins:
            return True
        return self.origin_regex is not None and re.fullmatch(self.origin_regex, origin) is not None

    def middleware(self) -> Middleware:
        """Starlette's CORSMiddleware for this policy (preflights, and headers on answers)."""
        return Middleware(
            ShapedCORSMiddleware,
            allow_origins=list(self.origins),
            allow_origin_regex=self.origin_regex,
            allow_methods=["GET", "POST"],
            allow_headers=list(ALLOWED_HEADERS),
            expose_headers=list(EXPOSED_HEADERS),
            # Tokens travel in Authorization, never in cookies: no credentials mode.
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    def blob_middleware(self) -> Middleware:
        """The same origins, with the production bucket's methods and headers: a browser PUTs
        an upload (signed in its URL, so no Authorization) and reads a download's ETag."""
        return Middleware(
            ShapedCORSMiddleware,
            allow_origins=list(self.origins),
            allow_origin_regex=self.origin_regex,
            allow_methods=list(BLOB_METHODS),
            allow_headers=list(BLOB_HEADERS),
            expose_headers=list(BLOB_EXPOSED_HEADERS),
            allow_credentials=False,
            max_age=BLOB_PREFLIGHT_MAX_AGE_SECONDS,
        )


class ShapedCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, but a refused preflight (another origin, method or header) answers
    in the contract's error shape, not Starlette's plain text."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code >= 400:
                    kept = {
                        name: value
                        for name, value in response.headers.items()
                        if name not in {"content-type", "content-length"}
                    }
                    reason = bytes(response.body).decode("utf-8", "replace")
                    message = f"CORS preflight refused: {reason}"
                    response = error_response(scope, response.status_code, message, headers=kept)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def parse_origins(text: str) -> Sequence[str]:
    """The origins of ASSAY_CORS_ORIGINS; each must be scheme://host[:port] or `*`."""
    origins = [o.strip().rstrip("/") for o in text.split(",") if o.strip()]
    for origin in origins:
        parts = urlsplit(origin)
        exact = parts.scheme in {"http", "https"} and parts.netloc and not parts.path
        if origin != "*" and not (exact and not parts.query and not parts.fragment):
            raise ValueError(f"{origin!r} is no origin: expected scheme://host[:port] or *")
    return origins
