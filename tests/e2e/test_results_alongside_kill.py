"""`assay serve` killed after a batch's results committed alongside its transaction and
before that transaction committed (persistence/alongside.py): the batch was never answered,
nothing of it is readable, and the undo every serving process runs removes its results."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import parse_id
from persistence.alongside import undo_unconfirmed
from tests.e2e.conftest import Launcher, agql, model_id, token, truncate_all, wait_for
from tests.e2e.test_inference_e2e import iris_inputs

pytestmark = pytest.mark.e2e

BATCH = """
mutation Batch($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id status } }
}
"""
INPUTS = 300


async def _scalar(engine: AsyncEngine, query: str, **values: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(query), values)).scalar_one()


async def test_a_server_killed_between_a_batchs_two_commits_leaves_nothing_of_it(
    launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> None:
    await truncate_all(engine)
    data_dir = launcher.new_data_dir("alongside")
    server = launcher.serve(
        data_dir=data_dir,
        database_url=postgres_url,
        env={
            "ASSAY_MODEL_DIR": str(shared_models),
            "ASSAY_RUN_WORKERS": "true",
            # Run at accept however loaded the machine: the path that writes alongside.
            "ASSAY_INFERENCE_BATCH_INLINE_MS": "5000",
        },
        healthy=False,
    )
    bearer = token(data_dir, "ada@example.com", public_url=server.base_url)
    server.wait_healthy()
    iris = model_id(server.base_url, bearer)
    model = parse_id(iris, "Model")

    # A first batch: stored whole, and the model's timings row exists for the lock below.
    first = await agql(
        server.base_url,
        BATCH,
        {"input": {"modelId": iris, "inputs": iris_inputs(50, seed=1)}},
        bearer,
    )
    kept = [parse_id(s["id"], "Submission") for s in first["batchInference"]["submissions"]]

    async def first_stored() -> bool:
        query = "SELECT count(*) FROM results WHERE submission_id = ANY(:ids)"
        has_timings = await _scalar(
            engine, "SELECT count(*) FROM model_timings WHERE model_id = :m", m=model
        )
        return bool(has_timings) and await _scalar(engine, query, ids=kept) == len(kept)

    await wait_for(first_stored, within=60, message="the first batch stored")
    await asyncio.sleep(0.5)  # the claim loops idle again: the next batch runs at accept

    async with engine.connect() as holder:
        # The batch's transaction records the model's timings after its results and events:
        # held here, it waits there, after its results committed alongside.
        await holder.execute(
            sa.text("SELECT 1 FROM model_timings WHERE model_id = :m FOR UPDATE"), {"m": model}
        )
        async with httpx.AsyncClient(timeout=60) as client:
            sending = asyncio.ensure_future(
                client.post(
                    f"{server.base_url}/graphql",
                    json={
                        "query": BATCH,
                        "variables": {
                            "input": {"modelId": iris, "inputs": iris_inputs(INPUTS, seed=2)}
                        },
                    },
                    headers={"Authorization": f"Bearer {bearer}"},
                )
            )

            async def written_alongside() -> bool:
                waiting = await _scalar(engine, "SELECT count(*) FROM unconfirmed_results")
                return bool(waiting)

            await wait_for(written_alongside, within=60, message="results written alongside")
            server.signal(signal.SIGKILL)
            assert server.wait(timeout=10) == -signal.SIGKILL
            with pytest.raises(httpx.TransportError):
                await sending  # never answered
        await holder.rollback()

    named = await _scalar(engine, "SELECT submission_ids FROM unconfirmed_results")
    assert len(named) == INPUTS
    orphans = "SELECT count(*) FROM results WHERE submission_id = ANY(:ids)"
    assert await _scalar(engine, orphans, ids=named) == INPUTS  # committed alongside
    stored = "SELECT count(*) FROM submissions WHERE id = ANY(:ids)"
    assert await _scalar(engine, stored, ids=named) == 0  # the batch's transaction died
    assert await _scalar(engine, "SELECT count(*) FROM batches") == 1  # the first one only

    # What every serving process runs each minute, for rows older than a minute.
    assert await undo_unconfirmed(engine, older_than=timedelta(minutes=5)) == 0
    assert await undo_unconfirmed(engine, older_than=timedelta(0)) == 1
    assert await _scalar(engine, orphans, ids=named) == 0
    assert await _scalar(engine, "SELECT count(*) FROM unconfirmed_results") == 0
    assert await _scalar(engine, orphans, ids=kept) == len(kept)  # the first batch's stay
