"""Batches and callbacks in one process: the GraphQL API, real PostgreSQL, the local model
runtime, the webhook fan-out and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from domain.batches import Batch
from domain.ids import to_global_id
from domain.ports import Clock, ModelRuntime
from domain.services import batches, callbacks, inference
from domain.services.batch_settlement import settle
from domain.submissions import ClaimEnd, SubmissionStatus
from domain.webhooks import DeliveryStatus, RetrySchedule
from graph.ids import parse_id
from integrations.webhooks import DnsUrlGuard, HttpWebhookSender
from persistence import tables
from persistence.unit_of_work import SqlUnitOfWork
from server.bootstrap import build_runtimes
from server.callback_dispatcher import CallbackDispatcher
from server.settings import Settings
from server.webhook_dispatcher import WebhookDispatcher
from tests.integration.conftest import IRIS_INPUT
from tests.integration.paging import walk
from tests.integration.test_webhooks import Api, utc_now
from tests.integration.webhook_receiver import Receiver, running

pytestmark = pytest.mark.integration

BATCH = """
mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) {
    submissions { id status batch { id } }
    batch { id size status callbackUrl counts { pending running succeeded failed cancelled } }
  }
}"""
BATCH_OF = """
query($id: ID!, $after: String, $status: SubmissionStatus) {
  batch(id: $id) {
    id size status completedAt estimatedCompletionAt owner { id } model { name }
    counts { pending running succeeded failed cancelled }
    submissions(first: 2, after: $after, status: $status) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { id status } }
    }
  }
}"""
BATCHES = """
query($after: String) {
  batches(first: 1, after: $after) { totalCount pageInfo { hasNextPage endCursor }
    edges { node { id } } }
  viewer { batches(first: 5) { edges { node { id } } } }
}"""
CANCEL = (
    "mutation($id: ID!) { cancelBatch(id: $id) { batch { status counts { running cancelled } } } }"
)
ROTATE = "mutation { rotateCallbackSecret { secret } }"
CREATE = """
mutation($input: CreateSubmissionInput!) { createSubmission(input: $input) { submission { id } } }
"""
NODE = "query($id: ID!) { node(id: $id) { __typename ... on Batch { size } } }"


@pytest.fixture
async def api(db: AsyncEngine) -> AsyncIterator[Api]:
    api = Api(db, allow_private_networks=True)
    yield api
    await api.client.aclose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running(Receiver()) as started:
        yield started


@pytest.fixture(scope="module")
def runtimes(settings: Settings) -> dict[str, ModelRuntime]:
    return build_runtimes(settings)


@pytest.fixture
async def dispatchers(
    db: AsyncEngine,
) -> AsyncIterator[tuple[WebhookDispatcher, CallbackDispatcher]]:
    sender = HttpWebhookSender(DnsUrlGuard(allow_private_networks=True), timeout_seconds=5)
    schedule = RetrySchedule((0.1, 0.1, 0.1))
    uow = lambda: SqlUnitOfWork(db)  # noqa: E731 - the factory both dispatchers share
    yield (
        WebhookDispatcher(
            uow=uow, sender=sender, schedule=schedule, clock=utc_now, lease_seconds=10
        ),
        CallbackDispatcher(
            uow=uow, sender=sender, schedule=schedule, clock=utc_now, lease_seconds=10
        ),
    )
    await sender.aclose()


async def work_off(db: AsyncEngine, runtimes: dict[str, ModelRuntime], limit: int = 10_000) -> None:
    """Run the worker's claim-and-process until nothing is due (or `limit` rounds)."""
    policy = inference.WorkerPolicy()
    for _ in range(limit):
        started = utc_now()
        claimed = await inference.claim(SqlUnitOfWork(db), policy, clock=utc_now)
        if not claimed:
            return
        await inference.process(
            lambda: SqlUnitOfWork(db), runtimes, claimed, policy, clock=utc_now, started=started
        )


async def deliver_until(
    pair: tuple[WebhookDispatcher, CallbackDispatcher], db: AsyncEngine, status: DeliveryStatus
) -> list[Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        await pair[0].fan_out_step()
        await pair[1].delivery_step()
        rows = await callback_rows(db)
        if rows and all(r.status == status.value for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"callbacks never reached {status}: {await callback_rows(db)}")


async def callback_rows(db: AsyncEngine) -> list[Any]:
    async with db.connect() as conn:
        return list(await conn.execute(sa.select(tables.callback_deliveries)))


async def count_events(db: AsyncEngine, kind: str) -> int:
    async with db.connect() as conn:
        statement = sa.select(sa.func.count()).where(tables.events.c.type == kind)
        return int((await conn.execute(statement)).scalar_one())


async def batch_inference(api: Api, model: str, count: int, **extra: Any) -> dict[str, Any]:
    inputs = [IRIS_INPUT] * count
    data = await api.ok("alice", BATCH, input={"modelId": model, "inputs": inputs, **extra})
    payload: dict[str, Any] = data["batchInference"]
    return payload


async def test_a_batch_is_tracked_in_input_order_and_completes_once(
    api: Api, db: AsyncEngine, default_models: dict[str, str], runtimes: dict[str, ModelRuntime]
) -> None:
    made = await batch_inference(api, default_models["iris-species"], 5)
    batch = made["batch"]
    assert batch["size"] == 5
    assert batch["status"] == "PENDING"
    assert batch["callbackUrl"] is None
    assert batch["counts"] == {
        "pending": 5,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert {s["batch"]["id"] for s in made["submissions"]} == {batch["id"]}
    order = [s["id"] for s in made["submissions"]]

    seen: list[str] = []
    after = None
    while True:
        page = (await api.ok("alice", BATCH_OF, id=batch["id"], after=after))["batch"][
            "submissions"
        ]
        assert page["totalCount"] == 5
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == order

    await work_off(db, runtimes)
    done = (await api.ok("alice", BATCH_OF, id=batch["id"], status="SUCCEEDED"))["batch"]
    assert done["status"] == "COMPLETED"
    assert done["completedAt"] is not None
    assert done["estimatedCompletionAt"] is None
    assert done["counts"]["succeeded"] == 5
    assert done["submissions"]["totalCount"] == 5
    assert done["model"] == {"name": "iris-species"}
    assert await count_events(db, "BATCH_COMPLETED") == 1
    assert (await api.ok("alice", NODE, id=batch["id"]))["node"] == {
        "__typename": "Batch",
        "size": 5,
    }


async def test_a_worked_chunk_counts_in_the_models_statistics_with_its_timings(
    api: Api, db: AsyncEngine, default_models: dict[str, str], runtimes: dict[str, ModelRuntime]
) -> None:
    await batch_inference(api, default_models["iris-species"], 5)

    await work_off(db, runtimes)

    stats, timings = tables.model_stats, tables.model_timings
    async with db.connect() as conn:
        spans = dict(
            (
                await conn.execute(
                    sa.select(stats.c.span, sa.func.sum(stats.c.predictions)).group_by(stats.c.span)
                )
            ).all()
        )
        chunks = (await conn.execute(sa.select(timings.c.chunks))).scalars().all()
    assert spans == {60: 5, 3600: 5}
    assert chunks == [1.0]


async def test_batches_are_the_viewers_newest_first_and_hidden_from_others(
    api: Api, default_models: dict[str, str]
) -> None:
    first = (await batch_inference(api, default_models["iris-species"], 1))["batch"]["id"]
    second = (await batch_inference(api, default_models["iris-species"], 1))["batch"]["id"]
    page = await api.ok("alice", BATCHES)
    assert page["batches"]["totalCount"] == 2
    assert [e["node"]["id"] for e in page["batches"]["edges"]] == [second]
    assert [e["node"]["id"] for e in page["viewer"]["batches"]["edges"]] == [second, first]
    cursor = page["batches"]["pageInfo"]["endCursor"]
    rest = await api.ok("alice", BATCHES, after=cursor)
    assert [e["node"]["id"] for e in rest["batches"]["edges"]] == [first]
    assert not rest["batches"]["pageInfo"]["hasNextPage"]
    assert (await api.ok("bob", BATCHES))["batches"]["totalCount"] == 0
    _, errors = await api("bob", BATCH_OF, id=first)
    assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"]


BATCHES_BOTH_WAYS = """
query($first: Int, $after: String, $last: Int, $before: String, $order: BatchOrder) {
  batches(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } } }
  viewer { batches(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } } } }
}"""
BATCH_SUBMISSIONS_BOTH_WAYS = """
query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  batch(id: $id) { submissions(first: $first, after: $after, last: $last, before: $before) {
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id } } } }
}"""


async def test_batches_and_a_batchs_submissions_page_both_ways(
    api: Api, default_models: dict[str, str]
) -> None:
    made = [await batch_inference(api, default_models["iris-species"], 5) for _ in range(3)]
    newest_first = [m["batch"]["id"] for m in made][::-1]

    for order, expected in (
        ("CREATED_AT_DESC", newest_first),
        ("CREATED_AT_ASC", newest_first[::-1]),
    ):
        for field in ("root", "viewer"):

            async def fetch(
                variables: dict[str, Any], field: str = field, order: str = order
            ) -> dict[str, Any]:
                data = await api.ok("alice", BATCHES_BOTH_WAYS, order=order, **variables)
                listed: dict[str, Any] = (
                    data["batches"] if field == "root" else data["viewer"]["batches"]
                )
                return listed

            assert await walk(fetch, {"first": 2}) == expected
            assert await walk(fetch, {"last": 2}) == expected

    in_input_order = [s["id"] for s in made[0]["submissions"]]

    async def submissions(variables: dict[str, Any]) -> dict[str, Any]:
        data = await api.ok(
            "alice", BATCH_SUBMISSIONS_BOTH_WAYS, id=made[0]["batch"]["id"], **variables
        )
        listed: dict[str, Any] = data["batch"]["submissions"]
        return listed

    assert await walk(submissions, {"first": 2}) == in_input_order
    assert await walk(submissions, {"last": 2}) == in_input_order


async def test_bad_batch_paging_is_bad_user_input_naming_the_argument(
    api: Api, default_models: dict[str, str]
) -> None:
    made = await batch_inference(api, default_models["iris-species"], 2)
    submission_cursor = (
        await api.ok("alice", BATCH_SUBMISSIONS_BOTH_WAYS, id=made["batch"]["id"], first=1)
    )["batch"]["submissions"]["edges"][0]["cursor"]
    for variables, named in (
        ({"first": 3, "last": 2}, "last"),
        ({"last": 101}, "last"),
        ({"last": 1, "before": submission_cursor}, "before"),  # a cursor of another list
    ):
        _, errors = await api("alice", BATCHES_BOTH_WAYS, **variables)
        assert {e["extensions"]["code"] for e in errors} == {"BAD_USER_INPUT"}
        assert {tuple(e["extensions"]["fields"]) for e in errors} == {(named,)}


async def test_cancel_batch_cancels_the_pending_rest_once(
    api: Api, db: AsyncEngine, default_models: dict[str, str]
) -> None:
    batch_id = (await batch_inference(api, default_models["iris-species"], 3))["batch"]["id"]
    await inference.claim(SqlUnitOfWork(db), inference.WorkerPolicy(max_claim=1), clock=utc_now)
    _, errors = await api("bob", CANCEL, id=batch_id)
    assert [e["extensions"]["code"] for e in errors] == ["NOT_FOUND"]
    cancelled = (await api.ok("alice", CANCEL, id=batch_id))["cancelBatch"]["batch"]
    assert cancelled == {"status": "CANCELLED", "counts": {"running": 1, "cancelled": 2}}
    _, errors = await api("alice", CANCEL, id=batch_id)
    assert [e["extensions"]["code"] for e in errors] == ["CONFLICT"]


def stopped_at(moment: datetime) -> Clock:
    return lambda: moment


async def _stored_batch(db: AsyncEngine, global_id: str) -> Batch:
    batch_id = parse_id(global_id, "Batch")
    assert batch_id is not None
    async with SqlUnitOfWork(db) as uow:
        [found] = await uow.batches.get_many([batch_id])
    assert found is not None
    return found


ESTIMATE_SLACK = 0.01  # seconds


async def test_estimates_hold_for_batches_of_10_to_1000_however_long_the_model_sat_idle(
    api: Api, db: AsyncEngine, default_models: dict[str, str], runtimes: dict[str, ModelRuntime]
) -> None:
    """A batch's estimate, asked as if the model had sat idle for minutes, against the
    recorded time the real worker took for batches of its size: within 2x. (The rate used
    to be what finished in the last five minutes over the time since the first of them
    finished: 31-34x too late for 10 inputs.) Compared with recorded durations, not timed
    here, so the busy machine's swings do not decide."""
    iris = default_models["iris-species"]
    taken = await _steady_timings(api, db, runtimes, iris)
    asked = utc_now() + timedelta(minutes=4)
    report = []
    for size, durations in taken.items():
        batch = await _stored_batch(db, (await batch_inference(api, iris, size))["batch"]["id"])
        estimate = await batches.estimate_completion(
            SqlUnitOfWork(db), batch, clock=stopped_at(asked)
        )
        assert estimate is not None
        # The mean, as the model's timings are: one run slowed by a busy machine moves the
        # estimate with it, and a median does not see that run (seen: 0.42 s estimated for
        # 1,000 inputs against a median of 0.17 s).
        predicted, typical = (estimate - asked).total_seconds(), statistics.fmean(durations)
        report.append(f"{size}: {predicted:.4f} s estimated, {typical:.4f} s taken")
        # Within 2x, give or take a few milliseconds: a 10-input batch takes about 5 ms, and
        # at that scale the scheduler's jitter alone is more than 2x (seen in CI: 2.6 ms
        # estimated, 5.6 ms taken). The estimates this guards against were minutes off.
        assert typical / 2 - ESTIMATE_SLACK <= predicted <= typical * 2 + ESTIMATE_SLACK, report
        await work_off(db, runtimes)
    print("; ".join(report))


# A run this many times slower than another of its size was the machine stalling (seen in CI:
# one 10-input batch 0.43 s against ~8 ms), not the model.
STALL = 5.0


async def _steady_timings(
    api: Api, db: AsyncEngine, runtimes: dict[str, ModelRuntime], model: str
) -> dict[int, list[float]]:
    """Three batches of each size worked off, as the model's timings record them. When a run
    stalled, every timing it recorded is forgotten (the row removed) and the runs made again,
    at most twice more: a stall pulls the fitted rate for every size, and the estimates would
    then be compared with the other sizes' undisturbed runs."""
    model_id = parse_id(model, "Model")
    for _ in range(3):
        taken: dict[int, list[float]] = {10: [], 100: [], 1000: []}
        for size in (10, 1000, 100) * 3:
            taken[size].append(await _time_taken(api, db, runtimes, model, size))
        stalled = [d for d in taken.values() if max(d) > STALL * min(d) + ESTIMATE_SLACK]
        if not stalled:
            return taken
        print(f"a run stalled ({stalled}): measured again")
        async with db.begin() as conn:
            timings = tables.model_timings
            await conn.execute(sa.delete(timings).where(timings.c.model_id == model_id))
    return taken


async def _time_taken(
    api: Api, db: AsyncEngine, runtimes: dict[str, ModelRuntime], model: str, size: int
) -> float:
    """Queue a batch and work it off: seconds from the start of the work to its completion."""
    made = await batch_inference(api, model, size)
    begun = utc_now()
    await work_off(db, runtimes)
    done = await _stored_batch(db, made["batch"]["id"])
    assert done.completed_at is not None
    return (done.completed_at - begun).total_seconds()


async def test_a_callback_url_needs_a_secret_and_changes_nothing_without_one(
    api: Api, db: AsyncEngine, default_models: dict[str, str], receiver: Receiver
) -> None:
    inputs = {"modelId": default_models["iris-species"], "callbackUrl": receiver.url}
    _, errors = await api("alice", CREATE, input={**inputs, "input": IRIS_INPUT})
    [error] = errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "rotateCallbackSecret" in error["extensions"]["fields"]["input.callbackUrl"]
    _, errors = await api("alice", BATCH, input={**inputs, "inputs": [IRIS_INPUT]})
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
    async with db.connect() as conn:
        stored = await conn.execute(sa.select(sa.func.count()).select_from(tables.submissions))
        assert stored.scalar_one() == 0

    secret = (await api.ok("alice", ROTATE))["rotateCallbackSecret"]["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    await api.ok("alice", CREATE, input={**inputs, "input": IRIS_INPUT})
    _, errors = await api(
        "alice", CREATE, input={**inputs, "input": IRIS_INPUT, "callbackUrl": "ftp://x"}
    )
    assert errors[0]["extensions"]["fields"] == {
        "input.callbackUrl": "must be an http or https URL"
    }


async def test_a_private_callback_url_is_refused_by_the_ssrf_guard(
    db: AsyncEngine, default_models: dict[str, str]
) -> None:
    guarded = Api(db, allow_private_networks=False)
    try:
        await guarded.ok("alice", ROTATE)
        request = {
            "modelId": default_models["iris-species"],
            "input": IRIS_INPUT,
            "callbackUrl": "http://127.0.0.1:9/hook",
        }
        _, errors = await guarded("alice", CREATE, input=request)
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "loopback" in errors[0]["extensions"]["fields"]["input.callbackUrl"]
    finally:
        await guarded.client.aclose()


async def test_a_submission_callback_is_signed_retried_and_sent_once(
    api: Api,
    db: AsyncEngine,
    default_models: dict[str, str],
    receiver: Receiver,
    runtimes: dict[str, ModelRuntime],
    dispatchers: tuple[WebhookDispatcher, CallbackDispatcher],
) -> None:
    receiver.failures = 2
    secret = (await api.ok("alice", ROTATE))["rotateCallbackSecret"]["secret"]
    request = {
        "modelId": default_models["iris-species"],
        "input": IRIS_INPUT,
        "callbackUrl": receiver.url,
    }
    submission_id = (await api.ok("alice", CREATE, input=request))["createSubmission"][
        "submission"
    ]["id"]
    await work_off(db, runtimes)
    [row] = await deliver_until(dispatchers, db, DeliveryStatus.SUCCEEDED)
    assert row.attempts == 3
    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    body = Webhook(secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)
    assert body["type"] == "submission.succeeded"
    assert body["data"]["submissionId"] == submission_id
    assert body["data"]["status"] == "SUCCEEDED"
    assert body["data"]["resultId"]
    assert "prediction" in body["data"]

    # The outbox read again from the start (a lost cursor) queues nothing more.
    async with db.begin() as conn:
        await conn.execute(sa.update(tables.outbox_cursors).values(last_event_id=0))
    await dispatchers[0].fan_out_step()
    await dispatchers[1].delivery_step()
    assert len(await callback_rows(db)) == 1
    assert len(receiver.requests) == 3


async def test_a_dispatcher_that_dies_after_claiming_loses_and_doubles_nothing(
    api: Api,
    db: AsyncEngine,
    default_models: dict[str, str],
    receiver: Receiver,
    runtimes: dict[str, ModelRuntime],
    dispatchers: tuple[WebhookDispatcher, CallbackDispatcher],
) -> None:
    await api.ok("alice", ROTATE)
    made = await batch_inference(api, default_models["iris-species"], 3, callbackUrl=receiver.url)
    await work_off(db, runtimes)
    await dispatchers[0].fan_out_step()
    # Claimed and never recorded, as by a process killed mid-send: the lease runs out.
    [lost] = await callbacks.claim_due(
        SqlUnitOfWork(db), limit=10, lease_seconds=0.2, clock=utc_now
    )
    assert lost.delivery.event_type == "batch.completed"
    await asyncio.sleep(0.3)
    [row] = await deliver_until(dispatchers, db, DeliveryStatus.SUCCEEDED)
    assert row.attempts == 2
    [request] = receiver.requests
    assert request.headers["webhook-id"] == f"cb_{lost.delivery.event_id}"
    assert made["batch"]["id"] in request.body.decode()


async def test_a_callback_receiver_that_always_fails_ends_dead(
    api: Api,
    db: AsyncEngine,
    default_models: dict[str, str],
    receiver: Receiver,
    runtimes: dict[str, ModelRuntime],
    dispatchers: tuple[WebhookDispatcher, CallbackDispatcher],
) -> None:
    receiver.failures = -1
    await api.ok("alice", ROTATE)
    await batch_inference(api, default_models["iris-species"], 2, callbackUrl=receiver.url)
    await work_off(db, runtimes)
    [row] = await deliver_until(dispatchers, db, DeliveryStatus.DEAD)
    assert row.attempts == 4
    counts = await callbacks.delivery_counts(SqlUnitOfWork(db))
    assert counts[DeliveryStatus.DEAD] == 1


ENDPOINT = """
mutation($url: String!) {
  createWebhookEndpoint(input: {url: $url, events: [BATCH_COMPLETED]}) { secret }
}"""


async def test_a_webhook_endpoint_gets_batch_completed_once(
    api: Api,
    db: AsyncEngine,
    default_models: dict[str, str],
    receiver: Receiver,
    runtimes: dict[str, ModelRuntime],
    dispatchers: tuple[WebhookDispatcher, CallbackDispatcher],
) -> None:
    secret = (await api.ok("alice", ENDPOINT, url=receiver.url))["createWebhookEndpoint"]["secret"]
    batch_id = (await batch_inference(api, default_models["iris-species"], 4))["batch"]["id"]
    await work_off(db, runtimes)
    deadline = time.monotonic() + 15
    while not receiver.requests and time.monotonic() < deadline:
        await dispatchers[0].fan_out_step()
        await dispatchers[0].delivery_step()
    await dispatchers[0].fan_out_step()
    await dispatchers[0].delivery_step()
    [request] = receiver.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "batch.completed"
    assert body["data"]["batchId"] == batch_id
    assert body["data"]["counts"]["succeeded"] == 4
    assert await callback_rows(db) == []  # no callbackUrl: no callback


async def test_two_workers_finishing_the_last_two_complete_the_batch_once(
    api: Api, db: AsyncEngine, default_models: dict[str, str]
) -> None:
    """The race settle's lock closes: each worker's transaction finishes one of the last two
    submissions; the first to settle sees the other's still RUNNING (uncommitted), so the
    second must see the first's commit, however they interleave."""
    await batch_inference(api, default_models["iris-species"], 2)
    claimed = await inference.claim(
        SqlUnitOfWork(db), inference.WorkerPolicy(max_claim=2), clock=utc_now
    )
    [batch_id] = {s.batch_id for s in claimed}
    assert batch_id is not None
    first, second = SqlUnitOfWork(db), SqlUnitOfWork(db)
    async with first, second:
        for uow, submission in ((first, claimed[0]), (second, claimed[1])):
            ended = ClaimEnd(submission, SubmissionStatus.SUCCEEDED)
            assert await uow.submissions.finish_many([ended], utc_now())
        await settle(first, [batch_id], utc_now())  # sees the second's submission RUNNING
        waiting = asyncio.create_task(settle(second, [batch_id], utc_now()))
        await asyncio.sleep(0.2)
        assert not waiting.done(), "the second settle must wait for the first's lock"
        await first.commit()
        await waiting
        await second.commit()
    assert await count_events(db, "BATCH_COMPLETED") == 1
    done = (await api.ok("alice", BATCH_OF, id=to_global_id("Batch", batch_id)))["batch"]
    assert done["status"] == "COMPLETED"
    assert done["counts"]["succeeded"] == 2


async def test_a_cancelled_submission_calls_back_once_as_cancelled(
    api: Api,
    db: AsyncEngine,
    default_models: dict[str, str],
    receiver: Receiver,
    dispatchers: tuple[WebhookDispatcher, CallbackDispatcher],
) -> None:
    secret = (await api.ok("alice", ROTATE))["rotateCallbackSecret"]["secret"]
    request = {
        "modelId": default_models["iris-species"],
        "input": IRIS_INPUT,
        "callbackUrl": receiver.url,
    }
    created = await api.ok("alice", CREATE, input=request)
    submission_id = created["createSubmission"]["submission"]["id"]
    await api.ok(
        "alice",
        "mutation($id: ID!) { cancelSubmission(id: $id) { submission { id } } }",
        id=submission_id,
    )
    await deliver_until(dispatchers, db, DeliveryStatus.SUCCEEDED)
    [request_seen] = receiver.requests
    body = Webhook(secret).verify(request_seen.body, request_seen.headers)
    assert body["type"] == "submission.cancelled"
    assert body["data"]["submissionId"] == submission_id


async def test_callback_claims_take_turns_across_owners(db: AsyncEngine, api: Api) -> None:
    """One owner's backlog of due callbacks does not hold back another owner's first one."""
    await api.ok("alice", ROTATE)
    await api.ok("bob", ROTATE)
    async with db.begin() as conn:
        owners = dict(
            (await conn.execute(sa.select(tables.users.c.email, tables.users.c.id))).all()
        )
        alice, bob = owners["alice@example.com"], owners["bob@example.com"]
        event = (
            await conn.execute(
                sa.insert(tables.events)
                .values(type="SUBMISSION_SUCCEEDED", owner_id=alice, subject_id=alice, payload={})
                .returning(tables.events.c.id)
            )
        ).scalar_one()
        now = utc_now()
        rows = [(alice, now - timedelta(seconds=60 - n)) for n in range(30)] + [(bob, now)]
        for owner, due_at in rows:  # all of alice's fell due before bob's
            await conn.execute(
                sa.insert(tables.callback_deliveries).values(
                    owner_id=owner,
                    subject_id=uuid.uuid4(),
                    url="http://127.0.0.1:9/cb",
                    event_id=event,
                    event_type="submission.succeeded",
                    payload={},
                    next_attempt_at=due_at,
                )
            )
    async with SqlUnitOfWork(db) as uow:
        claimed = await uow.callbacks.claim(5, utc_now(), utc_now() + timedelta(seconds=30))
        await uow.commit()
    assert len(claimed) == 5
    assert bob in {due.delivery.owner_id for due in claimed}, "bob waits behind alice's backlog"
