"""PostgreSQL stopped and started again under a live `assay serve`.

While it is down every request answers UNAVAILABLE (503, Retry-After) within 2 s and
/readyz names the database; once it is back the same process answers within 5 s, and a
subscription opened before the outage still delivers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from persistence.embedded import EmbeddedPostgres
from tests.e2e.conftest import AssayProcess, Launcher, agql, model_id, token

pytestmark = pytest.mark.e2e

PROTOCOL = Subprotocol("graphql-transport-ws")
VIEWER = {"query": "{ viewer { name } }"}
IRIS = {
    "sepal_length_cm": 6.0,
    "sepal_width_cm": 3.0,
    "petal_length_cm": 5.0,
    "petal_width_cm": 2.0,
}
CREATE = """mutation($m: ID!, $i: JSON!) {
  createSubmission(input: {modelId: $m, input: $i}) { submission { id } } }"""


@pytest.fixture
def database(launcher: Launcher) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own, which the test stops and starts."""
    embedded = EmbeddedPostgres(launcher.new_data_dir("database"))
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


def timed_post(base_url: str, bearer: str, path: str = "/graphql") -> tuple[httpx.Response, float]:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {bearer}"}
    if path == "/graphql":
        response = httpx.post(f"{base_url}{path}", json=VIEWER, headers=headers, timeout=10)
    else:
        response = httpx.get(f"{base_url}{path}", timeout=10)
    return response, time.monotonic() - started


def assert_unavailable(server: AssayProcess, response: httpx.Response, took: float) -> None:
    assert took < 2.0, f"took {took:.2f} s"
    assert response.status_code == 503, f"{response.text}\n{server.describe()}"
    assert response.headers["retry-after"].isdigit()
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


async def test_outage_answers_unavailable_and_the_same_process_recovers(
    launcher: Launcher, database: EmbeddedPostgres, shared_models: Path
) -> None:
    url = database.url()
    server: AssayProcess = launcher.serve(
        data_dir=launcher.new_data_dir(),
        database_url=url,
        env={"ASSAY_MODEL_DIR": str(shared_models)},
    )
    base = server.base_url
    ada = token(server.data_dir, "ada@example.com", name="Ada", public_url=base)
    iris = model_id(base, ada)
    ws_url = base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(ws_url, subprotocols=[PROTOCOL]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {ada}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        query = "subscription { submissionUpdated { id status } }"
        await ws.send(json.dumps({"id": "s", "type": "subscribe", "payload": {"query": query}}))
        await asyncio.sleep(0.5)

        database.stop()
        for _ in range(3):
            assert_unavailable(server, *await asyncio.to_thread(timed_post, base, ada))
        for protocol in (PROTOCOL, Subprotocol("graphql-ws")):
            assert await _init_closes_with(ws_url, protocol, ada) == 1013  # retry, not 4403
        ready, took = await asyncio.to_thread(timed_post, base, ada, "/readyz")
        assert took < 2.0
        assert ready.status_code == 503
        assert "database" in ready.json()["failures"]

        assert database.start() == url
        back = time.monotonic()
        while True:
            response, _ = await asyncio.to_thread(timed_post, base, ada)
            if response.status_code == 200:
                break
            assert time.monotonic() - back < 5.0, f"not back after 5 s: {response.text}"
            await asyncio.sleep(0.1)
        assert response.json() == {"data": {"viewer": {"name": "Ada"}}}
        assert server.poll() is None

        created = await agql(base, CREATE, {"m": iris, "i": IRIS}, ada)
        sid = created["createSubmission"]["submission"]["id"]
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 15))
            if message["type"] != "ping":
                break
        assert message["type"] == "next", message
        assert message["payload"]["data"]["submissionUpdated"]["id"] == sid


async def _init_closes_with(url: str, protocol: Subprotocol, bearer: str) -> int | None:
    """The close code of a new socket whose connection_init cannot be signed in."""
    async with websockets.connect(url, subprotocols=[protocol]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}
        await ws.send(json.dumps(init))
        try:
            while True:  # the legacy protocol says connection_error first
                await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
