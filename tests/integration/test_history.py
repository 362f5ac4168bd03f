"""History as people read it: newest first by default, filters, cursors in both orders."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import to_global_id
from tests.factories import make_asset, make_model, make_submission, make_user, next_time
from tests.integration.conftest import JSONDict, TokenFactory, gql, only_error

HISTORY = """
query($first: Int, $after: String, $filter: SubmissionFilter, $order: SubmissionOrder) {
  viewer {
    submissions(first: $first, after: $after, filter: $filter, orderBy: $order) {
      totalCount
      edges { cursor node { id createdAt } }
      pageInfo { hasNextPage hasPreviousPage endCursor }
    }
  }
}
"""
ROOT_DEFAULT = "{ submissions(first: 100) { edges { node { id } } } }"
ASSETS = "{ assets(first: 100) { edges { node { id } } } }"


def _ids(body: JSONDict) -> list[str]:
    return [e["node"]["id"] for e in body["data"]["viewer"]["submissions"]["edges"]]


async def _history(db: AsyncEngine) -> tuple[list[str], list[str], UUID]:
    """Five submissions on iris then three on wine, oldest first; another user's too."""
    owner = await make_user(db, "history@example.com")
    other = await make_user(db, "other@example.com")
    iris, wine = await make_model(db, "iris"), await make_model(db, "wine")
    iris_ids = [await make_submission(db, owner, iris) for _ in range(5)]
    wine_ids = [await make_submission(db, owner, wine) for _ in range(3)]
    await make_submission(db, other, iris)
    all_ids = [to_global_id("Submission", i) for i in iris_ids + wine_ids]
    return all_ids, [to_global_id("Model", iris), to_global_id("Model", wine)], wine


async def test_submissions_are_newest_first_by_default_and_oldest_first_on_request(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    ids, _, _ = await _history(db)
    me = token("history@example.com")
    newest = await gql(client, HISTORY, {"first": 100}, me)
    assert _ids(newest) == ids[::-1]
    oldest = await gql(client, HISTORY, {"first": 100, "order": "CREATED_AT_ASC"}, me)
    assert _ids(oldest) == ids
    root = await gql(client, ROOT_DEFAULT, None, me)
    assert [e["node"]["id"] for e in root["data"]["submissions"]["edges"]] == ids[::-1]


async def test_paging_newest_first_visits_each_submission_once(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    ids, _, _ = await _history(db)
    me = token("history@example.com")
    seen: list[str] = []
    after = None
    for _ in range(10):
        body = await gql(client, HISTORY, {"first": 3, "after": after}, me)
        seen += _ids(body)
        info = body["data"]["viewer"]["submissions"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    assert seen == ids[::-1]


async def test_a_cursor_is_a_position_that_pages_on_in_either_order(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    """A cursor names (createdAt, id): with the other order it continues from the same
    submission in that order's direction, never skipping or repeating around it."""
    ids, _, _ = await _history(db)
    me = token("history@example.com")
    first_page = await gql(client, HISTORY, {"first": 3}, me)  # newest three: ids[7..5]
    cursor = first_page["data"]["viewer"]["submissions"]["edges"][-1]["cursor"]
    assert _ids(first_page)[-1] == ids[5]
    older = await gql(client, HISTORY, {"first": 100, "after": cursor}, me)
    assert _ids(older) == ids[:5][::-1]
    newer = await gql(
        client, HISTORY, {"first": 100, "after": cursor, "order": "CREATED_AT_ASC"}, me
    )
    assert _ids(newer) == ids[6:]


async def test_filters_by_model_and_creation_window_and_counts_what_they_keep(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    ids, (iris, wine), _ = await _history(db)
    me = token("history@example.com")
    by_model = await gql(client, HISTORY, {"filter": {"modelId": wine}}, me)
    assert _ids(by_model) == ids[5:][::-1]
    assert by_model["data"]["viewer"]["submissions"]["totalCount"] == 3
    everything = await gql(client, HISTORY, {"first": 100}, me)
    times = [e["node"]["createdAt"] for e in everything["data"]["viewer"]["submissions"]["edges"]]
    # newest first: times[0] is ids[7]; the window (ids[2], ids[6]) holds ids[3..5]
    window = {"createdAfter": times[5], "createdBefore": times[1]}
    between = await gql(client, HISTORY, {"filter": window, "order": "CREATED_AT_ASC"}, me)
    assert _ids(between) == ids[3:6]
    assert between["data"]["viewer"]["submissions"]["totalCount"] == 3
    both = await gql(client, HISTORY, {"filter": {**window, "modelId": iris}}, me)
    assert _ids(both) == [ids[4], ids[3]]


async def test_bad_filters_are_bad_user_input(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    ids, _, _ = await _history(db)
    me = token("history@example.com")
    wrong_type = await gql(client, HISTORY, {"filter": {"modelId": ids[0]}}, me)
    error = only_error(wrong_type)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "filter.modelId" in error["extensions"]["fields"]
    now = next_time().isoformat()
    later = (next_time() + timedelta(days=1)).isoformat()
    backwards = await gql(
        client, HISTORY, {"filter": {"createdAfter": later, "createdBefore": now}}, me
    )
    error = only_error(backwards)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "filter.createdBefore" in error["extensions"]["fields"]


async def test_the_viewers_assets_are_newest_first(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    owner = await make_user(db, "assets@example.com")
    made = [to_global_id("Asset", await make_asset(db, owner)) for _ in range(4)]
    body = await gql(client, ASSETS, None, token("assets@example.com"))
    assert [e["node"]["id"] for e in body["data"]["assets"]["edges"]] == made[::-1]
