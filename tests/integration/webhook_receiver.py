"""A real HTTP receiver for webhook tests: uvicorn in a thread on 127.0.0.1, recording requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers 500 to the first `failures` requests (all when negative), 200 after."""

    failures: int = 0
    delay_seconds: float = 0.0
    requests: list[ReceivedRequest] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.requests.append(ReceivedRequest(scope["path"], headers, body))
        failing = self.failures < 0 or len(self.requests) <= self.failures
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        status = 500 if failing else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"nope" if failing else b"ok"})


@contextmanager
def running(receiver: Receiver) -> Iterator[Receiver]:
    config = uvicorn.Config(receiver, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/assay"
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=5)
