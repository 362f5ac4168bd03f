"""Subscriptions over a real WebSocket: across two server processes, each subscription kind,
access rules, token expiry and the per-connection and per-user limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from tests.e2e.conftest import (
    AssayProcess,
    Launcher,
    agql,
    base_env,
    model_id,
    run_assay,
    token,
    truncate_all,
)
from tests.integration.webhook_receiver import Receiver, running

pytestmark = pytest.mark.e2e

PROTOCOL = Subprotocol("graphql-transport-ws")
ISSUER = "http://assay.test"  # both servers trust the same local issuer
IRIS = {
    "sepal_length_cm": 6.0,
    "sepal_width_cm": 3.0,
    "petal_length_cm": 5.0,
    "petal_width_cm": 2.0,
}
CREATE = """mutation($m: ID!, $i: JSON!) {
  createSubmission(input: {modelId: $m, input: $i}) { submission { id } } }"""
RUN = """mutation($m: ID!, $i: JSON!) {
  runInference(input: {modelId: $m, input: $i}) { submission { id } result { id } } }"""


@dataclass
class Cluster:
    first: AssayProcess
    second: AssayProcess
    ada: str
    bob: str
    iris: str


@pytest.fixture(scope="module")
async def cluster(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> Cluster:
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("shared")
    env = {
        "ASSAY_MODEL_DIR": str(shared_models),
        "ASSAY_PUBLIC_URL": ISSUER,
        "ASSAY_MAX_SUBSCRIPTIONS_PER_CONNECTION": "2",
        "ASSAY_MAX_CONNECTIONS_PER_USER": "3",
        "ASSAY_MAX_SUBSCRIPTION_MESSAGE_BYTES": "4096",
        "ASSAY_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on 127.0.0.1
        "ASSAY_WEBHOOK_POLL_SECONDS": "0.1",
    }
    first = module_launcher.serve(data_dir=data_dir, database_url=postgres_url, env=env)
    second = module_launcher.serve(
        "--no-workers", data_dir=data_dir, database_url=postgres_url, env=env
    )
    ada = token(data_dir, "ada@example.com", public_url=ISSUER)
    bob = token(data_dir, "bob@example.com", public_url=ISSUER)
    return Cluster(first, second, ada, bob, model_id(first.base_url, ada))


def ws_url(server: AssayProcess) -> str:
    return server.base_url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def connection(server: AssayProcess, bearer: str) -> AsyncIterator[ClientConnection]:
    async with websockets.connect(ws_url(server), subprotocols=[PROTOCOL]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}}
        await ws.send(json.dumps(init))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        yield ws


async def open_subscriptions(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("assay_open_subscriptions "):
            return float(line.split()[1])
    raise AssertionError("no assay_open_subscriptions gauge on /metrics")


async def subscribe(
    ws: ClientConnection, ident: str, query: str, *, heard: bool = True, **variables: Any
) -> None:
    """Sends `subscribe`; with `heard`, returns once the server hears events for it. The
    protocol has no acknowledgement, and a fixed sleep lost a batch's first results on a
    busy machine. A subscription refused or finished at once never shows: heard=False."""
    payload = {"query": query, "variables": variables}
    message = json.dumps({"id": ident, "type": "subscribe", "payload": payload})
    if not heard:
        await ws.send(message)
        return
    host, port = ws.remote_address[:2]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        before = await open_subscriptions(client)
        await ws.send(message)
        for _ in range(200):  # at most 10 s; a refused subscription never registers
            if await open_subscriptions(client) > before:
                return
            await asyncio.sleep(0.05)


async def next_message(ws: ClientConnection, within: float = 15.0) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), within))
        if message["type"] != "ping":
            return message


def error_code(message: dict[str, Any]) -> str:
    """An execution error arrives as `next` with errors (validation errors as `error`)."""
    assert message["type"] in {"next", "error"}, message
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload["errors"]
    code: str = errors[0]["extensions"]["code"]
    return code


async def test_a_mutation_on_one_process_reaches_a_subscriber_on_the_other(
    cluster: Cluster,
) -> None:
    async with connection(cluster.second, cluster.ada) as ws:
        await subscribe(ws, "s", "subscription { submissionUpdated { id status } }")
        created = await agql(
            cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada
        )
        sid = created["createSubmission"]["submission"]["id"]
        seen: list[str] = []
        while "SUCCEEDED" not in seen:
            message = await next_message(ws)
            assert message["type"] == "next", message
            update = message["payload"]["data"]["submissionUpdated"]
            assert update["id"] == sid
            seen.append(update["status"])
        # Each message carries the submission as it is when delivered, so a fast worker can
        # make an early event show a later status, but never an earlier one after a later.
        order = ["PENDING", "RUNNING", "SUCCEEDED"]
        assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)


async def test_result_created_and_asset_updated_arrive(cluster: Cluster) -> None:
    async with connection(cluster.first, cluster.ada) as ws:
        await subscribe(ws, "r", "subscription { resultCreated { id submission { id } } }")
        await subscribe(ws, "a", "subscription { assetUpdated { id status } }")
        ran = await agql(cluster.first.base_url, RUN, {"m": cluster.iris, "i": IRIS}, cluster.ada)
        message = await next_message(ws)
        assert message["id"] == "r"
        result = message["payload"]["data"]["resultCreated"]
        assert result["id"] == ran["runInference"]["result"]["id"]

        upload = await agql(
            cluster.first.base_url,
            """mutation { requestAssetUpload(input: {fileName: "a.txt", contentType: "text/plain",
              sizeBytes: 5}) { asset { id } uploadUrl uploadHeaders } }""",
            token=cluster.ada,
        )
        asset = upload["requestAssetUpload"]
        path = httpx.URL(asset["uploadUrl"]).raw_path.decode()
        async with httpx.AsyncClient(base_url=cluster.first.base_url) as http:
            put = await http.put(path, content=b"hello", headers=asset["uploadHeaders"])
            assert put.status_code in (200, 201), put.text
        await agql(
            cluster.first.base_url,
            "mutation($id: ID!) { completeAssetUpload(id: $id) { asset { id } } }",
            {"id": asset["asset"]["id"]},
            cluster.ada,
        )
        message = await next_message(ws)
        assert message["id"] == "a"
        assert message["payload"]["data"]["assetUpdated"] == {
            "id": asset["asset"]["id"],
            "status": "AVAILABLE",
        }


async def test_others_events_never_arrive_and_naming_their_id_is_not_found(
    cluster: Cluster,
) -> None:
    created = await agql(
        cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada
    )
    adas = created["createSubmission"]["submission"]["id"]
    async with connection(cluster.first, cluster.bob) as ws:
        await subscribe(
            ws,
            "named",
            "subscription($id: ID) { submissionUpdated(id: $id) { id } }",
            heard=False,
            id=adas,
        )
        assert error_code(await next_message(ws)) == "NOT_FOUND"
        assert (await next_message(ws)) == {"id": "named", "type": "complete"}
        await subscribe(ws, "mine", "subscription { submissionUpdated { id } }")
        await agql(cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada)
        with pytest.raises(TimeoutError):
            await next_message(ws, within=2.0)


async def test_subscriptions_per_connection_are_limited(cluster: Cluster) -> None:
    async with connection(cluster.first, cluster.ada) as ws:
        for n in range(2):
            await subscribe(ws, f"s{n}", "subscription { submissionUpdated { id } }")
        await subscribe(ws, "third", "subscription { submissionUpdated { id } }", heard=False)
        message = await next_message(ws)
        assert message["id"] == "third"
        assert error_code(message) == "RATE_LIMITED"


async def test_connections_per_user_are_limited(cluster: Cluster) -> None:
    async with connection(cluster.first, cluster.bob), connection(cluster.first, cluster.bob):
        async with connection(cluster.first, cluster.bob):
            pass
        async with (
            websockets.connect(ws_url(cluster.first), subprotocols=[PROTOCOL]) as extra_a,
            websockets.connect(ws_url(cluster.first), subprotocols=[PROTOCOL]) as extra_b,
        ):
            init = {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {cluster.bob}"},
            }
            await extra_a.send(json.dumps(init))
            assert json.loads(await extra_a.recv())["type"] == "connection_ack"
            await extra_b.send(json.dumps(init))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(extra_b.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403


async def test_a_bad_token_closes_with_4403(cluster: Cluster) -> None:
    async with websockets.connect(ws_url(cluster.first), subprotocols=[PROTOCOL]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer x"}})
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_the_socket_closes_when_the_token_expires(
    cluster: Cluster, module_launcher: Launcher
) -> None:
    data_dir = cluster.first.data_dir
    # Long enough to sign in and subscribe on a loaded machine before it expires.
    short = _token_expiring_in(data_dir, seconds=8)
    async with connection(cluster.first, short) as ws:
        await subscribe(ws, "s", "subscription { submissionUpdated { id } }")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_message(ws, within=20.0)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


def _token_expiring_in(data_dir: Path, seconds: int) -> str:
    done = run_assay(
        ["token", "--email", "eve@example.com", "--expires-in", str(seconds)],
        base_env(data_dir, extra={"ASSAY_PUBLIC_URL": ISSUER}),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


STATES = """subscription { submissionUpdated { id status owner { name }
  latestResult { id prediction } results { id } } }"""
RENAME = "mutation($n: String) { updateViewer(input: {name: $n}) { name } }"


async def _states_of(ws: ClientConnection, sid: str) -> list[dict[str, Any]]:
    """Every message about `sid` until its SUCCEEDED, and any that come within a second after."""
    seen: list[dict[str, Any]] = []
    within = 15.0
    while True:
        try:
            message = await next_message(ws, within)
        except TimeoutError:
            if seen and seen[-1]["status"] == "SUCCEEDED":
                return seen
            raise
        assert message["type"] == "next", message
        update = message["payload"]["data"]["submissionUpdated"]
        if update["id"] == sid:
            seen.append(update)
            if update["status"] == "SUCCEEDED":
                within = 1.0


async def test_one_submission_shows_each_status_once_in_order_as_it_was(
    cluster: Cluster,
) -> None:
    async with connection(cluster.second, cluster.ada) as ws:
        await subscribe(ws, "s", STATES)
        for name in ("Ada One", "Ada Two"):
            await agql(cluster.first.base_url, RENAME, {"n": name}, cluster.ada)
            created = await agql(
                cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada
            )
            seen = await _states_of(ws, created["createSubmission"]["submission"]["id"])
            assert [m["status"] for m in seen] == ["PENDING", "RUNNING", "SUCCEEDED"]
            assert {m["owner"]["name"] for m in seen} == {name}
            for earlier in seen[:2]:
                assert (earlier["latestResult"], earlier["results"]) == (None, [])
            done = seen[2]
            assert done["latestResult"] is not None
            assert done["results"] == [{"id": done["latestResult"]["id"]}]


async def test_a_synchronous_prediction_shows_each_status_once_in_order_with_its_result(
    cluster: Cluster,
) -> None:
    # runInference on the process without workers runs the model there, in a group commit;
    # the subscriber listens on the other process.
    async with connection(cluster.first, cluster.ada) as ws:
        await subscribe(ws, "s", STATES)
        ran = await agql(cluster.second.base_url, RUN, {"m": cluster.iris, "i": IRIS}, cluster.ada)
        seen = await _states_of(ws, ran["runInference"]["submission"]["id"])
        assert [m["status"] for m in seen] == ["PENDING", "RUNNING", "SUCCEEDED"]
        for earlier in seen[:2]:
            assert (earlier["latestResult"], earlier["results"]) == (None, [])
        assert seen[2]["latestResult"]["id"] == ran["runInference"]["result"]["id"]
        assert seen[2]["results"] == [{"id": ran["runInference"]["result"]["id"]}]


DEEP = (
    "subscription { submissionUpdated { "
    + "owner { submissions(first: 100) { edges { node { " * 3
    + "id"
    + " } } } }" * 3
    + " } }"
)


async def test_a_subscription_over_the_cost_limit_is_refused_and_never_runs(
    cluster: Cluster,
) -> None:
    async with connection(cluster.first, cluster.ada) as ws:
        await subscribe(ws, "deep", DEEP, heard=False)
        refused = await next_message(ws)
        assert refused["type"] == "error", refused
        [error] = refused["payload"]
        assert error["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert error["extensions"]["cost"] > error["extensions"]["limit"]
        await agql(cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada)
        with pytest.raises(TimeoutError):
            await next_message(ws, within=2.0)


async def test_a_message_over_the_size_cap_ends_its_subscription_with_an_error(
    cluster: Cluster,
) -> None:
    wide = """subscription { submissionUpdated { id owner { submissions(first: 50) {
      edges { node { id input status createdAt updatedAt } } } } } }"""
    for _ in range(30):  # enough submissions that one message lists more than 4 KiB
        await agql(cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada)
    async with connection(cluster.first, cluster.ada) as ws:
        await subscribe(ws, "wide", wide)
        await agql(cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada)
        message = await next_message(ws)
        assert message["id"] == "wide"
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        await agql(cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada)
        with pytest.raises(TimeoutError):
            await next_message(ws, within=2.0)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_message(ws))["type"] == "pong", "the socket outlives the subscription"


async def test_deactivating_a_user_closes_their_sockets_on_every_process(
    cluster: Cluster,
) -> None:
    data_dir = cluster.first.data_dir
    admin = token(data_dir, "root@example.com", ["admin"], public_url=ISSUER)
    carol = token(data_dir, "carol@example.com", public_url=ISSUER)
    viewer = await agql(cluster.first.base_url, "{ viewer { id } }", token=carol)
    async with (
        connection(cluster.first, carol) as on_first,
        connection(cluster.second, carol) as on_second,
    ):
        await subscribe(on_first, "s", "subscription { submissionUpdated { id } }")
        await agql(
            cluster.first.base_url,
            "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }",
            {"id": viewer["viewer"]["id"]},
            admin,
        )
        for ws in (on_first, on_second):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await next_message(ws, within=5.0)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403


async def test_a_prompt_result_reader_receives_every_result_of_a_1000_input_batch(
    cluster: Cluster,
) -> None:
    batch = """mutation($m: ID!, $i: [JSON!]!) {
      batchInference(input: {modelId: $m, inputs: $i}) { submissions { id } } }"""
    async with connection(cluster.first, cluster.bob) as ws:
        await subscribe(ws, "r", "subscription { resultCreated { id submission { id } } }")
        created = await agql(
            cluster.first.base_url, batch, {"m": cluster.iris, "i": [IRIS] * 1000}, cluster.bob
        )
        wanted = {s["id"] for s in created["batchInference"]["submissions"]}
        received: set[str] = set()
        while received != wanted:
            message = await next_message(ws, within=30.0)
            assert message["type"] == "next", (len(received), message)
            received.add(message["payload"]["data"]["resultCreated"]["submission"]["id"])


async def test_webhook_payloads_name_api_ids_and_carry_the_prediction(cluster: Cluster) -> None:
    data_dir = cluster.first.data_dir
    dave = token(data_dir, "dave@example.com", public_url=ISSUER)
    with running(Receiver()) as receiver:
        await agql(
            cluster.first.base_url,
            """mutation($url: String!) { createWebhookEndpoint(input: {url: $url,
              events: [SUBMISSION_SUCCEEDED, RESULT_CREATED]}) { secret } }""",
            {"url": receiver.url},
            dave,
        )
        ran = await agql(cluster.first.base_url, RUN, {"m": cluster.iris, "i": IRIS}, dave)
        for _ in range(300):
            if len(receiver.requests) >= 2:
                break
            await asyncio.sleep(0.1)
    bodies = {b["type"]: b["data"] for b in (json.loads(r.body) for r in receiver.requests)}
    submission_id = ran["runInference"]["submission"]["id"]
    result_id = ran["runInference"]["result"]["id"]
    for kind in ("submission.succeeded", "result.created"):
        data = bodies[kind]
        assert (data["submissionId"], data["resultId"]) == (submission_id, result_id)
        assert data["prediction"]["species"] in {"setosa", "versicolor", "virginica"}
        assert 0 <= data["confidence"] <= 1
        assert data["modelVersion"]
        assert isinstance(data["sequence"], int)
    assert bodies["submission.succeeded"]["sequence"] < bodies["result.created"]["sequence"]
    found = await agql(
        cluster.first.base_url,
        "query($id: ID!) { submission(id: $id) { id } }",
        {"id": bodies["result.created"]["submissionId"]},
        dave,
    )
    assert found["submission"] == {"id": submission_id}


async def test_revoking_an_api_key_closes_its_sockets_on_every_process_at_once(
    cluster: Cluster,
) -> None:
    data_dir = cluster.first.data_dir
    dora = token(data_dir, "dora@example.com", public_url=ISSUER)
    made = await agql(
        cluster.first.base_url,
        'mutation { createApiKey(input: {name: "ci"}) { apiKey { id } secret } }',
        token=dora,
    )
    key_id, secret = made["createApiKey"]["apiKey"]["id"], made["createApiKey"]["secret"]
    async with (
        connection(cluster.first, secret) as with_key_first,
        connection(cluster.second, secret) as with_key_second,
        connection(cluster.second, dora) as with_token,
    ):
        await agql(
            cluster.second.base_url,
            "mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { revokedAt } } }",
            {"id": key_id},
            dora,
        )
        for ws in (with_key_first, with_key_second):
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await next_message(ws, within=5.0)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403
        await with_token.send(json.dumps({"type": "ping"}))
        assert (await next_message(with_token))["type"] == "pong", "the person's socket stays"
    for server in (cluster.first, cluster.second):
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{server.base_url}/graphql",
                json={"query": "{ viewer { id } }"},
                headers={"Authorization": f"Bearer {secret}"},
            )
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_erasing_an_account_closes_its_sockets(cluster: Cluster) -> None:
    erin = token(cluster.first.data_dir, "erin@example.com", public_url=ISSUER)
    async with connection(cluster.second, erin) as ws:
        await agql(
            cluster.first.base_url,
            'mutation { deleteViewer(input: {confirmEmail: "erin@example.com"}) { deletedId } }',
            token=erin,
        )
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_message(ws, within=5.0)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403


SUBMISSION_BY_ID = """subscription($id: ID) { submissionUpdated(id: $id) {
  id status latestResult { id } } }"""


async def _until_complete(ws: ClientConnection, ident: str) -> list[dict[str, Any]]:
    """The data of every message of one subscription until the server completes it."""
    received: list[dict[str, Any]] = []
    while True:
        message = await next_message(ws)
        assert message["id"] == ident, message
        if message["type"] == "complete":
            return received
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        received.append(message["payload"]["data"])


async def test_subscribing_right_after_creating_never_misses_the_end(cluster: Cluster) -> None:
    for _ in range(3):
        created = await agql(
            cluster.first.base_url, CREATE, {"m": cluster.iris, "i": IRIS}, cluster.ada
        )
        sid = created["createSubmission"]["submission"]["id"]
        async with connection(cluster.second, cluster.ada) as ws:
            payload = {"query": SUBMISSION_BY_ID, "variables": {"id": sid}}
            await ws.send(json.dumps({"id": "one", "type": "subscribe", "payload": payload}))
            updates = [m["submissionUpdated"] for m in await _until_complete(ws, "one")]
        statuses = [u["status"] for u in updates]
        order = ["PENDING", "RUNNING", "SUCCEEDED"]
        assert statuses[-1] == "SUCCEEDED", statuses
        assert statuses == sorted(set(statuses), key=order.index), "once each, in order"
        assert updates[-1]["latestResult"] is not None


async def test_a_finished_object_is_sent_once_and_the_subscription_completes(
    cluster: Cluster,
) -> None:
    ran = await agql(cluster.first.base_url, RUN, {"m": cluster.iris, "i": IRIS}, cluster.ada)
    sid = ran["runInference"]["submission"]["id"]
    async with connection(cluster.second, cluster.ada) as ws:
        await subscribe(ws, "s", SUBMISSION_BY_ID, heard=False, id=sid)
        [only] = await _until_complete(ws, "s")
        assert only["submissionUpdated"]["status"] == "SUCCEEDED"
        await subscribe(
            ws,
            "r",
            "subscription($id: ID) { resultCreated(submissionId: $id) { id } }",
            heard=False,
            id=sid,
        )
        assert await _until_complete(ws, "r") == [
            {"resultCreated": {"id": ran["runInference"]["result"]["id"]}}
        ]


async def test_a_subscription_to_one_asset_starts_with_the_asset_as_it_is(
    cluster: Cluster,
) -> None:
    upload = await agql(
        cluster.first.base_url,
        """mutation { requestAssetUpload(input: {fileName: "b.txt", contentType: "text/plain",
          sizeBytes: 5}) { asset { id } } }""",
        token=cluster.ada,
    )
    asset = upload["requestAssetUpload"]["asset"]["id"]
    async with connection(cluster.first, cluster.ada) as ws:
        await subscribe(
            ws, "a", "subscription($id: ID) { assetUpdated(id: $id) { id status } }", id=asset
        )
        message = await next_message(ws)
        assert message["payload"]["data"]["assetUpdated"] == {
            "id": asset,
            "status": "PENDING_UPLOAD",
        }
