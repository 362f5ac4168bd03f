"""runInference on PostgreSQL: answered in this process, a group written with one INSERT per
table, events in the queue path's order, idempotency keys, per-model serving metrics."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from graph.ids import parse_id, to_global_id
from persistence.tables import (
    events,
    model_stats,
    models,
    results,
    submission_assets,
    submissions,
)
from server.bootstrap import build_app
from server.settings import Settings
from tests.factories import make_asset, make_user
from tests.integration.conftest import (
    BASE_URL,
    IRIS_INPUT,
    TokenFactory,
    _running,
    _settings,
    gql,
    only_error,
)

RUN = """
mutation($input: RunInferenceInput!) {
  runInference(input: $input) {
    submission { id status attempts error assets { id } }
    result { id prediction confidence modelVersion }
  }
}
"""
GROUP = 8


@pytest.fixture(scope="module")
async def grouping_app(settings: Settings, postgres_url: str) -> AsyncIterator[Starlette]:
    """Groups of exactly GROUP calls: a long delay that a full group cuts short."""
    variant = _settings(
        settings.data_dir,
        inference_max_batch_size=GROUP,
        inference_max_delay_ms=1000,
        inference_groups_in_flight=1,
    )
    async for running in _running(build_app(variant, postgres_url)):
        yield running


@pytest.fixture
async def grouping_client(
    grouping_app: Starlette, db: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=grouping_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def inserts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[tuple[str, ...]]]:
    """Statements that INSERT, sent by any engine of this process while the test runs (through
    SQLAlchemy or straight on asyncpg, see persistence/driver.py), by the tables each inserts
    into (a WITH of several INSERTs names them all)."""
    seen: Counter[tuple[str, ...]] = Counter()

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        words = statement.replace("(", " ").split()
        tables = tuple(
            words[n + 2] for n in range(len(words) - 2) if words[n : n + 2] == ["INSERT", "INTO"]
        )
        if tables:
            seen[tables] += 1

    fetch = asyncpg.connection.Connection.fetch

    async def fetched(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        count(None, None, query)
        return await fetch(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", fetched)
    event.listen(Engine, "before_cursor_execute", count)
    yield seen
    event.remove(Engine, "before_cursor_execute", count)


async def _rows(db: AsyncEngine, statement: Any) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(statement)).all())


def _run(model_id: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "input": {"modelId": model_id, "input": IRIS_INPUT if value is None else value, **extra}
    }


async def test_run_inference_answers_with_its_stored_result_and_events_in_order(
    db: AsyncEngine, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    body = await gql(client, RUN, _run(default_models["iris-species"]), token("amy@example.com"))

    payload = body["data"]["runInference"]
    assert payload["submission"]["status"] == "SUCCEEDED"
    assert payload["submission"]["attempts"] == 1
    assert payload["result"]["prediction"]["species"] == "setosa"
    ident = parse_id(payload["submission"]["id"], "Submission")
    [(status, attempts)] = await _rows(db, sa.select(submissions.c.status, submissions.c.attempts))
    assert (status, attempts) == ("SUCCEEDED", 1)
    assert len(await _rows(db, sa.select(results.c.id))) == 1
    trail = await _rows(
        db,
        sa.select(events.c.type, events.c.payload["status"].astext)
        .where(events.c.subject_id == ident)
        .order_by(events.c.id),
    )
    assert [tuple(row) for row in trail] == [
        ("SUBMISSION_CREATED", "PENDING"),
        ("SUBMISSION_UPDATED", "RUNNING"),
        ("SUBMISSION_SUCCEEDED", "SUCCEEDED"),
    ]


async def test_a_group_of_concurrent_calls_is_written_with_one_statement(
    db: AsyncEngine,
    grouping_client: httpx.AsyncClient,
    token: TokenFactory,
    default_models: dict[str, str],
    inserts: Counter[tuple[str, ...]],
) -> None:
    iris = default_models["iris-species"]
    callers = [token(f"user{n}@example.com") for n in range(GROUP)]
    for tok in callers:  # sign each caller in first: the first request inserts the user
        await gql(grouping_client, "{ viewer { id } }", token=tok)
    inserts.clear()
    inputs = [{**IRIS_INPUT, "petal_length_cm": 1.0 + n / 2} for n in range(GROUP)]

    bodies = await asyncio.gather(
        *(gql(grouping_client, RUN, _run(iris, i), t) for i, t in zip(inputs, callers, strict=True))
    )

    answers = [b["data"]["runInference"] for b in bodies]
    assert [a["submission"]["status"] for a in answers] == ["SUCCEEDED"] * GROUP
    assert len({a["submission"]["id"] for a in answers}) == GROUP
    # One statement for the group and the model's statistics (this minute's rollup upsert)
    assert inserts == Counter({("submissions", "results", "events", "model_stats"): 1})
    assert await _counted(db) == (GROUP, GROUP)
    assert len(await _rows(db, sa.select(submissions.c.id))) == GROUP
    assert len(await _rows(db, sa.select(results.c.id))) == GROUP
    assert len(await _rows(db, sa.select(events.c.id))) == 4 * GROUP
    # each caller its own answer: the result of its own input
    for answer, tok in zip(answers, callers, strict=True):
        read = await gql(
            grouping_client,
            "query($id: ID!) { submission(id: $id) { input latestResult { id } } }",
            {"id": answer["submission"]["id"]},
            tok,
        )
        assert read["data"]["submission"]["latestResult"]["id"] == answer["result"]["id"]


async def test_concurrent_calls_with_one_idempotency_key_give_one_submission(
    db: AsyncEngine,
    grouping_client: httpx.AsyncClient,
    token: TokenFactory,
    default_models: dict[str, str],
) -> None:
    tok = token("amy@example.com")
    await gql(grouping_client, "{ viewer { id } }", token=tok)
    variables = _run(default_models["iris-species"], idempotencyKey="order-7")

    bodies = await asyncio.gather(
        *(gql(grouping_client, RUN, variables, tok) for _ in range(GROUP))
    )

    assert [b.get("errors") for b in bodies] == [None] * GROUP
    answers = [b["data"]["runInference"] for b in bodies]
    assert len({a["submission"]["id"] for a in answers}) == 1
    assert len({a["result"]["id"] for a in answers}) == 1
    assert len(await _rows(db, sa.select(submissions.c.id))) == 1
    assert len(await _rows(db, sa.select(results.c.id))) == 1
    assert len(await _rows(db, sa.select(events.c.id))) == 4  # the replays wrote none
    assert await _counted(db) == (1, 1)  # nor did they count in the statistics


async def _counted(db: AsyncEngine) -> tuple[int, int]:
    """Predictions in the model's minute rows and in its hour rows (all shards)."""
    spans = await _rows(
        db,
        sa.select(model_stats.c.span, sa.func.sum(model_stats.c.predictions))
        .group_by(model_stats.c.span)
        .order_by(model_stats.c.span),
    )
    by_span = {span: int(total) for span, total in spans}
    return by_span.get(60, 0), by_span.get(3600, 0)


@pytest.mark.parametrize("table", ["events", "model_stats"])
async def test_a_group_whose_statement_fails_leaves_neither_work_nor_statistics(
    db: AsyncEngine,
    grouping_client: httpx.AsyncClient,
    token: TokenFactory,
    default_models: dict[str, str],
    table: str,
) -> None:
    callers = [token(f"user{n}@example.com") for n in range(GROUP)]
    for tok in callers:
        await gql(grouping_client, "{ viewer { id } }", token=tok)
    iris = default_models["iris-species"]
    async with db.begin() as conn:  # a refusal inside the group's one statement, at its end
        await conn.execute(sa.text(_REFUSE_FUNCTION))
        await conn.execute(
            sa.text(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} EXECUTE FUNCTION refuse()")
        )
    try:
        bodies = await asyncio.gather(*(gql(grouping_client, RUN, _run(iris), t) for t in callers))
    finally:
        async with db.begin() as conn:
            await conn.execute(sa.text(f"DROP TRIGGER refuse ON {table}"))

    assert all(body.get("errors") for body in bodies)
    assert await _rows(db, sa.select(submissions.c.id)) == []
    assert await _rows(db, sa.select(results.c.id)) == []
    assert await _rows(db, sa.select(events.c.id)) == []
    assert await _counted(db) == (0, 0)
    # the same calls, once nothing refuses, are written whole with their statistics
    bodies = await asyncio.gather(*(gql(grouping_client, RUN, _run(iris), t) for t in callers))
    assert [b.get("errors") for b in bodies] == [None] * GROUP
    assert len(await _rows(db, sa.select(submissions.c.id))) == GROUP
    assert await _counted(db) == (GROUP, GROUP)


_REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'refused by the test'; END $$
"""


async def test_a_retry_with_the_key_returns_the_first_submission_and_result(
    db: AsyncEngine, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    tok = token("amy@example.com")
    variables = _run(default_models["iris-species"], idempotencyKey="order-8")

    first = await gql(client, RUN, variables, tok)
    again = await gql(client, RUN, variables, tok)
    other = await gql(
        client,
        RUN,
        _run(
            default_models["iris-species"],
            {**IRIS_INPUT, "sepal_length_cm": 7.0},
            idempotencyKey="order-8",
        ),
        tok,
    )

    assert again["data"] == first["data"]
    assert only_error(other)["extensions"]["code"] == "CONFLICT"
    assert len(await _rows(db, sa.select(submissions.c.id))) == 1


async def test_invalid_input_or_anothers_asset_is_bad_user_input_and_stores_nothing(
    db: AsyncEngine, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    iris = default_models["iris-species"]
    bob = await make_user(db, "bob@example.com")
    bobs = to_global_id("Asset", await make_asset(db, bob))
    tok = token("amy@example.com")

    bad = await gql(client, RUN, _run(iris, {**IRIS_INPUT, "petal_width_cm": "wide"}), tok)
    foreign = await gql(client, RUN, _run(iris, assetIds=[bobs]), tok)
    long_key = await gql(client, RUN, _run(iris, idempotencyKey="k" * 201), tok)

    assert list(only_error(bad)["extensions"]["fields"]) == ["input.input.petal_width_cm"]
    assert list(only_error(foreign)["extensions"]["fields"]) == ["input.assetIds.0"]
    assert list(only_error(long_key)["extensions"]["fields"]) == ["input.idempotencyKey"]
    assert await _rows(db, sa.select(submissions.c.id)) == []
    assert await _rows(db, sa.select(events.c.id)) == []


async def test_run_inference_with_own_asset_lists_it(
    db: AsyncEngine, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    amy = await make_user(db, "amy@example.com")
    asset = to_global_id("Asset", await make_asset(db, amy))

    body = await gql(
        client,
        RUN,
        _run(default_models["iris-species"], assetIds=[asset]),
        token("amy@example.com"),
    )

    assert body["data"]["runInference"]["submission"]["assets"] == [{"id": asset}]
    assert len(await _rows(db, sa.select(submission_assets.c.asset_id))) == 1


async def test_serving_metrics_by_model_and_version_follow_a_prediction(
    client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    await gql(client, RUN, _run(default_models["iris-species"]), token("amy@example.com"))

    text = (await client.get("/metrics")).text

    labels = '{model="iris-species",version="1.0.0"}'
    for name in (
        "assay_inference_model_seconds_count",
        "assay_inference_queue_wait_seconds_count",
        "assay_inference_latency_seconds_count",
        "assay_inference_batch_size_count",
    ):
        [line] = [row for row in text.splitlines() if row.startswith(name + labels)]
        assert float(line.split()[-1]) >= 1, line


async def test_a_model_deactivated_or_registered_again_after_a_call_is_read_again(
    db: AsyncEngine, client: httpx.AsyncClient, token: TokenFactory, default_models: dict[str, str]
) -> None:
    iris, tok = default_models["iris-species"], token("amy@example.com")
    model = models.c.id == parse_id(iris, "Model")
    first = await gql(client, RUN, _run(iris), tok)  # the process now holds the model
    try:
        async with db.begin() as conn:
            await conn.execute(sa.update(models).where(model).values(is_active=False))
        refused = await gql(client, RUN, _run(iris), tok)
        async with db.begin() as conn:
            await conn.execute(
                sa.update(models).where(model).values(is_active=True, updated_at=sa.func.now())
            )
        again = await gql(client, RUN, _run(iris), tok)
    finally:
        async with db.begin() as conn:
            await conn.execute(sa.update(models).where(model).values(is_active=True))

    assert first["data"]["runInference"]["submission"]["status"] == "SUCCEEDED"
    assert only_error(refused)["extensions"]["fields"] == {"input.modelId": "names no active model"}
    assert again["data"]["runInference"]["submission"]["status"] == "SUCCEEDED"
    assert len(await _rows(db, sa.select(submissions.c.id))) == 2
