"""Subscription memory comes back: after storms of heavy messages and closed sockets, no
DataLoader, entity, future or task that served them is still alive (counted with gc).

The server is the composition root's app under uvicorn, in this test's own process and event
loop, so gc sees everything the server holds; the clients are real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import websockets
from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.submissions import Result, Submission
from server.bootstrap import build_app
from server.settings import Settings
from tests.integration.bootstrapped import variant
from tests.integration.conftest import IRIS_INPUT, TokenFactory

pytestmark = pytest.mark.integration

HEAVY = """subscription { submissionUpdated { id status
  owner { submissions(first: 40) { edges { node { id status
    results { id prediction } assets { id } } } } } } }"""
BATCH = """mutation($model: ID!, $inputs: [JSON!]!) {
  batchInference(input: {modelId: $model, inputs: $inputs}) { batch { id } } }"""
STORM_INPUTS = 30
STORMS = 2
# Nothing a message read may stay: the event broker's memo of the last events' subjects is
# cleared once nobody listens.
KINDS = (DataLoader, Submission, Result)
# The server's own loops hold a settled future or two between their rounds; the leak this
# guards against kept about a thousand per storm.
SETTLED_SLACK = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive() -> Counter[str]:
    gc.collect()
    counts: Counter[str] = Counter()
    for thing in gc.get_objects():
        for kind in KINDS:
            if isinstance(thing, kind):
                counts[kind.__name__] += 1
        if not isinstance(thing, asyncio.Future):
            continue
        if thing.done():
            counts["settled futures and tasks"] += 1
        elif isinstance(thing, asyncio.Task):
            # By what they run: the server's own loops are there before; the sleeps between
            # their rounds come and go.
            name = getattr(thing.get_coro(), "__qualname__", "?")
            if name != "Event.wait":
                counts[f"task {name}"] = 1
    return counts


@contextlib.asynccontextmanager
async def _serving(settings: Settings, postgres_url: str) -> AsyncIterator[str]:
    app = build_app(variant(settings, run_workers=True, worker_poll_seconds=0.05), postgres_url)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only this flag
        await asyncio.sleep(0.02)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _post(address: str, token: str, query: str, variables: dict[str, Any]) -> Any:
    reader, writer = await asyncio.open_connection(*address.split(":"))
    body = json.dumps({"query": query, "variables": variables}).encode()
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: "
        + address.encode()
        + b"\r\nContent-Type: application/json\r\nAuthorization: Bearer "
        + token.encode()
        + b"\r\nConnection: close\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    response = await reader.read()
    writer.close()
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


async def _heavy_socket(address: str, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(
        f"ws://{address}/graphql", subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": token}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": HEAVY}}))
    return ws


async def _until_all_succeeded(ws: websockets.ClientConnection) -> int:
    """Reads one socket until every submission of the storm succeeded; the messages read."""
    succeeded = 0
    received = 0
    while succeeded < STORM_INPUTS:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        assert message["type"] == "next", message
        received += 1
        succeeded += message["payload"]["data"]["submissionUpdated"]["status"] == "SUCCEEDED"
    return received


async def _storm(address: str, token: str, model: str) -> int:
    """Two heavy subscriptions on one socket each, a batch until every submission succeeded
    on both; the number of messages the sockets received. Both are read to the end: a
    socket left unread holds its client's side of the close (10 s, then 1006)."""
    sockets = [await _heavy_socket(address, f"Bearer {token}") for _ in range(2)]
    sent = await _post(
        address, token, BATCH, {"model": model, "inputs": [IRIS_INPUT] * STORM_INPUTS}
    )
    assert "errors" not in sent, sent
    received = await asyncio.gather(*(_until_all_succeeded(ws) for ws in sockets))
    for ws in sockets:
        await ws.close()
    return min(received)


async def test_storms_of_heavy_subscription_messages_leave_nothing_alive(
    settings: Settings,
    postgres_url: str,
    db: AsyncEngine,
    token: TokenFactory,
    default_models: dict[str, str],
) -> None:
    bearer = token("storm@example.com")
    async with _serving(settings, postgres_url) as address:
        model = default_models["iris-species"]
        before = _alive()
        for _ in range(STORMS):
            assert await _storm(address, bearer, model) >= STORM_INPUTS
        await asyncio.sleep(1)  # the server notices the closes
        after = _alive()
    grown = {kind: after[kind] - before[kind] for kind in after if after[kind] > before[kind]}
    if grown.get("settled futures and tasks", 0) <= SETTLED_SLACK:
        grown.pop("settled futures and tasks", None)
    assert grown == {}, f"still alive after every socket closed: {grown} (before: {before})"
