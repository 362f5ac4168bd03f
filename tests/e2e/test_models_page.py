"""GET /models in Debian's Chromium against a real server with traffic and a drifted input
stream: the charts are drawn from the GraphQL API and the DRIFT badge shows; a screenshot
goes to the test's temporary directory, never into the repository."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import AssayProcess, Launcher, agql, model_id, token, truncate_all, wait_for
from tests.e2e.test_graphiql import CHROMIUM, CHROMIUM_ARGS, LOCAL_HOST, Traffic

if TYPE_CHECKING:
    from playwright.async_api import Browser, Route

async_api = pytest.importorskip("playwright.async_api", reason="pip install playwright")
pytestmark = pytest.mark.e2e

BATCH = """mutation($m: ID!, $inputs: [JSON!]!) {
  batchInference(input: {modelId: $m, inputs: $inputs}) { submissions { id } } }"""
# Unfinished: PENDING, or RUNNING (a batch an idle worker claimed at accept is stored so).
DONE = """query { pending: submissions(first: 1, status: PENDING) { totalCount }
  running: submissions(first: 1, status: RUNNING) { totalCount } }"""
DRIFTED = 300  # iris with petals far longer than any in its training data
UI_TIMEOUT_MS = 20_000


def _drifted(rng: random.Random) -> dict[str, float]:
    return {
        "sepal_length_cm": round(rng.uniform(5, 7), 1),
        "sepal_width_cm": round(rng.uniform(2.5, 3.5), 1),
        "petal_length_cm": round(rng.uniform(8, 12), 1),
        "petal_width_cm": round(rng.uniform(2, 4), 1),
    }


@pytest.fixture(scope="module")
async def server(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> AssayProcess:
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("models-page")
    launched = module_launcher.serve(
        data_dir=data_dir,
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models)},
        healthy=False,
    )
    bearer = token(data_dir, "ada@example.com", name="Ada", public_url=launched.base_url)
    launched.wait_healthy()
    iris = model_id(launched.base_url, bearer)
    rng = random.Random(3)
    inputs = [_drifted(rng) for _ in range(DRIFTED)]
    await agql(launched.base_url, BATCH, {"m": iris, "inputs": inputs}, bearer)

    async def worked_off() -> bool:
        data = await agql(launched.base_url, DONE, None, bearer)
        return bool(data["pending"]["totalCount"] == data["running"]["totalCount"] == 0)

    await wait_for(worked_off, 60)
    return launched


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_page_charts_each_model_and_shows_the_drift(
    server: AssayProcess, browser: Browser, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        page_html = await client.get("/models")
    assert page_html.status_code == 200
    assert "script-src 'self'" in page_html.headers["content-security-policy"]

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    traffic = Traffic()

    async def local_only(route: Route) -> None:
        if route.request.url.startswith(f"http://{LOCAL_HOST}"):
            await route.continue_()
        else:
            await route.abort()

    await context.route("**/*", local_only)
    page = await context.new_page()
    page.on("request", lambda request: traffic.urls.append(request.url))
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    try:
        await page.goto(f"{server.base_url}/models")
        await page.wait_for_selector("body[data-loaded]", timeout=UI_TIMEOUT_MS)
        assert await page.get_attribute("body", "data-loaded") == "true", await page.inner_text(
            "main"
        )
        iris = page.locator('section[data-model="iris-species"]')
        await iris.locator('[data-drift="DRIFT"]').wait_for(timeout=UI_TIMEOUT_MS)
        for chart in ("latency", "throughput", "predictions", "drift-petal_length_cm"):
            assert await iris.locator(f'svg[data-chart="{chart}"]').count() == 1, chart
        assert await iris.locator('svg[data-chart="latency"] polyline').count() == 3
        assert await iris.locator('svg[data-chart="drift-petal_length_cm"] rect').count() > 0
        await page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
    finally:
        await context.close()
    paths = {url.split("?")[0].removeprefix(server.base_url) for url in traffic.urls}
    assert paths == {"/models", "/models-assets/models.css", "/models-assets/models.js", "/graphql"}
    assert not traffic.errors, traffic.errors
    assert (tmp_path / "models.png").stat().st_size > 10_000
