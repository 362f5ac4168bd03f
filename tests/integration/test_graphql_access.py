"""Access rules over HTTP: nobody sees another user's objects; administrators see everything."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import to_global_id
from tests.factories import make_asset, make_model, make_result, make_submission, make_user
from tests.integration.conftest import TokenFactory, gql, only_error


@dataclass(frozen=True)
class Owned:
    """Global ids of objects owned by bob."""

    user: str
    submission: str
    result: str
    asset: str


@pytest.fixture
async def bobs(db: AsyncEngine) -> Owned:
    await make_user(db, "alice@example.com")
    bob = await make_user(db, "bob@example.com")
    submission = await make_submission(db, bob, await make_model(db))
    return Owned(
        user=to_global_id("User", bob),
        submission=to_global_id("Submission", submission),
        result=to_global_id("Result", await make_result(db, submission)),
        asset=to_global_id("Asset", await make_asset(db, bob)),
    )


LOOKUPS = {
    "user": "query($id: ID!) { user(id: $id) { id } }",
    "submission": "query($id: ID!) { submission(id: $id) { id } }",
    "result": "query($id: ID!) { result(id: $id) { id } }",
    "asset": "query($id: ID!) { asset(id: $id) { id } }",
}
NODE = "query($id: ID!) { node(id: $id) { id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"


@pytest.mark.parametrize("kind", sorted(LOOKUPS))
async def test_lookup_of_anothers_object_is_not_found_with_null_data(
    client: AsyncClient, token: TokenFactory, bobs: Owned, kind: str
) -> None:
    body = await gql(client, LOOKUPS[kind], {"id": getattr(bobs, kind)}, token("alice@example.com"))

    assert only_error(body)["extensions"]["code"] == "NOT_FOUND"
    assert body["data"] == {kind: None}


@pytest.mark.parametrize("kind", sorted(LOOKUPS))
async def test_node_of_anothers_object_is_not_found(
    client: AsyncClient, token: TokenFactory, bobs: Owned, kind: str
) -> None:
    body = await gql(client, NODE, {"id": getattr(bobs, kind)}, token("alice@example.com"))

    assert only_error(body)["extensions"]["code"] == "NOT_FOUND"
    assert body["data"] == {"node": None}


@pytest.mark.parametrize("kind", sorted(LOOKUPS))
async def test_owner_and_admin_see_the_object(
    client: AsyncClient, token: TokenFactory, bobs: Owned, kind: str
) -> None:
    ident = getattr(bobs, kind)
    for caller in (token("bob@example.com"), token("root@example.com", ["admin"])):
        body = await gql(client, LOOKUPS[kind], {"id": ident}, caller)
        assert body == {"data": {kind: {"id": ident}}}
        node = await gql(client, NODE, {"id": ident}, caller)
        assert node == {"data": {"node": {"id": ident}}}


async def test_nodes_gives_null_for_anothers_objects(
    client: AsyncClient, token: TokenFactory, bobs: Owned
) -> None:
    alice = await gql(client, "{ viewer { id } }", token=token("alice@example.com"))
    own = alice["data"]["viewer"]["id"]
    ids = [own, bobs.user, bobs.submission, bobs.result, bobs.asset]

    body = await gql(client, NODES, {"ids": ids}, token("alice@example.com"))

    assert "errors" not in body
    assert body["data"]["nodes"] == [{"id": own}, None, None, None, None]


async def test_nodes_for_an_admin_gives_every_object(
    client: AsyncClient, token: TokenFactory, bobs: Owned
) -> None:
    ids = [bobs.user, bobs.submission, bobs.result, bobs.asset]

    body = await gql(client, NODES, {"ids": ids}, token("root@example.com", ["admin"]))

    assert body["data"]["nodes"] == [{"id": i} for i in ids]


@pytest.mark.parametrize("bad_id", ["not-an-id", "", to_global_id("Bogus", uuid.UUID(int=7))])
async def test_malformed_id_is_bad_user_input(
    client: AsyncClient, token: TokenFactory, bad_id: str
) -> None:
    for query in (LOOKUPS["submission"], NODE):
        body = await gql(client, query, {"id": bad_id}, token("alice@example.com"))
        assert only_error(body)["extensions"]["code"] == "BAD_USER_INPUT", query


async def test_malformed_id_in_nodes_names_its_index(
    client: AsyncClient, token: TokenFactory, bobs: Owned
) -> None:
    body = await gql(client, NODES, {"ids": [bobs.user, "junk"]}, token("alice@example.com"))

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ids.1" in error["extensions"]["fields"]


async def test_id_of_another_type_is_not_found(
    client: AsyncClient, token: TokenFactory, bobs: Owned
) -> None:
    body = await gql(
        client, LOOKUPS["submission"], {"id": bobs.result}, token("root@example.com", ["admin"])
    )

    assert only_error(body)["extensions"]["code"] == "NOT_FOUND"
    assert body["data"] == {"submission": None}


async def test_unknown_id_is_not_found(client: AsyncClient, token: TokenFactory) -> None:
    missing = to_global_id("Submission", uuid.uuid4())

    body = await gql(client, LOOKUPS["submission"], {"id": missing}, token("alice@example.com"))

    assert only_error(body)["extensions"]["code"] == "NOT_FOUND"


async def test_submission_owner_field_is_the_owner_for_admin(
    client: AsyncClient, token: TokenFactory, bobs: Owned
) -> None:
    query = "query($id: ID!) { submission(id: $id) { owner { email } results { id } } }"

    body = await gql(client, query, {"id": bobs.submission}, token("root@example.com", ["admin"]))

    assert body["data"]["submission"] == {
        "owner": {"email": "bob@example.com"},
        "results": [{"id": bobs.result}],
    }


async def test_user_of_self_is_visible(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    alice: UUID = await make_user(db, "carol@example.com")
    ident = to_global_id("User", alice)

    body = await gql(client, LOOKUPS["user"], {"id": ident}, token("carol@example.com"))

    assert body == {"data": {"user": {"id": ident}}}


async def test_admins_read_but_do_not_change_anothers_assets_or_submissions(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    bob = await make_user(db, "bob@example.com")
    model = await make_model(db)
    pending = to_global_id("Submission", await make_submission(db, bob, model, status="PENDING"))
    failed = to_global_id("Submission", await make_submission(db, bob, model, status="FAILED"))
    asset = to_global_id("Asset", await make_asset(db, bob))
    admin = token("root@example.com", ["admin"])
    writes = [
        ("mutation($id: ID!) { cancelSubmission(id: $id) { submission { id } } }", pending),
        ("mutation($id: ID!) { retrySubmission(id: $id) { submission { id } } }", failed),
        ("mutation($id: ID!) { completeAssetUpload(id: $id) { asset { id } } }", asset),
        ("mutation($id: ID!) { deleteAsset(id: $id) { asset { id } } }", asset),
    ]

    codes = [
        only_error(await gql(client, mutation, {"id": ident}, admin))["extensions"]["code"]
        for mutation, ident in writes
    ]

    assert codes == ["FORBIDDEN"] * 4
    read = await gql(client, "query($id: ID!) { node(id: $id) { id } }", {"id": asset}, admin)
    assert read["data"] == {"node": {"id": asset}}
    states = await gql(
        client,
        "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Submission { status } "
        "... on Asset { assetStatus: status } } }",
        {"ids": [pending, failed, asset]},
        token("bob@example.com"),
    )
    assert "errors" not in states, states
    found = [n.get("status") or n.get("assetStatus") for n in states["data"]["nodes"]]
    assert found == ["PENDING", "FAILED", "AVAILABLE"]
