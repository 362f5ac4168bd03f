"""Connections that try to exhaust the server, against a real `assay serve` on 127.0.0.1:
sockets that never send connection_init, huge or slow headers, trickled bodies, and
X-Forwarded-For from an untrusted peer. Bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State
from websockets.typing import Subprotocol

from tests.e2e.conftest import AssayProcess, Launcher, token, truncate_all

pytestmark = pytest.mark.e2e

READ_TIMEOUT = 1.0
PER_ADDRESS = 20
SOCKETS = 2_000


@pytest.fixture(scope="module")
async def server(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> AssayProcess:
    await truncate_all(engine)
    return module_launcher.serve(
        "--no-workers",
        data_dir=module_launcher.new_data_dir("limits"),
        database_url=postgres_url,
        env={
            "ASSAY_MODEL_DIR": str(shared_models),
            "ASSAY_HTTP_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT),
            "ASSAY_MAX_UNAUTHENTICATED_WEBSOCKETS_PER_ADDRESS": str(PER_ADDRESS),
            "ASSAY_RATE_LIMIT_BURST": "5",
            "ASSAY_RATE_LIMIT_POINTS_PER_SECOND": "0.001",
        },
    )


async def _open(url: str, opened: list[ClientConnection]) -> bool:
    try:
        ws = await websockets.connect(
            url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10
        )
    # Refused at the handshake (a status, or closed before one: InvalidMessage), or cut off.
    except (websockets.InvalidHandshake, websockets.ConnectionClosed, OSError, TimeoutError):
        return False
    opened.append(ws)
    return True


async def _still_open(opened: list[ClientConnection]) -> list[ClientConnection]:
    """The sockets the server has not closed, once its closes have had time to arrive."""
    await asyncio.sleep(1.0)
    return [ws for ws in opened if ws.state is State.OPEN]


async def _slowest_healthz(base_url: str, stop: asyncio.Event) -> float:
    slowest = 0.0
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        while not stop.is_set():
            started = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return slowest


async def test_2000_sockets_without_init_from_one_address_are_refused_while_healthz_answers(
    server: AssayProcess,
) -> None:
    url = server.base_url.replace("http://", "ws://") + "/graphql"
    opened: list[ClientConnection] = []
    stop = asyncio.Event()
    health = asyncio.create_task(_slowest_healthz(server.base_url, stop))
    gate = asyncio.Semaphore(100)

    async def attempt() -> bool:
        async with gate:
            return await _open(url, opened)

    try:
        accepted = sum(await asyncio.gather(*(attempt() for _ in range(SOCKETS))))
        still_open = await _still_open(opened)
    finally:
        stop.set()
        slowest = await health
        for ws in opened:
            with contextlib.suppress(Exception):
                await ws.close()
    # Each new socket takes the place of the address's oldest one waiting for init.
    assert len(still_open) <= PER_ADDRESS
    print(
        f"[flood] {accepted} handshakes of {SOCKETS}, {len(still_open)} left open; "
        f"slowest /healthz {slowest:.3f} s"
    )
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the flood"


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it is still open after `seconds`."""
    received = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def _connect(server: AssayProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert server.port is not None
    return await asyncio.open_connection("127.0.0.1", server.port)


async def test_an_idle_connection_is_closed_after_the_read_timeout(server: AssayProcess) -> None:
    reader, writer = await _connect(server)
    try:
        assert await _closed_within(reader, READ_TIMEOUT + 3) == b""
    finally:
        writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off(server: AssayProcess) -> None:
    reader, writer = await _connect(server)

    async def trickle() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(OSError):
            for _ in range(100):
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)

    sending = asyncio.create_task(trickle())
    try:
        await _closed_within(reader, READ_TIMEOUT + 3)
    finally:
        sending.cancel()
        writer.close()


async def test_a_trickled_body_is_cut_off(server: AssayProcess) -> None:
    reader, writer = await _connect(server)
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n"
    )

    async def trickle() -> None:
        with contextlib.suppress(OSError):
            for _ in range(100):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)

    sending = asyncio.create_task(trickle())
    try:
        await _closed_within(reader, READ_TIMEOUT + 3)
    finally:
        sending.cancel()
        writer.close()


async def test_a_huge_header_is_refused_with_431_before_it_is_read(server: AssayProcess) -> None:
    reader, writer = await _connect(server)
    sent = 0

    async def send_10_mib() -> None:
        nonlocal sent
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        with contextlib.suppress(OSError):
            for _ in range(160):
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536

    sending = asyncio.create_task(send_10_mib())
    answer = b""
    try:
        with contextlib.suppress(ConnectionError):  # it closed with our bytes unread
            answer = await _closed_within(reader, 10)
    finally:
        sending.cancel()
        writer.close()
    assert sent < 160 * 65536, "the whole 10 MiB header was read"
    if answer:
        assert _shaped_error(answer, 431) == "BAD_REQUEST"


def _shaped_error(answer: bytes, status: int) -> str:
    """The code of a raw HTTP answer in the contract's error shape (checked here)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), lines[0]
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"].startswith("application/json"), headers
    (error,) = json.loads(body)["errors"]
    assert error["message"]
    assert error["extensions"]["requestId"] == headers["x-request-id"]
    code: str = error["extensions"]["code"]
    return code


async def _answer_to(server: AssayProcess, *requests: bytes) -> bytes:
    reader, writer = await _connect(server)
    try:
        writer.write(b"".join(requests))  # in one write: the server reads it in one go
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            return await _closed_within(reader, 10)
        return b""
    finally:
        writer.close()


SIXTY_KB_OF_HEADERS = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 1000) for n in range(60))


async def test_60_kb_of_headers_in_one_read_are_refused_with_431_in_the_error_shape(
    server: AssayProcess,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + SIXTY_KB_OF_HEADERS + b"\r\n"
    assert _shaped_error(await _answer_to(server, request), 431) == "BAD_REQUEST"


async def test_headers_far_past_the_limit_get_the_431_not_a_reset(server: AssayProcess) -> None:
    """The refusal is sent while most of the request is still unread: closing at once would
    reset the connection (unread input), and the client would lose the 431 before reading
    it (CI saw an empty answer for 60 KB). The server stops writing, reads and drops what
    is still coming for a moment (up to 1 MiB), then closes."""
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"a" * 1000) for n in range(500))
    reader, writer = await _connect(server)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        answer = await _closed_within(reader, 10)
    finally:
        writer.close()
    assert _shaped_error(answer, 431) == "BAD_REQUEST"


async def test_60_kb_of_headers_in_a_later_request_on_the_connection_are_refused_too(
    server: AssayProcess,
) -> None:
    reader, writer = await _connect(server)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b'"ok"' not in first:
            first += await asyncio.wait_for(reader.read(65536), 10)
        assert first.startswith(b"HTTP/1.1 200 "), first[:200]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + SIXTY_KB_OF_HEADERS + b"\r\n")
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            second = await _closed_within(reader, 10)
    finally:
        writer.close()
    assert _shaped_error(second, 431) == "BAD_REQUEST"


async def test_60_kb_of_headers_pipelined_behind_a_request_are_refused_too(
    server: AssayProcess,
) -> None:
    first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + SIXTY_KB_OF_HEADERS + b"\r\n"
    answer = await _answer_to(server, first, second)
    refusal = answer[answer.index(b"HTTP/1.1 431 ") :]
    assert _shaped_error(refusal, 431) == "BAD_REQUEST"


async def test_a_malformed_request_line_is_400_in_the_error_shape(server: AssayProcess) -> None:
    answer = await _answer_to(server, b"NOT A REQUEST LINE\x01\r\n\r\n")
    assert _shaped_error(answer, 400) == "BAD_REQUEST"


async def test_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_rate_limit(
    server: AssayProcess,
) -> None:
    codes = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
        for n in range(10):
            response = await http.post(
                "/graphql",
                json={"query": "{ models { id } }"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            )
            errors = response.json().get("errors") or [{"extensions": {"code": "OK"}}]
            codes.append(errors[0]["extensions"]["code"])
    assert "RATE_LIMITED" in codes, codes


async def test_a_repeated_legacy_connection_init_does_not_free_a_second_place(
    server: AssayProcess,
) -> None:
    url = server.base_url.replace("http://", "ws://") + "/graphql"
    bearer = token(server.data_dir, "ann@example.com", public_url=server.base_url)
    opened: list[ClientConnection] = []
    await asyncio.sleep(1)  # sockets of earlier tests are released
    try:
        legacy = await websockets.connect(url, subprotocols=[Subprotocol("graphql-ws")])
        opened.append(legacy)
        for _ in range(PER_ADDRESS - 1):
            assert await _open(url, opened)
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}
        for _ in range(2):
            await legacy.send(json.dumps(init))
            assert json.loads(await legacy.recv())["type"] == "connection_ack"
        accepted = [await _open(url, opened) for _ in range(2)]
        still_open = await _still_open(opened)
    finally:
        for ws in opened:
            with contextlib.suppress(Exception):
                await ws.close()
    # PER_ADDRESS + 1 waiting for init from one address: the oldest made room. Had the
    # second init freed a second place, none would have been closed.
    assert accepted == [True, True]
    assert len(still_open) == PER_ADDRESS + 1, "signing in frees one place, not two"
    assert legacy in still_open


async def test_subscribing_is_charged_to_the_rate_limit(server: AssayProcess) -> None:
    url = server.base_url.replace("http://", "ws://") + "/graphql"
    bearer = token(server.data_dir, "rita@example.com", public_url=server.base_url)
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}
    query = "subscription { submissionUpdated { id } }"  # cost 1; the bucket holds 5
    async with websockets.connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        for n in range(6):
            subscribe = {"id": f"s{n}", "type": "subscribe", "payload": {"query": query}}
            await ws.send(json.dumps(subscribe))
        refused = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert refused["type"] == "error", refused
    assert refused["id"] == "s5"
    assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
