"""The WebSocket protocols on a real server: the npm graphql-ws client as the peer, every close
code of graphql-transport-ws, ping/pong, completion from either side, legacy graphql-ws."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graph.ids import to_global_id
from tests.e2e.conftest import AssayProcess, Launcher, agql, model_id, token, truncate_all

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
NODE = shutil.which("node")
TRANSPORT_WS = Subprotocol("graphql-transport-ws")
LEGACY_WS = Subprotocol("graphql-ws")
INIT_TIMEOUT_SECONDS = 1
UPDATES = "subscription { submissionUpdated { id status } }"
CREATE = """mutation($m: ID!) {
  createSubmission(input: {modelId: $m, input: {sepal_length_cm: 6, sepal_width_cm: 3,
    petal_length_cm: 5, petal_width_cm: 2}}) { submission { id } } }"""

Event = dict[str, Any]


@dataclass
class Api:
    server: AssayProcess
    token: str
    iris: str

    @property
    def ws_url(self) -> str:
        return self.server.base_url.replace("http://", "ws://") + "/graphql"

    async def create_submission(self) -> str:
        data = await agql(self.server.base_url, CREATE, {"m": self.iris}, self.token)
        ident: str = data["createSubmission"]["submission"]["id"]
        return ident


def _npm_packages_installed() -> bool:
    modules = HERE / "node_modules"
    return all((modules / name / "package.json").is_file() for name in ("graphql-ws", "ws"))


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js with tests/e2e's npm packages (installed from package-lock.json when absent)."""
    if NODE is None:
        pytest.skip("Node.js is not on the PATH: the graphql-ws client peer needs it")
    if not _npm_packages_installed():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not on the PATH: cannot install the graphql-ws client")
        done = subprocess.run(
            [npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stderr[-4000:]}"
    return NODE


@pytest.fixture(scope="module")
async def api(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> Api:
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("ws")
    server = module_launcher.serve(
        "--no-workers",  # only the mutations' own events: nothing arrives unasked
        data_dir=data_dir,
        database_url=postgres_url,
        env={
            "ASSAY_MODEL_DIR": str(shared_models),
            "ASSAY_WS_INIT_TIMEOUT_SECONDS": str(INIT_TIMEOUT_SECONDS),
        },
        healthy=False,
    )
    bearer = token(data_dir, "ada@example.com", name="Ada", public_url=server.base_url)
    server.wait_healthy()
    return Api(server, bearer, model_id(server.base_url, bearer))


# ------------------------------------------------------------------ the npm graphql-ws client


class NodeClient:
    """ws_client.mjs running, its JSON-line events read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[Event] = []

    async def next_event(self, within: float = 15.0) -> Event:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        assert line, f"ws_client.mjs ended early; events so far: {self.events}"
        event: Event = json.loads(line)
        self.events.append(event)
        return event

    async def wait_for(self, name: str, within: float = 15.0) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            event = await self.next_event(max(0.1, deadline - loop.time()))
            if event["event"] == name:
                return event

    async def rest(self, within: float = 15.0) -> list[Event]:
        """Every event up to the process's exit, which must be clean."""
        while self.process.returncode is None:
            try:
                await self.next_event(within)
            except AssertionError:
                break
        code = await asyncio.wait_for(self.process.wait(), within)
        assert code == 0, f"ws_client.mjs exited with {code}; events: {self.events}"
        return self.events

    def named(self, name: str) -> list[Event]:
        return [event for event in self.events if event["event"] == name]


@asynccontextmanager
async def node_client(
    node: str, api: Api, query: str, *, bearer: str | None, take: int = 1
) -> AsyncIterator[NodeClient]:
    script = str(HERE / "ws_client.mjs")
    process = await asyncio.create_subprocess_exec(
        node,
        script,
        api.ws_url,
        bearer or "-",
        query,
        str(take),
        cwd=HERE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeClient(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_graphql_ws_client_receives_an_event_then_its_complete_stops_the_stream(
    node: str, api: Api
) -> None:
    async with node_client(node, api, UPDATES, bearer=api.token) as client:
        await client.wait_for("connected")
        # The subscribe message follows the ack; a submission made before the server
        # registered it is not seen, so make one until an event arrives.
        created = [await api.create_submission()]
        while not client.named("unsubscribed"):
            try:
                await client.wait_for("unsubscribed", within=1.0)
            except TimeoutError:
                assert len(created) < 10, f"no event for {created}; events: {client.events}"
                created.append(await api.create_submission())
        after_complete = await api.create_submission()
        events = await client.rest()

    [received] = [event["payload"] for event in events if event["event"] == "next"]
    assert received["data"]["submissionUpdated"]["id"] in created
    assert after_complete not in json.dumps(events)
    assert {"event": "pong", "received": True} in events, "the server answers pings with pong"
    assert not client.named("error"), events
    assert events[-1]["event"] == "closed"
    assert events[-1]["code"] == 1000


async def test_graphql_ws_client_sees_the_server_complete_a_stream(node: str, api: Api) -> None:
    missing = to_global_id("Submission", uuid4())
    unknown = f'subscription {{ submissionUpdated(id: "{missing}") {{ id }} }}'
    async with node_client(node, api, unknown, bearer=api.token) as client:
        events = await client.rest()

    [result] = [event["payload"] for event in events if event["event"] == "next"]
    assert result["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert client.named("complete"), f"the server did not end the stream: {events}"
    assert {"event": "message", "type": "complete"} in events


async def test_graphql_ws_client_without_a_token_is_closed_with_4403(node: str, api: Api) -> None:
    async with node_client(node, api, UPDATES, bearer=None) as client:
        events = await client.rest()

    assert not client.named("connected"), events
    assert client.named("closed")[0]["code"] == 4403


# ------------------------------------------------------------------ close codes, by hand


@asynccontextmanager
async def raw_socket(
    api: Api, protocol: Subprotocol = TRANSPORT_WS
) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(api.ws_url, subprotocols=[protocol], open_timeout=10) as ws:
        yield ws


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection, within: float = 10.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
    return message


async def initialised(ws: ClientConnection, bearer: str) -> None:
    await send(ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}})
    ack = await receive(ws)
    assert ack["type"] == "connection_ack", ack


async def close_code(ws: ClientConnection, within: float = 10.0) -> int | None:
    """The code the server closed with, reading (and dropping) whatever came before."""

    async def drain() -> None:
        with suppress(ConnectionClosed):
            async for _ in ws:
                pass

    await asyncio.wait_for(drain(), within)
    return ws.close_code


async def test_no_connection_init_in_time_is_closed_with_4408(api: Api) -> None:
    async with raw_socket(api) as ws:
        code = await close_code(ws, within=INIT_TIMEOUT_SECONDS + 5)
    assert code == 4408


async def test_a_second_connection_init_is_closed_with_4429(api: Api) -> None:
    async with raw_socket(api) as ws:
        await initialised(ws, api.token)
        await send(ws, {"type": "connection_init", "payload": {}})
        assert await close_code(ws) == 4429


async def test_a_duplicate_subscription_id_is_closed_with_4409(api: Api) -> None:
    async with raw_socket(api) as ws:
        await initialised(ws, api.token)
        subscribe = {"id": "same", "type": "subscribe", "payload": {"query": UPDATES}}
        await send(ws, subscribe)
        await asyncio.sleep(0.3)  # the first one is running
        await send(ws, subscribe)
        assert await close_code(ws) == 4409


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic YWRhOnNlY3JldA=="],
    ids=["no-header", "bad-token", "not-bearer"],
)
async def test_an_unauthorised_connection_is_closed_with_4403(
    api: Api, authorization: str | None
) -> None:
    payload = {} if authorization is None else {"Authorization": authorization}
    async with raw_socket(api) as ws:
        await send(ws, {"type": "connection_init", "payload": payload})
        assert await close_code(ws) == 4403


@pytest.mark.parametrize(
    "message",
    ["not json", '{"type": "no-such-type"}', '{"type": "subscribe", "id": "1"}', "[]", "null"],
    ids=["not-json", "unknown-type", "subscribe-without-payload", "an-array", "null"],
)
async def test_an_invalid_message_is_closed_with_4400(api: Api, message: str) -> None:
    async with raw_socket(api) as ws:
        await initialised(ws, api.token)
        await ws.send(message)
        assert await close_code(ws) == 4400


async def test_subscribe_before_connection_init_is_closed_with_4401(api: Api) -> None:
    async with raw_socket(api) as ws:
        await send(ws, {"id": "1", "type": "subscribe", "payload": {"query": UPDATES}})
        assert await close_code(ws) == 4401


async def test_ping_is_answered_with_pong_and_an_unasked_pong_is_accepted(api: Api) -> None:
    async with raw_socket(api) as ws:
        await send(ws, {"type": "ping"})  # allowed before connection_init
        assert (await receive(ws))["type"] == "pong"
        await initialised(ws, api.token)
        await send(ws, {"type": "pong", "payload": {"at": "client"}})  # a one-way heartbeat
        await send(ws, {"type": "ping", "payload": {"at": "client"}})
        assert (await receive(ws))["type"] == "pong"
        assert ws.close_code is None


async def test_a_complete_from_the_client_stops_the_stream(api: Api) -> None:
    async with raw_socket(api) as ws:
        await initialised(ws, api.token)
        await send(ws, {"id": "s", "type": "subscribe", "payload": {"query": UPDATES}})
        await asyncio.sleep(0.3)
        created = await api.create_submission()
        first = await receive(ws)
        assert first["type"] == "next", first
        assert first["payload"]["data"]["submissionUpdated"]["id"] == created
        await send(ws, {"id": "s", "type": "complete"})
        await asyncio.sleep(0.3)
        while True:  # events of `created` may already be on their way
            try:
                late = await receive(ws, within=0.5)
            except TimeoutError:
                break
            assert late["payload"]["data"]["submissionUpdated"]["id"] == created
        await api.create_submission()
        with pytest.raises(TimeoutError):
            await receive(ws, within=1.5)
        await send(ws, {"type": "ping"})
        assert (await receive(ws))["type"] == "pong", "the connection outlives the stream"


async def test_the_legacy_graphql_ws_protocol_serves_a_subscription(api: Api) -> None:
    async with raw_socket(api, LEGACY_WS) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {api.token}"}}
        await send(ws, init)
        assert (await receive(ws))["type"] == "connection_ack"
        await send(ws, {"id": "1", "type": "start", "payload": {"query": UPDATES}})
        await asyncio.sleep(0.3)
        created = await api.create_submission()
        while (message := await receive(ws))["type"] == "ka":
            pass
        assert message["type"] == "data", message
        assert message["id"] == "1"
        assert message["payload"]["data"]["submissionUpdated"]["id"] == created
        await send(ws, {"id": "1", "type": "stop"})
        await send(ws, {"type": "connection_terminate"})
        assert await close_code(ws) == 1000


async def test_the_legacy_protocol_also_closes_without_connection_init_in_time(api: Api) -> None:
    async with raw_socket(api, LEGACY_WS) as ws:
        code = await close_code(ws, within=INIT_TIMEOUT_SECONDS + 5)
    assert code == 4408


async def test_a_legacy_start_carrying_a_query_answers_it_then_completes(api: Api) -> None:
    async with raw_socket(api, LEGACY_WS) as ws:
        await initialised(ws, api.token)
        start = {"id": "q", "type": "start", "payload": {"query": "{ viewer { name } }"}}
        await send(ws, start)
        while (message := await receive(ws))["type"] == "ka":
            pass
        assert message == {
            "type": "data",
            "id": "q",
            "payload": {"data": {"viewer": {"name": "Ada"}}},
        }
        assert await receive(ws) == {"type": "complete", "id": "q"}


async def test_a_legacy_subscription_over_the_limits_is_refused_with_an_error(api: Api) -> None:
    deep = (
        "subscription { submissionUpdated { "
        + "owner { submissions(first: 100) { edges { node { " * 3
        + "id"
        + " } } } }" * 3
        + " } }"
    )
    async with raw_socket(api, LEGACY_WS) as ws:
        await initialised(ws, api.token)
        await send(ws, {"id": "deep", "type": "start", "payload": {"query": deep}})
        message = await receive(ws)
        assert message["type"] == "error", message
        assert message["payload"]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_a_repeated_legacy_connection_init_counts_one_connection_of_the_user(
    api: Api,
) -> None:
    bearer = token(api.server.data_dir, "eve@example.com", public_url=api.server.base_url)
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}
    async with raw_socket(api, LEGACY_WS) as legacy:
        for _ in range(2):
            await send(legacy, init)
            assert (await receive(legacy))["type"] == "connection_ack"
    await asyncio.sleep(0.5)  # the server releases the closed socket
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(20):  # ASSAY_MAX_CONNECTIONS_PER_USER's default
            ws = await stack.enter_async_context(raw_socket(api))
            await initialised(ws, bearer)


async def test_frames_are_compressed_only_when_the_client_negotiates_permessage_deflate(
    api: Api,
) -> None:
    """uvicorn's websockets protocol accepts permessage-deflate when offered (the websockets
    client offers it by default) and adds no extension otherwise."""
    async with raw_socket(api) as ws:
        assert ws.response is not None
        offered = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await initialised(ws, api.token)
    assert offered.startswith("permessage-deflate")
    async with websockets.connect(
        api.ws_url, subprotocols=[TRANSPORT_WS], compression=None, open_timeout=10
    ) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await initialised(ws, api.token)
