"""W4: many graphql-transport-ws subscribers of one user; latency from commit to receipt."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench.load import percentile
from bench.procs import HOST
from bench.workloads import W4_SUBSCRIPTION

CONNECT_TIMEOUT = 30.0
PROTOCOL = Subprotocol("graphql-transport-ws")


@dataclass(frozen=True)
class FanoutResult:
    subscribers: int
    events: int
    messages: int
    missing: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_seconds: float
    wall_seconds: float


class _Inbox:
    """Receipt times (epoch seconds) of each submission id, over every subscriber."""

    def __init__(self) -> None:
        self.received: dict[str, list[float]] = defaultdict(list)
        self.changed = asyncio.Event()

    def add(self, submission_id: str, at: float) -> None:
        self.received[submission_id].append(at)
        self.changed.set()


async def _handshake(ws: ClientConnection, token: str) -> None:
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await ws.send(orjson.dumps(init).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), CONNECT_TIMEOUT))
    if reply.get("type") != "connection_ack":
        raise RuntimeError(f"no connection_ack: {reply}")
    subscribe = {"id": "1", "type": "subscribe", "payload": {"query": W4_SUBSCRIPTION}}
    await ws.send(orjson.dumps(subscribe).decode())


async def _subscriber(
    port: int, token: str, inbox: _Inbox, ready: asyncio.Queue[None], stop: asyncio.Event
) -> None:
    url = f"ws://{HOST}:{port}/graphql"
    async with connect(
        url, subprotocols=[PROTOCOL], open_timeout=CONNECT_TIMEOUT, max_size=2**20
    ) as ws:
        await _handshake(ws, token)
        ready.put_nowait(None)
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            at = time.time()
            message = orjson.loads(raw)
            kind = message.get("type")
            if kind == "next":
                data = message["payload"].get("data") or {}
                node = data.get("submissionUpdated") or {}
                inbox.add(str(node.get("id")), at)
            elif kind == "ping":
                await ws.send('{"type":"pong"}')
            elif kind in {"error", "complete"}:
                raise RuntimeError(f"subscription ended: {message}")


Create = Callable[[], Awaitable[tuple[str, datetime]]]


async def _wait_all(inbox: _Inbox, submission_id: str, count: int) -> None:
    while len(inbox.received.get(submission_id, ())) < count:
        inbox.changed.clear()
        await inbox.changed.wait()


async def fanout(
    port: int,
    token: str,
    create: Create,
    subscribers: int,
    events: int,
    subscribed: Callable[[], Awaitable[int]],
    event_timeout: float = 10.0,
) -> FanoutResult:
    """Open the subscribers, wait until the server holds them all, then create `events` one at
    a time, each after every subscriber saw the previous one (or `event_timeout` passed)."""
    inbox, stop = _Inbox(), asyncio.Event()
    ready: asyncio.Queue[None] = asyncio.Queue()
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    tasks = [
        asyncio.create_task(_subscriber(port, token, inbox, ready, stop))
        for _ in range(subscribers)
    ]
    try:
        deadline = time.monotonic() + 60
        while ready.qsize() < subscribers or await subscribed() < subscribers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ready.qsize()} of {subscribers} subscribers started")
            if failed := [t for t in tasks if t.done()]:
                failed[0].result()
            await asyncio.sleep(0.1)
        latencies: list[float] = []
        missing = 0
        for _ in range(events):
            submission_id, created_at = await create()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(event_timeout):
                    await _wait_all(inbox, submission_id, subscribers)
            times = inbox.received.get(submission_id, [])
            missing += subscribers - len(times)
            latencies.extend(t - created_at.timestamp() for t in times)
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=10)
        for task in pending:
            task.cancel()
    latencies.sort()
    return FanoutResult(
        subscribers=subscribers,
        events=events,
        messages=len(latencies),
        missing=missing,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
        client_cpu_seconds=time.process_time() - cpu_before,
        wall_seconds=time.perf_counter() - wall_before,
    )
