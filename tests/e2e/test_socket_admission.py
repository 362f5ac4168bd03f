"""Sockets without connection_init cannot keep signed-in users out: from many loopback
addresses they fill the process's slots, from one address the address's share, and a user
signing in (from elsewhere, or behind the same address) still gets in. Bounded: 48 sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection
from websockets.protocol import State
from websockets.typing import Subprotocol

from tests.e2e.conftest import AssayProcess, Launcher, token, truncate_all

pytestmark = pytest.mark.e2e

MAX_SOCKETS = 24
PER_ADDRESS = 4
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 8)]  # 6 x 4 = 24: every slot
PROTOCOL = Subprotocol("graphql-transport-ws")


@pytest.fixture
async def server(
    launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> AssayProcess:
    await truncate_all(engine)
    return launcher.serve(
        "--no-workers",
        data_dir=launcher.new_data_dir("admission"),
        database_url=postgres_url,
        env={
            "ASSAY_MODEL_DIR": str(shared_models),
            "ASSAY_MAX_WEBSOCKETS": str(MAX_SOCKETS),
            "ASSAY_MAX_UNAUTHENTICATED_WEBSOCKETS": str(MAX_SOCKETS),
            "ASSAY_MAX_UNAUTHENTICATED_WEBSOCKETS_PER_ADDRESS": str(PER_ADDRESS),
        },
    )


def _url(server: AssayProcess) -> str:
    return server.base_url.replace("http://", "ws://") + "/graphql"


async def _strangers(server: AssayProcess, addresses: list[str]) -> list[ClientConnection]:
    """PER_ADDRESS sockets from each address that never send connection_init."""
    opened = []
    for address in addresses:
        for _ in range(PER_ADDRESS):
            ws = await websockets.connect(
                _url(server), subprotocols=[PROTOCOL], local_addr=(address, 0), open_timeout=10
            )
            opened.append(ws)
    return opened


async def _signs_in(server: AssayProcess, email: str, address: str) -> str:
    """The first message a signed-in user's new socket gets (or how it was turned away)."""
    bearer = token(server.data_dir, email, public_url=server.base_url)
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}
    try:
        async with websockets.connect(
            _url(server), subprotocols=[PROTOCOL], local_addr=(address, 0), open_timeout=10
        ) as ws:
            await ws.send(json.dumps(init))
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return str(message["type"])
    except websockets.InvalidStatus as refused:
        return f"refused {refused.response.status_code}"
    except websockets.ConnectionClosed as closed:
        return f"closed {closed.rcvd.code if closed.rcvd else None}"


async def _close_all(opened: list[ClientConnection]) -> None:
    for ws in opened:
        with contextlib.suppress(Exception):
            await ws.close()


async def test_sockets_without_init_from_many_addresses_do_not_keep_a_user_out(
    server: AssayProcess,
) -> None:
    strangers = await _strangers(server, ADDRESSES)
    try:
        assert await _signs_in(server, "ann@example.com", "127.0.0.1") == "connection_ack"
        await asyncio.sleep(1.0)  # the close of the stranger that made room arrives
        evicted = [ws for ws in strangers if ws.state is not State.OPEN]
    finally:
        await _close_all(strangers)
    assert len(evicted) == 1
    assert evicted[0] is strangers[0], "the oldest socket waiting for init made room"


async def test_a_user_behind_a_flooded_address_still_gets_in(server: AssayProcess) -> None:
    office = ADDRESSES[0]
    strangers = await _strangers(server, [office])
    try:
        assert await _signs_in(server, "bob@example.com", office) == "connection_ack"
    finally:
        await _close_all(strangers)
