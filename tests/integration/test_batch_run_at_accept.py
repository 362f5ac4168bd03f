"""A batch of a model this process runs, accepted while a worker loop here idles, runs
before it is stored: by the answer, every submission is finished with its result and the
events a queued one has, in order, and the batch is completed; the answer still shows the
submissions as accepted. Through build_app's wiring, on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.ids import required_id
from persistence.tables import batches, events, results, submissions
from server.settings import Settings
from tests.integration.bootstrapped import BASE_URL, running_app
from tests.integration.conftest import IRIS_INPUT, TokenFactory, gql

BATCH = """mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id status } }
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


async def test_a_batch_run_at_accept_is_finished_and_recorded_when_answered(
    working_app: Starlette, db: AsyncEngine, default_models: dict[str, str], token: TokenFactory
) -> None:
    inputs = [IRIS_INPUT, {**IRIS_INPUT, "petal_length_cm": 5.5, "petal_width_cm": 2.1}]
    transport = httpx.ASGITransport(app=working_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        body = await gql(
            client,
            BATCH,
            {"input": {"modelId": default_models["iris-species"], "inputs": inputs}},
            token=token("quick@example.com"),
        )

    answered = body["data"]["batchInference"]["submissions"]
    assert [s["status"] for s in answered] == ["PENDING", "PENDING"]  # as accepted
    ids = [required_id(s["id"], "Submission") for s in answered]
    async with db.connect() as conn:  # read at once: nothing is left to run
        stored = dict((await conn.execute(sa.select(submissions.c.id, submissions.c.status))).all())
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
        [completed_at] = (await conn.execute(sa.select(batches.c.completed_at))).scalars()

    assert stored == {i: "SUCCEEDED" for i in ids}
    assert [predicted[i]["species"] for i in ids] == ["setosa", "virginica"]
    for i in ids:
        assert [(t, p.get("status")) for s, t, p in told if s == i] == [
            ("SUBMISSION_CREATED", "PENDING"),
            ("SUBMISSION_UPDATED", "RUNNING"),
            ("SUBMISSION_SUCCEEDED", "SUCCEEDED"),
        ]
    announced = [p["submissionId"] for _, t, p in told if t == "RESULT_CREATED"]
    assert sorted(announced) == sorted(s["id"] for s in answered)
    assert [t for _, t, _ in told][-1] == "BATCH_COMPLETED"
    assert completed_at is not None
