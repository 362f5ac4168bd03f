"""GraphiQL in Debian's Chromium against a real server: offline assets, a query, a subscription."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import AssayProcess, Launcher, agql, model_id, token, truncate_all

try:
    from playwright.async_api import (
        Browser,
        ConsoleMessage,
        Page,
        Request,
        Route,
        async_playwright,
    )
    from playwright.async_api import TimeoutError as PlaywrightTimeout
except ImportError:  # not in the test extra yet
    pytest.skip("playwright is not installed: pip install playwright", allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is absent: `apt-get install -y chromium` to run the GraphiQL tests",
        allow_module_level=True,
    )

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"
CREATE = """mutation($m: ID!) {
  createSubmission(input: {modelId: $m, input: {sepal_length_cm: 6, sepal_width_cm: 3,
    petal_length_cm: 5, petal_width_cm: 2}}) { submission { id } } }"""
SAVED_TABS = 7  # README's example operations
UI_TIMEOUT_MS = 15_000
HEADERS_PANE = ".graphiql-editor-tool .graphiql-editor:not(.hidden)"


@dataclass
class Api:
    server: AssayProcess
    token: str
    iris: str


@pytest.fixture(scope="module")
async def api(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> Api:
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("graphiql")
    server = module_launcher.serve(
        "--no-workers",  # only the mutations' own events reach the subscription
        data_dir=data_dir,
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models)},
        healthy=False,
    )
    bearer = token(data_dir, "ada@example.com", name="Ada", public_url=server.base_url)
    server.wait_healthy()
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


@dataclass
class Traffic:
    """Every URL the page asked for; any host but 127.0.0.1 is refused, and remembered."""

    urls: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def foreign(self) -> list[str]:
        return [url for url in self.urls if urlsplit(url).hostname != LOCAL_HOST]


def record_csp_violation(message: ConsoleMessage, traffic: Traffic) -> None:
    """The page's Content-Security-Policy must let GraphiQL's own assets do all they do."""
    if "Content Security Policy" in message.text:
        traffic.errors.append(message.text)


@pytest.fixture
async def graphiql(browser: Browser, api: Api) -> AsyncIterator[tuple[Page, Traffic]]:
    context = await browser.new_context()
    traffic = Traffic()

    async def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            await route.continue_()
        else:
            await route.abort()

    def record(request: Request) -> None:
        traffic.urls.append(request.url)

    await context.route("**/*", local_only)
    page = await context.new_page()
    page.on("request", record)
    page.on("websocket", lambda ws: traffic.urls.append(ws.url))
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    page.on("console", lambda message: record_csp_violation(message, traffic))
    try:
        response = await page.goto(f"{api.server.base_url}/graphql")
        assert response is not None
        assert response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        await page.locator(".graphiql-query-editor .CodeMirror").wait_for(timeout=UI_TIMEOUT_MS)
        yield page, traffic
    finally:
        await context.close()
    assert not traffic.foreign, f"the page reached beyond {LOCAL_HOST}: {traffic.foreign}"
    assert not traffic.errors, f"errors on the page: {traffic.errors}"


async def replace_text(page: Page, editor: str, text: str) -> None:
    """Select all in a CodeMirror editor and type `text` over it, as a user pasting would."""
    await page.locator(f"{editor} .CodeMirror").click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)


async def set_headers(page: Page, bearer: str) -> None:
    opened_with = await editor_text(page, HEADERS_PANE)
    assert '"Authorization": "Bearer ' in opened_with  # development's demo user
    await replace_text(page, HEADERS_PANE, json.dumps({"Authorization": f"Bearer {bearer}"}))


async def editor_text(page: Page, editor: str) -> str:
    text: str = await page.locator(f"{editor} .CodeMirror").evaluate(
        "element => element.CodeMirror.getValue()"
    )
    return text


async def result_containing(page: Page, text: str, timeout_ms: int = UI_TIMEOUT_MS) -> str:
    """The result pane's text once it shows `text`; PlaywrightTimeout with the panes if not."""
    try:
        await page.wait_for_function(
            """text => {
                const result = document.querySelector(".result-window .CodeMirror");
                return result !== null && result.CodeMirror.getValue().includes(text);
            }""",
            arg=text,
            timeout=timeout_ms,
        )
    except PlaywrightTimeout as timeout:
        panes = {
            name: await editor_text(page, selector)
            for name, selector in [
                ("query", ".graphiql-query-editor"),
                ("headers", HEADERS_PANE),
                ("result", ".result-window"),
            ]
        }
        raise PlaywrightTimeout(f"{text!r} not in the result; panes: {panes}") from timeout
    return await editor_text(page, ".result-window")


async def test_assets_are_served_by_the_server_itself(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.server.base_url, timeout=10) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        script = await client.get("/graphiql/graphiql.js", headers={"Accept-Encoding": "gzip"})
        style = await client.get("/graphiql/graphiql.css")
    assert page.status_code == 200
    assert "/graphiql/graphiql.js" in page.text
    assert "unpkg.com" not in page.text
    assert script.status_code == 200
    assert script.headers["content-encoding"] == "gzip"
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


async def test_a_query_with_the_bearer_in_the_headers_pane_answers(
    graphiql: tuple[Page, Traffic], api: Api
) -> None:
    page, traffic = graphiql
    assert await page.locator(".graphiql-tab").count() == SAVED_TABS
    # A new tab: the saved one's operation name would linger for a moment after the edit.
    await page.locator(".graphiql-tab-add").click()
    await page.locator(".graphiql-tab").nth(SAVED_TABS).wait_for(timeout=UI_TIMEOUT_MS)
    await set_headers(page, api.token)
    await replace_text(page, ".graphiql-query-editor", "{ viewer { email } }")
    await page.locator(".graphiql-execute-button").click()

    result = json.loads(await result_containing(page, "ada@example.com"))
    assert result == {"data": {"viewer": {"email": "ada@example.com"}}}
    assert any(url.endswith("/graphiql/graphiql.js") for url in traffic.urls)


async def test_graphiql_opens_signed_in_as_a_demo_user(graphiql: tuple[Page, Traffic]) -> None:
    page, _ = graphiql
    assert "Bearer ey" in await editor_text(page, HEADERS_PANE)
    query = await editor_text(page, ".graphiql-query-editor")
    assert "viewer" in query  # the first saved tab, as the page opens
    await page.locator(".graphiql-execute-button").click()
    result = json.loads(await result_containing(page, "demo@example.com"))
    assert result["data"]["viewer"]["email"] == "demo@example.com"


async def test_a_subscription_shows_an_event_from_a_mutation_made_elsewhere(
    graphiql: tuple[Page, Traffic], api: Api
) -> None:
    page, traffic = graphiql
    await page.locator(".graphiql-tab").last.locator(".graphiql-tab-button").click()
    query = await editor_text(page, ".graphiql-query-editor")
    assert "submissionUpdated" in query
    await set_headers(page, api.token)
    await page.locator(".graphiql-execute-button").click()

    # The subscription starts once graphql-ws is connected; until then a mutation is unseen.
    created: list[str] = []
    for _ in range(10):
        data = await agql(api.server.base_url, CREATE, {"m": api.iris}, api.token)
        created.append(data["createSubmission"]["submission"]["id"])
        try:
            result = await result_containing(page, created[-1], timeout_ms=1_500)
            break
        except PlaywrightTimeout:
            continue
    else:
        pytest.fail(f"no event on the page for {created}")

    event = json.loads(result)["data"]["submissionUpdated"]
    assert event == {"id": created[-1], "status": "PENDING"}
    assert any(url.startswith(f"ws://{LOCAL_HOST}:") for url in traffic.urls)
