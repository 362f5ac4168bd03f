"""GET /models: the model monitoring page, served from the package (no CDN). It reads only
the GraphQL API; in development it opens signed in as a demo administrator (statistics are
for administrators), as GraphiQL opens signed in as the demo user."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from graph.transport.graphiql import is_own_host

PAGE_PATH = "/models"
ASSETS_PATH = "/models-assets"
ASSETS_DIR = Path(__file__).parent / "static" / "models"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Assay models</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{assets}/models.css">
  </head>
  <body>
    <header>
      <strong>Assay model monitoring</strong> <span>the last hour</span>
      <a href="{endpoint}">GraphiQL</a>
      <form id="token-form"><input id="token" placeholder="an administrator's token"
        autocomplete="off"><button>Sign in</button></form>
    </header>
    <main id="models"></main>
    <script type="application/json" id="assay-models-config">{config}</script>
    <script src="{assets}/models.js"></script>
  </body>
</html>
"""


def models_page(endpoint: str, bearer: str | None) -> str:
    config = json.dumps({"endpoint": endpoint, "bearer": bearer}).replace("<", "\\u003c")
    return _PAGE.format(assets=ASSETS_PATH, endpoint=endpoint, config=config)


def models_page_routes(
    *, enabled: bool, token: Callable[[], str] | None, public_host: str | None
) -> list[BaseRoute]:
    """The page and its two assets; none when GraphiQL is off (ASSAY_GRAPHIQL)."""
    if not enabled:
        return []

    async def page(request: Request) -> Response:
        # A token only under the server's own name, as GraphiQL (DNS rebinding).
        is_own = is_own_host(request.headers.get("host"), public_host)
        bearer = token() if token is not None and is_own else None
        return HTMLResponse(
            models_page("/graphql", bearer),
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )

    files = StaticFiles(directory=ASSETS_DIR, check_dir=False)
    return [Route(PAGE_PATH, page), Mount(ASSETS_PATH, app=files, name="models-assets")]
