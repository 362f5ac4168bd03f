"""nodes(ids:): at most 100 ids, and one statement per type named, whatever the id count."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import parse_id, to_global_id
from tests.factories import make_model, make_submission
from tests.integration.conftest import StatementCounter, TokenFactory, gql, only_error

NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"


async def _statements(
    client: AsyncClient, bearer: str, ids: list[str], counter: StatementCounter
) -> tuple[int, dict[str, object]]:
    before = counter.count
    body = await gql(client, NODES, {"ids": ids}, token=bearer)
    return counter.count - before, body


async def test_nodes_costs_one_statement_per_type_not_per_id(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, app_statements: StatementCounter
) -> None:
    bearer = token("nodes@example.com")
    viewer = (await gql(client, "{ viewer { id } }", token=bearer))["data"]["viewer"]["id"]
    owner = parse_id(viewer, "User")
    assert owner is not None
    model = await make_model(db, name=f"m-{uuid.uuid4().hex[:6]}")
    mine = [to_global_id("Submission", await make_submission(db, owner, model)) for _ in range(49)]
    missing = [to_global_id("Asset", uuid.uuid4()) for _ in range(50)]

    few, few_body = await _statements(client, bearer, [viewer, mine[0], missing[0]], app_statements)
    many, many_body = await _statements(client, bearer, [viewer, *mine, *missing], app_statements)

    assert "errors" not in many_body, many_body
    found = many_body["data"]["nodes"]  # type: ignore[index]
    assert [n["__typename"] if n else None for n in found] == (
        ["User"] + ["Submission"] * 49 + [None] * 50
    )
    assert "errors" not in few_body
    assert many == few  # one statement per type, not 100


async def test_more_than_100_ids_is_bad_user_input(
    client: AsyncClient, token: TokenFactory, app_statements: StatementCounter
) -> None:
    ids = [to_global_id("Submission", uuid.uuid4()) for _ in range(101)]

    _, body = await _statements(client, token("many@example.com"), ids, app_statements)

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "100" in error["extensions"]["fields"]["ids"]
