"""W8: storms of heavy subscription messages; the server's RSS after each, all sockets closed.

The batches are run by an `assay worker` beside the server (the caller starts it). Each storm
opens two graphql-transport-ws sockets of one user, each subscribed to every
status of the user's submissions with a deep selection (the owner's last 80 submissions with
their results and assets), sends one batchInference, reads until every submission of the
batch has SUCCEEDED, and closes both sockets. Memory that a message's loaders or reads kept
would show as RSS growing storm after storm (issue 25: +117 MiB a storm before the fix).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.fanout import CONNECT_TIMEOUT, PROTOCOL
from bench.procs import HOST

HEAVY = """subscription W8 { submissionUpdated { id status
  owner { submissions(first: 80) { edges { node { id status
    results { id prediction confidence } assets { id fileName } } } } } } }"""
BATCH = """mutation W8Batch($model: ID!, $inputs: [JSON!]!) {
  batchInference(input: {modelId: $model, inputs: $inputs}) { batch { id } } }"""
IRIS = {
    "sepal_length_cm": 5.1,
    "sepal_width_cm": 3.5,
    "petal_length_cm": 1.4,
    "petal_width_cm": 0.2,
}
STORM_TIMEOUT = 300.0


@dataclass(frozen=True)
class StormResult:
    storms: int
    inputs: int
    messages: int
    rss_mib: tuple[float, ...]  # before the first storm, then after each


async def _heavy_socket(port: int, token: str) -> ClientConnection:
    ws = await connect(f"ws://{HOST}:{port}/graphql", subprotocols=[PROTOCOL], max_size=None)
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await ws.send(orjson.dumps(init).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT))
    if reply.get("type") != "connection_ack":
        raise RuntimeError(f"no connection_ack: {reply}")
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": HEAVY}}
    await ws.send(orjson.dumps(subscribe).decode())
    return ws


async def _read_until_succeeded(ws: ClientConnection, inputs: int) -> int:
    """Messages read until `inputs` SUCCEEDED statuses arrived."""
    succeeded = messages = 0
    while succeeded < inputs:
        message = orjson.loads(await ws.recv())
        if message.get("type") != "next":
            if message.get("type") == "ping":
                continue
            raise RuntimeError(f"storm subscription ended: {message}")
        messages += 1
        update = message["payload"]["data"]["submissionUpdated"]
        succeeded += update["status"] == "SUCCEEDED"
    return messages


async def _storm(port: int, token: str, model_id: str, inputs: int) -> int:
    sockets = [await _heavy_socket(port, token) for _ in range(2)]
    try:
        await asyncio.sleep(0.5)  # both subscribed before the batch's first event
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=60) as http:
            sent = await http.post(
                "/graphql",
                json={"query": BATCH, "variables": {"model": model_id, "inputs": [IRIS] * inputs}},
                headers={"Authorization": f"Bearer {token}"},
            )
            body = sent.json()
            if "errors" in body:
                raise RuntimeError(f"W8 batchInference refused: {body['errors']}")
        read = [_read_until_succeeded(ws, inputs) for ws in sockets]
        counts = await asyncio.wait_for(asyncio.gather(*read), STORM_TIMEOUT)
        return sum(counts)
    finally:
        for ws in sockets:
            await ws.close()


def storms(
    port: int,
    token: str,
    model_id: str,
    *,
    count: int,
    inputs: int,
    rss_mib: Callable[[], float],
    settle: Callable[[], None],
) -> StormResult:
    """Run `count` storms one after another; the server's RSS before and after each."""
    settle()
    sizes = [rss_mib()]
    messages = 0
    for _ in range(count):
        messages += asyncio.run(_storm(port, token, model_id, inputs))
        settle()  # the sockets' closes and the batch's last writes have landed
        sizes.append(rss_mib())
    return StormResult(count, inputs, messages, tuple(sizes))
