"""Keyset pagination over HTTP: users and nested connections, argument checks, loader batching."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.pagination import Keyset
from graph.ids import to_cursor, to_global_id
from persistence import tables
from tests.factories import BASE_TIME, make_model, make_submission, make_user, next_time
from tests.integration.conftest import (
    JSONDict,
    StatementCounter,
    TokenFactory,
    gql,
    only_error,
)

USERS_PAGE = """
query($first: Int, $after: String) {
  users(first: $first, after: $after, filter: {emailContains: "page-"}) {
    edges { cursor node { email } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""
MY_SUBMISSIONS = """
query($first: Int, $after: String, $status: SubmissionStatus) {
  viewer {
    submissions(first: $first, after: $after, status: $status) {
      totalCount
      edges { cursor node { id status } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""
NESTED = """
query($first: Int) {
  users(first: $first) {
    edges { node { submissions(first: 10) { edges { node {
      results { id } model { id } assets { id }
    } } } } }
  }
}
"""


async def _page_users(db: AsyncEngine, count: int) -> list[str]:
    emails = [f"page-{n:03}@example.com" for n in range(count)]
    for email in emails:
        await make_user(db, email)
    return emails


def _emails(body: JSONDict) -> list[str]:
    return [e["node"]["email"] for e in body["data"]["users"]["edges"]]


def _page_info(body: JSONDict) -> dict[str, Any]:
    info: dict[str, Any] = body["data"]["users"]["pageInfo"]
    return info


@pytest.fixture
def admin(token: TokenFactory) -> str:
    return token("root@example.com", ["admin"])


async def test_empty_users_page_has_no_cursors(client: AsyncClient, admin: str) -> None:
    body = await gql(client, USERS_PAGE, {"first": 5}, admin)

    assert _emails(body) == []
    assert _page_info(body) == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }


async def test_exact_page_has_no_next_page(
    db: AsyncEngine, client: AsyncClient, admin: str
) -> None:
    emails = await _page_users(db, 5)

    body = await gql(client, USERS_PAGE, {"first": 5}, admin)

    assert _emails(body) == emails
    assert _page_info(body)["hasNextPage"] is False


async def test_after_cursor_gives_disjoint_consecutive_pages_in_creation_order(
    db: AsyncEngine, client: AsyncClient, admin: str
) -> None:
    emails = await _page_users(db, 12)

    first = await gql(client, USERS_PAGE, {"first": 5}, admin)
    second = await gql(
        client, USERS_PAGE, {"first": 5, "after": _page_info(first)["endCursor"]}, admin
    )
    last = await gql(
        client, USERS_PAGE, {"first": 5, "after": _page_info(second)["endCursor"]}, admin
    )

    assert _emails(first) == emails[:5]
    assert _emails(second) == emails[5:10]
    assert _emails(last) == emails[10:]
    assert [_page_info(b)["hasNextPage"] for b in (first, second, last)] == [True, True, False]
    assert [_page_info(b)["hasPreviousPage"] for b in (first, second, last)] == [False, True, True]
    edges = second["data"]["users"]["edges"]
    assert _page_info(second)["startCursor"] == edges[0]["cursor"]
    assert _page_info(second)["endCursor"] == edges[-1]["cursor"]


async def test_after_the_last_cursor_is_an_empty_page(
    db: AsyncEngine, client: AsyncClient, admin: str
) -> None:
    await _page_users(db, 3)
    first = await gql(client, USERS_PAGE, {"first": 3}, admin)

    after = await gql(
        client, USERS_PAGE, {"first": 3, "after": _page_info(first)["endCursor"]}, admin
    )

    assert _emails(after) == []
    assert _page_info(after)["hasNextPage"] is False
    assert _page_info(after)["hasPreviousPage"] is True


@pytest.mark.parametrize("cursor", ["garbage!", "", "bm90IGEgY3Vyc29y"])
async def test_bad_cursor_is_bad_user_input_naming_after(
    client: AsyncClient, admin: str, cursor: str
) -> None:
    body = await gql(client, USERS_PAGE, {"first": 5, "after": cursor}, admin)

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "after" in error["extensions"]["fields"]


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_first_out_of_bounds_is_bad_user_input(
    client: AsyncClient, admin: str, first: int
) -> None:
    body = await gql(client, USERS_PAGE, {"first": first}, admin)

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "first" in error["extensions"]["fields"]


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_first_out_of_bounds_in_nested_connection_is_bad_user_input(
    client: AsyncClient, token: TokenFactory, first: int
) -> None:
    body = await gql(client, MY_SUBMISSIONS, {"first": first}, token("amy@example.com"))

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "first" in error["extensions"]["fields"]


async def test_first_100_is_accepted(db: AsyncEngine, client: AsyncClient, admin: str) -> None:
    emails = await _page_users(db, 101)

    body = await gql(client, USERS_PAGE, {"first": 100}, admin)

    assert _emails(body) == emails[:100]
    assert _page_info(body)["hasNextPage"] is True


async def _seed_submissions(db: AsyncEngine, owner: UUID, statuses: list[str]) -> list[UUID]:
    model = await make_model(db)
    return [await make_submission(db, owner, model, status=s) for s in statuses]


def _submissions(body: JSONDict) -> dict[str, Any]:
    connection: dict[str, Any] = body["data"]["viewer"]["submissions"]
    return connection


async def test_nested_submissions_pages_follow_cursors(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")
    ids = await _seed_submissions(db, amy, ["SUCCEEDED"] * 7)
    expected = [to_global_id("Submission", i) for i in reversed(ids)]  # newest first
    tok = token("amy@example.com")

    first = _submissions(await gql(client, MY_SUBMISSIONS, {"first": 3}, tok))
    second = _submissions(
        await gql(
            client, MY_SUBMISSIONS, {"first": 3, "after": first["pageInfo"]["endCursor"]}, tok
        )
    )
    last = _submissions(
        await gql(
            client, MY_SUBMISSIONS, {"first": 3, "after": second["pageInfo"]["endCursor"]}, tok
        )
    )

    pages = [[e["node"]["id"] for e in c["edges"]] for c in (first, second, last)]
    assert pages == [expected[:3], expected[3:6], expected[6:]]
    assert [c["pageInfo"]["hasNextPage"] for c in (first, second, last)] == [True, True, False]
    assert [c["pageInfo"]["hasPreviousPage"] for c in (first, second, last)] == [False, True, True]
    assert first["totalCount"] == 7


async def test_nested_exact_page_and_empty_connection(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")
    await make_user(db, "nobody@example.com")
    await _seed_submissions(db, amy, ["PENDING"] * 4)

    exact = _submissions(await gql(client, MY_SUBMISSIONS, {"first": 4}, token("amy@example.com")))
    empty = _submissions(
        await gql(client, MY_SUBMISSIONS, {"first": 4}, token("nobody@example.com"))
    )

    assert len(exact["edges"]) == 4
    assert exact["pageInfo"]["hasNextPage"] is False
    assert empty["edges"] == []
    assert empty["totalCount"] == 0
    assert empty["pageInfo"]["startCursor"] is None


async def test_nested_status_filter_applies_to_page_and_count(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")
    ids = await _seed_submissions(db, amy, ["PENDING", "FAILED", "PENDING", "SUCCEEDED", "FAILED"])

    body = await gql(client, MY_SUBMISSIONS, {"status": "FAILED"}, token("amy@example.com"))

    failed = _submissions(body)
    assert [e["node"]["id"] for e in failed["edges"]] == [
        to_global_id("Submission", ids[4]),
        to_global_id("Submission", ids[1]),
    ]
    assert {e["node"]["status"] for e in failed["edges"]} == {"FAILED"}
    assert failed["totalCount"] == 2


async def test_nested_bad_cursor_is_bad_user_input(
    client: AsyncClient, token: TokenFactory
) -> None:
    naive = to_cursor(Keyset(BASE_TIME.replace(tzinfo=None), UUID(int=1)), "Submission")

    body = await gql(client, MY_SUBMISSIONS, {"after": naive}, token("amy@example.com"))

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "after" in error["extensions"]["fields"]


async def _seed_nested(db: AsyncEngine, users: int) -> None:
    """`users` owners with two submissions each, every one with a result and an asset."""
    model = await make_model(db)
    rows: dict[sa.Table, list[dict[str, Any]]] = defaultdict(list)
    for n in range(users):
        owner = uuid.uuid4()
        rows[tables.users].append(
            {"id": owner, "subject": f"sub-{n}", "email": f"owner-{n}@example.com", "name": "o"}
        )
        for _ in range(2):
            submission, asset, now = uuid.uuid4(), uuid.uuid4(), next_time()
            rows[tables.submissions].append(
                {"id": submission, "owner_id": owner, "model_id": model, "input": {}}
                | {"status": "SUCCEEDED", "created_at": now, "updated_at": now}
            )
            rows[tables.results].append(
                {"submission_id": submission, "prediction": {}, "model_version": "1"}
                | {"processing_time_ms": 1, "created_at": now}
            )
            rows[tables.assets].append(
                {"id": asset, "owner_id": owner, "file_name": "a.png", "content_type": "image/png"}
                | {"size_bytes": 1, "status": "AVAILABLE", "object_key": f"k/{asset}"}
                | {"created_at": now, "updated_at": now}
            )
            rows[tables.submission_assets].append(
                {"submission_id": submission, "asset_id": asset, "position": 0}
            )
    async with db.begin() as conn:
        for table in (tables.users, tables.submissions, tables.results, tables.assets):
            await conn.execute(sa.insert(table), rows[table])
        await conn.execute(sa.insert(tables.submission_assets), rows[tables.submission_assets])


async def _statements_for(
    client: AsyncClient, admin: str, first: int, counter: StatementCounter
) -> tuple[int, JSONDict]:
    before = counter.count
    body = await gql(client, NESTED, {"first": first}, admin)
    return counter.count - before, body


async def test_nested_query_costs_the_same_statements_for_3_and_30_users(
    db: AsyncEngine, client: AsyncClient, admin: str, app_statements: StatementCounter
) -> None:
    await _seed_nested(db, 30)
    await gql(client, "{ viewer { id } }", token=admin)  # provision the admin first

    small, small_body = await _statements_for(client, admin, 3, app_statements)
    large, large_body = await _statements_for(client, admin, 30, app_statements)

    print(f"nested query: {small} statements for 3 users, {large} for 30")
    assert "errors" not in small_body
    assert "errors" not in large_body
    large_edges = large_body["data"]["users"]["edges"]
    assert len(large_edges) == 30
    seeded = [e for e in large_edges if e["node"]["submissions"]["edges"]]
    assert len(seeded) == 30  # the admin, provisioned last, is beyond the page
    for edge in seeded:
        for sub in edge["node"]["submissions"]["edges"]:
            node = sub["node"]
            assert len(node["results"]) == 1
            assert len(node["assets"]) == 1
            assert node["model"]["id"]
    assert small == large
