"""W5's result subscriber and W7's idle sockets: what long-lived WebSockets cost and carry."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from bench.procs import HOST

PROTOCOL = Subprotocol("graphql-transport-ws")
RESULTS = "subscription { resultCreated { id prediction } }"
OPEN_TIMEOUT = 60.0


async def _initialised(port: int, token: str) -> ClientConnection:
    ws = await connect(
        f"ws://{HOST}:{port}/graphql", subprotocols=[PROTOCOL], open_timeout=OPEN_TIMEOUT
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await ws.send(orjson.dumps(init).decode())
    reply = orjson.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT))
    if reply.get("type") != "connection_ack":
        raise RuntimeError(f"no connection_ack: {reply}")
    return ws


@dataclass
class ResultReader:
    """One prompt `resultCreated` reader on its own thread and event loop."""

    port: int
    token: str
    received: int = 0
    close_code: int | None = None
    subscribed: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ResultReader:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._read()), daemon=True)
        self._thread.start()
        if not self.subscribed.wait(OPEN_TIMEOUT):
            raise RuntimeError("the result subscriber did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _read(self) -> None:
        ws = await _initialised(self.port, self.token)
        subscribe = {"id": "r", "type": "subscribe", "payload": {"query": RESULTS}}
        await ws.send(orjson.dumps(subscribe).decode())
        await asyncio.sleep(0.5)  # the server registers the subscriber
        self.subscribed.set()
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    if message.get("type") == "next":
                        self.received += 1
        except ConnectionClosed as closed:
            self.close_code = closed.rcvd.code if closed.rcvd is not None else None
        finally:
            await ws.close()

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = threading.Event()
        waited = 0.0
        while self.received < count and self.close_code is None and waited < timeout:
            deadline.wait(0.1)
            waited += 0.1


async def open_idle(
    port: int, token: str, count: int, concurrency: int = 200
) -> list[ClientConnection]:
    """`count` signed-in sockets with no subscription, opened `concurrency` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> ClientConnection:
        async with gate:
            return await _initialised(port, token)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(sockets: list[ClientConnection]) -> None:
    for ws in sockets:
        with contextlib.suppress(Exception):
            await ws.close()
