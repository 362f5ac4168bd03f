"""A web app on another origin, in Debian's Chromium: it calls the API with a token and
subscribes over WebSocket; an origin not on ASSAY_CORS_ORIGINS can do neither."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import AssayProcess, Launcher, agql, model_id, token, truncate_all

try:
    from playwright.async_api import Browser, async_playwright
except ImportError:  # not in the test extra yet
    pytest.skip("playwright is not installed: pip install playwright", allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent: `apt-get install -y chromium`", allow_module_level=True)

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
CREATE = """mutation($m: ID!) {
  createSubmission(input: {modelId: $m, input: {sepal_length_cm: 6, sepal_width_cm: 3,
    petal_length_cm: 5, petal_width_cm: 2}}) { submission { id } } }"""
# The web app: a query with the token, then a subscription whose first message it keeps.
APP_JS = """
async ([api, bearer]) => {
  const out = {};
  try {
    const response = await fetch(api + '/graphql', {
      method: 'POST',
      headers: {'Authorization': 'Bearer ' + bearer, 'Content-Type': 'application/json',
                'X-Request-ID': 'browser-request-1'},
      body: JSON.stringify({query: '{ viewer { email } }'}),
    });
    out.status = response.status;
    out.body = await response.json();
    out.requestId = response.headers.get('X-Request-ID');
  } catch (error) {
    out.fetchError = String(error);
  }
  window.messages = [];
  window.socketState = 'connecting';
  const ws = new WebSocket(api.replace('http', 'ws') + '/graphql', 'graphql-transport-ws');
  ws.onopen = () => ws.send(JSON.stringify(
    {type: 'connection_init', payload: {Authorization: 'Bearer ' + bearer}}));
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'connection_ack') {
      ws.send(JSON.stringify({id: '1', type: 'subscribe',
        payload: {query: 'subscription { submissionUpdated { id status } }'}}));
      setTimeout(() => { window.socketState = 'subscribed'; }, 500);
    } else if (message.type === 'next') {
      window.messages.push(message.payload);
    }
  };
  ws.onclose = (event) => {
    window.closeCode = event.code;
    if (window.socketState !== 'subscribed') window.socketState = 'closed';
  };
  return out;
}
"""


@dataclass
class Api:
    server: AssayProcess
    token: str
    iris: str


def serve_page(root: Path) -> tuple[ThreadingHTTPServer, str]:
    """A static web server on its own port: the web app's origin."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two origins serving the same page: one the API allows, one it does not."""
    root = tmp_path_factory.mktemp("web-app")
    (root / "index.html").write_text("<!doctype html><title>web app</title><p>app</p>")
    allowed, allowed_origin = serve_page(root)
    other, other_origin = serve_page(root)
    try:
        yield allowed_origin, other_origin
    finally:
        allowed.shutdown()
        other.shutdown()


@pytest.fixture(scope="module")
async def api(
    module_launcher: Launcher,
    postgres_url: str,
    shared_models: Path,
    engine: AsyncEngine,
    pages: tuple[str, str],
) -> Api:
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("cors")
    server = module_launcher.serve(
        "--no-workers",
        data_dir=data_dir,
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models), "ASSAY_CORS_ORIGINS": pages[0]},
    )
    bearer = token(data_dir, "ada@example.com", name="Ada", public_url=server.base_url)
    return Api(server, bearer, model_id(server.base_url, bearer))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_app(browser: Browser, origin: str, api: Api) -> tuple[Any, dict[str, Any]]:
    page = await browser.new_page()
    await page.goto(f"{origin}/index.html")
    out: dict[str, Any] = await page.evaluate(APP_JS, [api.server.base_url, api.token])
    await page.wait_for_function("window.socketState !== 'connecting'", timeout=15_000)
    return page, out


async def test_a_web_app_on_an_allowed_origin_queries_and_subscribes(
    browser: Browser, api: Api, pages: tuple[str, str]
) -> None:
    page, out = await open_app(browser, pages[0], api)
    try:
        assert out.get("status") == 200, out
        assert out["body"] == {"data": {"viewer": {"email": "ada@example.com"}}}
        assert out["requestId"] == "browser-request-1"  # exposed to the page's script
        state = await page.evaluate("[window.socketState, window.closeCode]")
        assert state[0] == "subscribed", f"{state} {api.server.output()}"

        created = await agql(api.server.base_url, CREATE, {"m": api.iris}, api.token)
        sid = created["createSubmission"]["submission"]["id"]
        await page.wait_for_function("window.messages.length > 0", timeout=15_000)
        messages = await page.evaluate("window.messages")
        assert messages[0]["data"]["submissionUpdated"]["id"] == sid
    finally:
        await page.close()


async def test_a_web_app_on_another_origin_can_neither_query_nor_subscribe(
    browser: Browser, api: Api, pages: tuple[str, str]
) -> None:
    page, out = await open_app(browser, pages[1], api)
    try:
        assert "fetchError" in out, out  # the browser withholds the answer
        assert await page.evaluate("window.socketState") == "closed"
    finally:
        await page.close()
    await asyncio.sleep(0)


UPLOAD = """mutation { requestAssetUpload(input: {fileName: "note.txt", contentType: "text/plain",
  sizeBytes: 11}) { asset { id } uploadUrl uploadHeaders } }"""
COMPLETE = """mutation($id: ID!) { completeAssetUpload(id: $id) {
  asset { id status downloadUrl } } }"""
# The web app PUTs the bytes to the upload URL with the headers it was given (a browser sets
# Content-Length itself), then GETs the download URL and reads the ETag.
UPLOAD_JS = """
async ([url, headers]) => {
  const sent = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() !== 'content-length') sent[name] = value;
  }
  sent['If-None-Match'] = '*';
  try {
    const put = await fetch(url, {method: 'PUT', headers: sent, body: 'hello world'});
    return {status: put.status, etag: put.headers.get('ETag')};
  } catch (error) {
    return {fetchError: String(error)};
  }
}
"""
DOWNLOAD_JS = """
async (url) => {
  try {
    const got = await fetch(url);
    return {status: got.status, body: await got.text(), etag: got.headers.get('ETag')};
  } catch (error) {
    return {fetchError: String(error)};
  }
}
"""


async def test_a_web_app_uploads_and_downloads_through_the_local_blob_urls(
    browser: Browser, api: Api, pages: tuple[str, str]
) -> None:
    requested = (await agql(api.server.base_url, UPLOAD, token=api.token))["requestAssetUpload"]
    page = await browser.new_page()
    try:
        await page.goto(f"{pages[0]}/index.html")
        put = await page.evaluate(UPLOAD_JS, [requested["uploadUrl"], requested["uploadHeaders"]])
        assert put.get("status") in (200, 201), put
        assert put["etag"], "ETag is exposed to the page"
        done = await agql(
            api.server.base_url, COMPLETE, {"id": requested["asset"]["id"]}, api.token
        )
        asset = done["completeAssetUpload"]["asset"]
        assert asset["status"] == "AVAILABLE"
        got = await page.evaluate(DOWNLOAD_JS, asset["downloadUrl"])
        assert got == {"status": 200, "body": "hello world", "etag": got["etag"]}, got
        assert got["etag"]
    finally:
        await page.close()


async def test_another_origin_cannot_upload(
    browser: Browser, api: Api, pages: tuple[str, str]
) -> None:
    requested = (await agql(api.server.base_url, UPLOAD, token=api.token))["requestAssetUpload"]
    page = await browser.new_page()
    try:
        await page.goto(f"{pages[1]}/index.html")
        put = await page.evaluate(UPLOAD_JS, [requested["uploadUrl"], requested["uploadHeaders"]])
        assert "fetchError" in put, put  # the preflight refused it; nothing was sent
    finally:
        await page.close()
