"""`assay serve` killed while synchronous runInference calls are in flight: after a restart,
a retry with each call's idempotency key finds every answered prediction, runs each
unanswered one at most once, and no submission or result exists twice."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import to_global_id
from tests.e2e.conftest import Launcher, model_id, token, truncate_all

pytestmark = pytest.mark.e2e

CALLERS = 16
CALLS_PER_CALLER = 200  # a bound: the kill comes long before
ANSWERED_BEFORE_KILL = 150

RUN = """
mutation Run($input: RunInferenceInput!) {
  runInference(input: $input) { submission { id status } result { id } }
}
"""


def iris(rng: random.Random) -> dict[str, float]:
    return {
        "sepal_length_cm": round(rng.uniform(4.3, 7.9), 1),
        "sepal_width_cm": round(rng.uniform(2.0, 4.4), 1),
        "petal_length_cm": round(rng.uniform(1.0, 6.9), 1),
        "petal_width_cm": round(rng.uniform(0.1, 2.5), 1),
    }


async def run(
    client: httpx.AsyncClient, url: str, bearer: str, model: str, key: str, value: Any
) -> dict[str, Any] | None:
    """The payload, or None when the server went away before answering."""
    variables = {"input": {"modelId": model, "input": value, "idempotencyKey": key}}
    try:
        response = await client.post(
            f"{url}/graphql",
            json={"query": RUN, "variables": variables},
            headers={"Authorization": f"Bearer {bearer}"},
        )
    except httpx.TransportError:
        return None
    body = response.json()
    assert not body.get("errors"), body
    payload: dict[str, Any] = body["data"]["runInference"]
    return payload


async def test_killed_server_loses_and_duplicates_no_synchronous_prediction(
    launcher: Launcher,
    postgres_url: str,
    shared_models: Path,
    engine: AsyncEngine,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await truncate_all(engine)
    data_dir = launcher.new_data_dir("sync")
    env = {"ASSAY_MODEL_DIR": str(shared_models), "ASSAY_INFERENCE_RATE_PER_SECOND": "10000"}
    first = launcher.serve("--no-workers", data_dir=data_dir, database_url=postgres_url, env=env)
    bearer = token(data_dir, "kim@example.com", public_url=first.base_url)
    model = model_id(first.base_url, bearer)
    rng = random.Random(7)
    inputs = {f"k-{c}-{n}": iris(rng) for c in range(CALLERS) for n in range(CALLS_PER_CALLER)}
    sent: list[str] = []
    answered: dict[str, str] = {}  # key -> submission id answered before the kill
    enough = asyncio.Event()

    async def caller(c: int) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for n in range(CALLS_PER_CALLER):
                key = f"k-{c}-{n}"
                sent.append(key)
                payload = await run(client, first.base_url, bearer, model, key, inputs[key])
                if payload is None:
                    return
                assert payload["submission"]["status"] == "SUCCEEDED", payload
                answered[key] = payload["submission"]["id"]
                if len(answered) >= ANSWERED_BEFORE_KILL:
                    enough.set()

    callers = [asyncio.create_task(caller(c)) for c in range(CALLERS)]
    await asyncio.wait_for(enough.wait(), 120)
    first.signal(signal.SIGKILL)  # the server process alone, in the middle of the traffic
    assert first.wait(timeout=10) == -signal.SIGKILL
    await asyncio.wait_for(asyncio.gather(*callers), 60)
    in_flight = [key for key in sent if key not in answered]
    assert in_flight, "no call was in flight at the kill"
    at_kill = await stored_ids(engine)
    # Durable before answered: every answer sent names a committed submission.
    assert {key: at_kill.get(key) for key in answered} == answered
    committed_unanswered = [key for key in in_flight if key in at_kill]

    second = launcher.serve(
        "--no-workers", data_dir=data_dir, database_url=postgres_url, port=first.port, env=env
    )
    async with httpx.AsyncClient(timeout=30) as client:
        retried = {
            key: await run(client, second.base_url, bearer, model, key, inputs[key]) for key in sent
        }

    for key, payload in retried.items():
        assert payload is not None
        assert payload["submission"]["status"] == "SUCCEEDED", (key, payload)
        assert payload["result"] is not None, key
        if key in answered:  # the same submission as answered before the kill
            assert payload["submission"]["id"] == answered[key], key
    query = sa.text(
        """
        SELECT s.idempotency_key, count(DISTINCT s.id), count(r.id)
        FROM submissions s LEFT JOIN results r ON r.submission_id = s.id
        GROUP BY s.idempotency_key
        """
    )
    async with engine.connect() as conn:
        stored = {str(k): (int(s), int(r)) for k, s, r in (await conn.execute(query)).all()}
    assert set(stored) == set(sent)
    assert Counter(stored.values()) == Counter({(1, 1): len(sent)})
    # Each group's statistics were in its one statement: counted once, none lost.
    counted = sa.text("SELECT span, sum(predictions) FROM model_stats GROUP BY span")
    async with engine.connect() as conn:
        spans = {int(span): int(total) for span, total in (await conn.execute(counted)).all()}
    assert spans == {60: len(sent), 3600: len(sent)}
    with capsys.disabled():
        print(
            f"\n[runInference kill] answered before the kill: {len(answered)}; in flight:"
            f" {len(in_flight)}, of which {len(committed_unanswered)} committed unanswered;"
            f" after retrying every key: {len(stored)} submissions, each with one result"
        )
    code = second.terminate(timeout=30)
    assert code in (0, 128 + signal.SIGTERM, -signal.SIGTERM), second.describe()


async def stored_ids(engine: AsyncEngine) -> dict[str, str]:
    """Idempotency key -> the global id of its stored submission."""
    query = sa.text("SELECT idempotency_key, id FROM submissions")
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {str(key): to_global_id("Submission", ident) for key, ident in rows}
