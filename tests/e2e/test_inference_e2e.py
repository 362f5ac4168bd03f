"""Inference through a real `assay serve` with its workers, and `assay seed`, on PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import parse_id
from tests.e2e.conftest import (
    AssayProcess,
    Launcher,
    agql,
    base_env,
    model_id,
    run_assay,
    token,
    truncate_all,
    wait_for,
)

pytestmark = pytest.mark.e2e

SETOSA = {
    "sepal_length_cm": 5.1,
    "sepal_width_cm": 3.5,
    "petal_length_cm": 1.4,
    "petal_width_cm": 0.2,
}

RUN = """
mutation Run($input: RunInferenceInput!) {
  runInference(input: $input) {
    submission { id status attempts }
    result { prediction confidence alternatives { value confidence } modelVersion }
  }
}
"""

BATCH = """
mutation Batch($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id status } }
}
"""

SUCCEEDED_COUNT = "{ submissions(first: 100, status: SUCCEEDED) { totalCount } }"

RESULTS_OF = """
query Results($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Submission { id status results { id } } }
}
"""


@dataclass
class Api:
    server: AssayProcess
    token: str
    iris: str

    @property
    def url(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
async def api(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> Api:
    """A server with its inference workers on the session database, emptied first.

    The server registers the default models when it starts, so they exist after the truncate.
    """
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("api")
    server = module_launcher.serve(
        data_dir=data_dir,
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models), "ASSAY_RUN_WORKERS": "true"},
        healthy=False,
    )
    # While the server starts: the signing key is created atomically by whichever comes first.
    bearer = token(data_dir, "ada@example.com", ["admin"], name="Ada", public_url=server.base_url)
    server.wait_healthy()
    return Api(server, bearer, model_id(server.base_url, bearer))


def iris_inputs(count: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [
        {
            "sepal_length_cm": round(rng.uniform(4.3, 7.9), 1),
            "sepal_width_cm": round(rng.uniform(2.0, 4.4), 1),
            "petal_length_cm": round(rng.uniform(1.0, 6.9), 1),
            "petal_width_cm": round(rng.uniform(0.1, 2.5), 1),
        }
        for _ in range(count)
    ]


async def batch(api: Api, inputs: list[dict[str, float]]) -> list[str]:
    data = await agql(
        api.url,
        BATCH,
        {"input": {"modelId": api.iris, "inputs": inputs}},
        api.token,
        http_timeout=60,
    )
    submissions: list[dict[str, Any]] = data["batchInference"]["submissions"]
    assert len(submissions) == len(inputs)
    assert {s["status"] for s in submissions} == {"PENDING"}
    return [s["id"] for s in submissions]


async def succeeded(api: Api) -> int:
    count: int = (await agql(api.url, SUCCEEDED_COUNT, token=api.token))["submissions"][
        "totalCount"
    ]
    return count


def uuids(global_ids: list[str]) -> list[UUID]:
    found = [parse_id(ident, "Submission") for ident in global_ids]
    return [ident for ident in found if ident is not None]


async def test_run_inference_on_iris(api: Api) -> None:
    data = await agql(
        api.url, RUN, {"input": {"modelId": api.iris, "input": SETOSA}}, api.token, http_timeout=60
    )
    payload = data["runInference"]
    assert payload["submission"]["status"] == "SUCCEEDED"
    assert payload["submission"]["attempts"] == 1
    result = payload["result"]
    assert result is not None
    assert result["prediction"]["species"] == "setosa"
    assert result["confidence"] > 0.5
    alternatives = result["alternatives"]
    assert alternatives[0]["value"] == "setosa"
    assert sorted(a["value"] for a in alternatives) == ["setosa", "versicolor", "virginica"]
    confidences = [a["confidence"] for a in alternatives]
    assert confidences == sorted(confidences, reverse=True), "alternatives are not ranked"
    assert confidences[0] == pytest.approx(result["confidence"])
    assert result["modelVersion"] == "1.0.0"


async def succeeded_among(engine: AsyncEngine, ids: list[UUID]) -> int:
    query = sa.text(
        "SELECT count(*) FROM submissions WHERE id = ANY(:ids) AND status = 'SUCCEEDED'"
    )
    async with engine.connect() as conn:
        count: int = (await conn.execute(query, {"ids": ids})).scalar_one()
    return count


async def test_batch_of_200_all_succeed_once(api: Api, engine: AsyncEngine) -> None:
    before = await succeeded(api)
    ids = await batch(api, iris_inputs(200, seed=200))

    # How a client follows a batch: the viewer's SUCCEEDED count through the contract.
    async def all_done() -> bool:
        return await succeeded(api) == before + 200

    await wait_for(all_done, within=60, interval=0.25, message="200 more SUCCEEDED submissions")

    nodes: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        page = await agql(api.url, RESULTS_OF, {"ids": ids[start : start + 100]}, api.token)
        nodes += page["nodes"]
    assert [n["id"] for n in nodes] == ids
    assert {n["status"] for n in nodes} == {"SUCCEEDED"}
    assert [len(n["results"]) for n in nodes] == [1] * 200

    page = await agql(
        api.url,
        "{ submissions(first: 100) { edges { node { id results { id } } } } }",
        token=api.token,
    )
    edges = page["submissions"]["edges"]
    assert len(edges) == 100
    assert all(len(edge["node"]["results"]) == 1 for edge in edges)

    async with engine.connect() as conn:
        duplicated = (
            await conn.execute(
                sa.text(
                    "SELECT submission_id, count(*) FROM results WHERE submission_id = ANY(:ids)"
                    " GROUP BY submission_id HAVING count(*) != 1"
                ),
                {"ids": uuids(ids)},
            )
        ).all()
    assert duplicated == []


async def test_throughput_of_a_1000_batch(
    api: Api, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = uuids(await batch(api, iris_inputs(1000, seed=1000)))
    responded = time.monotonic()

    async def finished() -> bool:
        return await succeeded_among(engine, ids) == len(ids)

    await wait_for(finished, within=60, interval=0.02, message="1000 SUCCEEDED submissions")
    elapsed = time.monotonic() - responded
    with capsys.disabled():
        print(
            f"\n[throughput] 1000 submissions SUCCEEDED {elapsed:.2f} s after the batch"
            f" response: {1000 / elapsed:.0f} submissions/s"
        )


async def test_seed_creates_users_and_finished_submissions(
    db: AsyncEngine, launcher: Launcher, postgres_url: str, shared_models: Path
) -> None:
    env = base_env(
        launcher.new_data_dir("seed"),
        database_url=postgres_url,
        extra={"ASSAY_MODEL_DIR": str(shared_models)},
    )
    done = await asyncio.to_thread(
        run_assay, ["seed", "--users", "3", "--submissions-per-user", "4"], env, timeout=90
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "seeded 3 users and 12 submissions" in done.stdout

    async with db.connect() as conn:
        users = (await conn.execute(sa.text("SELECT count(*) FROM users"))).scalar_one()
        statuses = (
            await conn.execute(sa.text("SELECT status, count(*) FROM submissions GROUP BY status"))
        ).all()
        results = (
            await conn.execute(
                sa.text(
                    "SELECT s.id, count(r.id) FROM submissions s"
                    " LEFT JOIN results r ON r.submission_id = s.id GROUP BY s.id"
                )
            )
        ).all()
    assert users == 3
    assert {str(status): int(count) for status, count in statuses} == {"SUCCEEDED": 12}
    assert len(results) == 12
    assert all(count == 1 for _, count in results)
