"""Submission metadata over HTTP: set by each creating mutation, returned, filtered by one
pair; bad labels are BAD_USER_INPUT naming the field, and then nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.history import SubmissionFilter
from domain.submissions import MetadataEntry
from persistence.driver import _arguments, _compile
from persistence.projections import FILTERS
from persistence.submissions import _filter_values, _filtered, _shape
from persistence.tables import batches, events, submissions
from tests.factories import make_user
from tests.integration.conftest import IRIS_INPUT, TokenFactory, gql, only_error

CREATE = """
mutation($input: CreateSubmissionInput!) {
  createSubmission(input: $input) { submission { id metadata { key value } } }
}"""
RUN = """
mutation($input: RunInferenceInput!) {
  runInference(input: $input) { submission { id status metadata { key value } } }
}"""
BATCH = """
mutation($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id metadata { key value } } }
}"""
BY_PAIR = """
query($key: String!, $value: String!) {
  viewer { submissions(filter: {metadata: {key: $key, value: $value}}) {
    totalCount edges { node { id } } } }
  submissions(filter: {metadata: {key: $key, value: $value}}, orderBy: CREATED_AT_ASC) {
    totalCount edges { node { id metadata { key value } } } }
}"""
ONE = "query($id: ID!) { submission(id: $id) { metadata { key value } } }"
LABELS = [{"key": "team", "value": "red"}, {"key": "order", "value": "A-17"}]
SORTED = sorted(LABELS, key=lambda m: m["key"])


@pytest.fixture
async def me(db: AsyncEngine, token: TokenFactory) -> str:
    await make_user(db, "meta@example.com")
    return token("meta@example.com")


async def _rows(db: AsyncEngine) -> tuple[int, int, int]:
    async with db.connect() as conn:
        counted = [
            (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
            for t in (submissions, batches, events)
        ]
    return counted[0], counted[1], counted[2]


def _input(mutation: str, model: str, metadata: Any) -> dict[str, Any]:
    if mutation == BATCH:
        return {"modelId": model, "inputs": [IRIS_INPUT, IRIS_INPUT], "metadata": metadata}
    return {"modelId": model, "input": IRIS_INPUT, "metadata": metadata}


def _made(body: dict[str, Any]) -> list[dict[str, Any]]:
    payload = next(iter(body["data"].values()))
    return payload["submissions"] if "submissions" in payload else [payload["submission"]]


@pytest.mark.parametrize("mutation", [CREATE, RUN, BATCH], ids=["create", "run", "batch"])
async def test_each_creating_mutation_stores_the_labels_sorted_by_key(
    client: AsyncClient, default_models: dict[str, str], me: str, mutation: str
) -> None:
    body = await gql(
        client, mutation, {"input": _input(mutation, default_models["iris-species"], LABELS)}, me
    )

    made = _made(body)
    assert [s["metadata"] for s in made] == [SORTED] * len(made)
    for submission in made:
        read = await gql(client, ONE, {"id": submission["id"]}, me)
        assert read["data"]["submission"]["metadata"] == SORTED


async def test_without_labels_the_metadata_is_empty(
    client: AsyncClient, default_models: dict[str, str], me: str
) -> None:
    body = await gql(
        client,
        CREATE,
        {"input": {"modelId": default_models["iris-species"], "input": IRIS_INPUT}},
        me,
    )

    assert _made(body)[0]["metadata"] == []


async def test_the_filter_keeps_the_submissions_with_that_pair_on_every_list(
    client: AsyncClient, default_models: dict[str, str], me: str, token: TokenFactory
) -> None:
    model = default_models["iris-species"]
    red = [
        _made(await gql(client, CREATE, {"input": _input(CREATE, model, LABELS)}, me))[0]["id"]
        for _ in range(2)
    ]
    blue = [{"key": "team", "value": "blue"}]
    await gql(client, CREATE, {"input": _input(CREATE, model, blue)}, me)
    await gql(client, CREATE, {"input": _input(CREATE, model, None)}, me)

    body = await gql(client, BY_PAIR, {"key": "team", "value": "red"}, me)

    assert body["data"]["viewer"]["submissions"]["totalCount"] == 2
    assert [e["node"]["id"] for e in body["data"]["viewer"]["submissions"]["edges"]] == red[::-1]
    assert [e["node"]["id"] for e in body["data"]["submissions"]["edges"]] == red
    nothing = await gql(client, BY_PAIR, {"key": "team", "value": "re"}, me)
    assert nothing["data"]["submissions"]["totalCount"] == 0
    others = await gql(
        client, BY_PAIR, {"key": "team", "value": "red"}, token("stranger@example.com")
    )
    assert others["data"]["submissions"]["totalCount"] == 0


TOO_MANY = [{"key": f"k{n}", "value": "v"} for n in range(17)]
BAD_LABELS = [
    (TOO_MANY, "input.metadata"),
    ([{"key": "", "value": "v"}], "input.metadata.0.key"),
    ([{"key": "ok", "value": "v"}, {"key": "k" * 65, "value": "v"}], "input.metadata.1.key"),
    ([{"key": "tab\there", "value": "v"}], "input.metadata.0.key"),
    ([{"key": "ok", "value": "v" * 257}], "input.metadata.0.value"),
    ([{"key": "same", "value": "1"}, {"key": "same", "value": "2"}], "input.metadata.1.key"),
]


@pytest.mark.parametrize("mutation", [CREATE, RUN, BATCH], ids=["create", "run", "batch"])
@pytest.mark.parametrize(("labels", "path"), BAD_LABELS, ids=[p for _, p in BAD_LABELS])
async def test_bad_labels_are_bad_user_input_naming_the_field_and_store_nothing(
    client: AsyncClient,
    db: AsyncEngine,
    default_models: dict[str, str],
    me: str,
    mutation: str,
    labels: list[dict[str, str]],
    path: str,
) -> None:
    before = await _rows(db)

    body = await gql(
        client, mutation, {"input": _input(mutation, default_models["iris-species"], labels)}, me
    )

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert list(error["extensions"]["fields"]) == [path]
    assert await _rows(db) == before


async def test_the_most_labels_of_the_longest_sizes_are_accepted(
    client: AsyncClient, default_models: dict[str, str], me: str
) -> None:
    labels = [{"key": f"{n:02}" + "k" * 62, "value": "v" * 256} for n in range(16)]

    body = await gql(
        client, CREATE, {"input": _input(CREATE, default_models["iris-species"], labels)}, me
    )

    assert _made(body)[0]["metadata"] == labels


@pytest.mark.parametrize(
    ("pair", "path"),
    [
        ({"key": "", "value": "x"}, "filter.metadata.key"),
        ({"key": "k", "value": "v" * 257}, "filter.metadata.value"),
    ],
)
async def test_a_bad_filter_pair_is_bad_user_input_naming_it(
    client: AsyncClient, me: str, pair: dict[str, str], path: str
) -> None:
    body = await gql(client, BY_PAIR, pair, me)

    errors = body["errors"]
    assert {e["extensions"]["code"] for e in errors} == {"BAD_USER_INPUT"}
    assert {tuple(e["extensions"]["fields"]) for e in errors} == {(path,)}


async def _plan(db: AsyncEngine, sql: str, *arguments: object) -> str:
    async with db.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            await driver.execute("SET LOCAL enable_seqscan = off")
            rows = await driver.fetch("EXPLAIN (COSTS OFF) " + sql, *arguments)
    return "\n".join(r[0] for r in rows)


async def test_both_metadata_filters_can_use_the_index_that_holds_only_labelled_rows(
    db: AsyncEngine,
) -> None:
    # The index leaves out rows without metadata (they cost it nothing on insert and on each
    # status change); a filter that did not state its predicate could not use it at all.
    pair = MetadataEntry("run", "a")
    where = _filtered(_shape(None, SubmissionFilter(metadata=pair)))
    statement = sa.select(submissions.c.id).where(*where)
    async with db.connect() as conn:
        sync = conn.sync_connection
        assert sync is not None
        compiled = _compile(statement, sync.dialect)
    values = _filter_values(None, SubmissionFilter(metadata=pair))
    by_repository = await _plan(db, compiled.sql, *_arguments(compiled, values))
    condition = FILTERS["metadata"].sql.format(c="s", v="$1")
    by_projection = await _plan(
        db,
        f"SELECT s.id FROM submissions s WHERE {condition}",  # noqa: S608 - the module's own SQL
        '[{"key": "run", "value": "a"}]',
    )
    for plan in (by_repository, by_projection):
        assert "Bitmap Index Scan on ix_submissions_metadata" in plan, plan
