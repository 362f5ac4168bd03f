"""The GraphiQL page and its assets, built by graphiql/ and served from the package, no CDN."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

ASSETS_PATH = "/graphiql"
ASSETS_DIR = Path(__file__).parent / "static" / "graphiql"
HEADERS_TEMPLATE = '{\n  "Authorization": "Bearer <paste a token from assay token>"\n}'

# The operations of README's "Using the API", one saved tab each, named for the tab's title.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("query Viewer { viewer { id email name groups } }", ""),
    ("query Models { models { id name version inputSchema } }", ""),
    (
        """mutation Run($model: ID!) {
  runInference(input: {
    modelId: $model
    input: {sepal_length_cm: 5.1, sepal_width_cm: 3.5, petal_length_cm: 1.4, petal_width_cm: 0.2}
  }) {
    submission { id status attempts }
    result { prediction confidence alternatives { value confidence } processingTimeMs }
  }
}""",
        '{"model": "<an id from models>"}',
    ),
    (
        """mutation Queue($model: ID!) {
  createSubmission(input: {modelId: $model, input: {sepal_length_cm: 6, sepal_width_cm: 3,
    petal_length_cm: 5, petal_width_cm: 2}, idempotencyKey: "order-42"}) {
    submission { id status }
  }
}""",
        '{"model": "<an id from models>"}',
    ),
    (
        """query Submissions {
  submissions(first: 20, status: SUCCEEDED) {
    edges { cursor node { id status latestResult { prediction } } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}""",
        "",
    ),
    (
        """mutation RequestUpload {
  requestAssetUpload(input: {fileName: "scan.png", contentType: "image/png", sizeBytes: 52311}) {
    asset { id }
    uploadUrl
    uploadHeaders
    expiresAt
  }
}""",
        "",
    ),
    ("subscription SubmissionUpdates { submissionUpdated { id status } }", ""),
)

_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Assay GraphiQL</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{assets}/graphiql.css">
    <style>{style}</style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL...</div>
    <a id="assay-models-link" href="/models">Model monitoring</a>
    <script type="application/json" id="assay-graphiql-config">{config}</script>
    <script src="{assets}/graphiql.js"></script>
  </body>
</html>
"""


_STYLE = (
    "body { margin: 0; } #graphiql { height: 100vh; } #assay-models-link { position: fixed; "
    "right: 14px; bottom: 6px; z-index: 10; font: 12px sans-serif; }"
)
_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# Only the page's own assets: the bundle, its stylesheet, the one inline style (by hash) and
# the API itself over HTTP and WebSocket ('self' covers ws: of the same host in CSP 3).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'self' '{_STYLE_HASH}'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


def graphiql_page(endpoint: str = "/graphql", bearer: str | None = None) -> str:
    """The HTML of the IDE for the GraphQL endpoint at `endpoint` (HTTP and WebSocket).

    `bearer`: a token to put in the headers pane (development's demo user), else a template
    saying where to get one."""
    headers = HEADERS_TEMPLATE
    if bearer is not None:
        headers = json.dumps({"Authorization": f"Bearer {bearer}"}, indent=2)
    tabs = [
        {"query": query, "variables": variables, "headers": headers}
        for query, variables in EXAMPLES
    ]
    config = {"endpoint": endpoint, "headers": headers, "tabs": tabs}
    # "<" escaped so no string in the JSON can close the script element.
    encoded = json.dumps(config).replace("<", "\\u003c")
    return _PAGE.format(assets=ASSETS_PATH, config=encoded, style=_STYLE)


# Names a browser on the developer's machine uses for this server; with the configured
# public host, the only Host values for which GraphiQL's page carries the demo token.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(url_or_host: str) -> str | None:
    """The host name of a URL or of a Host header (port and IPv6 brackets removed)."""
    text = url_or_host if "//" in url_or_host else f"//{url_or_host}"
    try:
        return urlsplit(text).hostname  # lowercased
    except ValueError:
        return None


def is_own_host(host_header: str | None, public_host: str | None) -> bool:
    """Whether a request's Host names this server: a page on a rebinding domain (another
    name that resolves to this server) must not receive a token."""
    name = host_name(host_header or "")
    return name is not None and (name in LOCAL_HOSTS or name == public_host)


def graphiql_routes(*, enabled: bool) -> list[BaseRoute]:
    """The built bundle at /graphiql/... (1.3 MB of JavaScript, compressed on the way out
    like every answer: graph/transport/compression.py)."""
    if not enabled:
        return []
    files = StaticFiles(directory=ASSETS_DIR, check_dir=False)
    return [Mount(ASSETS_PATH, app=files, name="graphiql")]


def graphiql_response(request: Request, bearer: str | None = None) -> HTMLResponse:
    """The IDE for the endpoint that was asked for it (GET /graphql with Accept: text/html)."""
    return HTMLResponse(
        graphiql_page(request.url.path, bearer),
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
