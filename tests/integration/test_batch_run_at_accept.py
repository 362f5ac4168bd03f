"""A batch of a model this process runs, accepted while a worker loop here idles, runs
before it is stored: by the answer, every submission is finished with its result and the
events a queued one has, in order, and the batch is completed; the answer still shows the
submissions as accepted. Through build_app's wiring, on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from domain.batches import BatchStatus, batch_payload
from graph.ids import required_id
from persistence.tables import batches, events, results, submissions
from persistence.unit_of_work import SqlUnitOfWork
from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import IRIS_INPUT, JSONDict, TokenFactory, gql

BATCH = """mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id status batch { id } } }
}"""


@pytest.fixture
async def working_app(
    settings: Settings, postgres_url: str, db: AsyncEngine, default_models: dict[str, str]
) -> AsyncIterator[Starlette]:
    """With its workers, started once the database is emptied and the models registered; a
    budget no busy machine exceeds, the first call loading the model from disk."""
    async for app in running_app(
        settings, postgres_url, run_workers=True, inference_batch_inline_ms=10_000
    ):
        yield app


async def _send(client: httpx.AsyncClient, model_id: str, bearer: str) -> list[JSONDict]:
    inputs = [IRIS_INPUT, {**IRIS_INPUT, "petal_length_cm": 5.5, "petal_width_cm": 2.1}]
    variables = {"input": {"modelId": model_id, "inputs": inputs}}
    body = await gql(client, BATCH, variables, token=bearer)
    return list(body["data"]["batchInference"]["submissions"])


async def _statuses(db: AsyncEngine, ids: list[UUID]) -> dict[UUID, str]:
    query = sa.select(submissions.c.id, submissions.c.status).where(submissions.c.id.in_(ids))
    async with db.connect() as conn:
        return {row[0]: row[1] for row in await conn.execute(query)}


async def test_a_batch_run_at_accept_is_finished_and_recorded_when_answered(
    working_app: Starlette, db: AsyncEngine, default_models: dict[str, str], token: TokenFactory
) -> None:
    transport = httpx.ASGITransport(app=working_app)
    bearer = token("quick@example.com")
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for _ in range(50):
            answered = await _send(client, default_models["iris-species"], bearer)
            ids = [required_id(s["id"], "Submission") for s in answered]
            stored = await _statuses(db, ids)  # read at once: nothing is left to run
            if set(stored.values()) == {"SUCCEEDED"}:
                break
            # Sent before a worker loop here idled (just started, or busy with the last
            # one): stored for the loops. Once they are done, they idle again.
            for _ in range(200):
                if set((await _statuses(db, ids)).values()) == {"SUCCEEDED"}:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)

    assert [s["status"] for s in answered] == ["PENDING", "PENDING"]  # as accepted
    batch_id = required_id(answered[0]["batch"]["id"], "Batch")
    assert stored == {i: "SUCCEEDED" for i in ids}
    async with db.connect() as conn:
        predicted = dict(
            (await conn.execute(sa.select(results.c.submission_id, results.c.prediction))).all()
        )
        told = (
            await conn.execute(
                sa.select(events.c.subject_id, events.c.type, events.c.payload).order_by(
                    events.c.id
                )
            )
        ).all()
        finished = (
            await conn.execute(sa.select(batches.c.completed_at).where(batches.c.id == batch_id))
        ).scalar_one()
    assert [predicted[i]["species"] for i in ids] == ["setosa", "virginica"]
    for i in ids:
        assert [(t, p.get("status")) for s, t, p in told if s == i] == [
            ("SUBMISSION_CREATED", "PENDING"),
            ("SUBMISSION_UPDATED", "RUNNING"),
            ("SUBMISSION_SUCCEEDED", "SUCCEEDED"),
        ]
    announced = [p["submissionId"] for _, t, p in told if t == "RESULT_CREATED"]
    assert {s["id"] for s in answered} <= set(announced)
    assert finished is not None
    # Completed once, its event after its submissions', as settle would have written it.
    async with SqlUnitOfWork(db) as uow:
        [batch] = await uow.batches.get_many([batch_id])
    assert batch is not None
    assert batch.status is BatchStatus.COMPLETED
    completions = [(n, p) for n, (s, _, p) in enumerate(told) if s == batch_id]
    assert [p for _, p in completions] == [batch_payload(batch)]
    assert completions[0][0] > max(n for n, (s, _, _) in enumerate(told) if s in ids)
