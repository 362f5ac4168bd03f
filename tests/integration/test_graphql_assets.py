"""Asset uploads over HTTP: request, PUT via the app's blob routes, complete, download, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import parse_id, to_global_id
from persistence.tables import assets
from server.settings import Settings
from tests.factories import make_asset, make_user
from tests.integration.conftest import JSONDict, TokenFactory, gql, local_path, only_error

REQUEST = """
mutation($input: RequestAssetUploadInput!) {
  requestAssetUpload(input: $input) {
    asset { id status fileName contentType sizeBytes downloadUrl owner { email } }
    uploadUrl uploadHeaders expiresAt
  }
}
"""
COMPLETE = """
mutation($id: ID!) { completeAssetUpload(id: $id) { asset { id status downloadUrl } } }
"""
DELETE = "mutation($id: ID!) { deleteAsset(id: $id) { asset { id status downloadUrl } } }"
ASSET = "query($id: ID!) { asset(id: $id) { id status downloadUrl } }"
CONTENT = b'{"hello": "assay"}\n'


def _upload_input(**overrides: Any) -> dict[str, Any]:
    values = {"fileName": "data.json", "contentType": "application/json", "sizeBytes": len(CONTENT)}
    return {"input": {**values, **overrides}}


async def _request_upload(client: AsyncClient, tok: str) -> JSONDict:
    body = await gql(client, REQUEST, _upload_input(), tok)
    assert "errors" not in body, body
    payload: JSONDict = body["data"]["requestAssetUpload"]
    return payload


async def _put(client: AsyncClient, payload: JSONDict, content: bytes = CONTENT) -> int:
    response = await client.put(
        local_path(payload["uploadUrl"]), content=content, headers=payload["uploadHeaders"]
    )
    return response.status_code


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        (
            {"fileName": "../etc/passwd", "contentType": "application/x-sh", "sizeBytes": 0},
            {"input.fileName", "input.contentType", "input.sizeBytes"},
        ),
        ({"fileName": "dir\\file.png"}, {"input.fileName"}),
        ({"sizeBytes": 100 * 1024 * 1024 + 1}, {"input.sizeBytes"}),
        ({"sizeBytes": -5}, {"input.sizeBytes"}),
    ],
)
async def test_request_upload_validation_names_each_bad_field(
    client: AsyncClient, token: TokenFactory, overrides: dict[str, Any], fields: set[str]
) -> None:
    body = await gql(client, REQUEST, _upload_input(**overrides), token("amy@example.com"))

    error = only_error(body)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert set(error["extensions"]["fields"]) == fields


async def test_request_upload_returns_pending_upload_with_url_headers_and_expiry(
    client: AsyncClient, token: TokenFactory
) -> None:
    payload = await _request_upload(client, token("amy@example.com"))

    asset = payload["asset"]
    assert asset["status"] == "PENDING_UPLOAD"
    assert asset["fileName"] == "data.json"
    assert asset["sizeBytes"] == len(CONTENT)
    assert asset["downloadUrl"] is None
    assert asset["owner"] == {"email": "amy@example.com"}
    assert payload["uploadUrl"].startswith("http://testserver/blobs/")
    assert payload["uploadHeaders"] == {
        "Content-Type": "application/json",
        "Content-Length": str(len(CONTENT)),
    }
    expires_in = datetime.fromisoformat(payload["expiresAt"]) - datetime.now(UTC)
    assert timedelta(minutes=14) < expires_in <= timedelta(minutes=15, seconds=1)


async def test_complete_before_upload_is_conflict_saying_nothing_was_uploaded(
    client: AsyncClient, token: TokenFactory
) -> None:
    tok = token("amy@example.com")
    payload = await _request_upload(client, tok)

    body = await gql(client, COMPLETE, {"id": payload["asset"]["id"]}, tok)

    error = only_error(body)
    assert error["extensions"]["code"] == "CONFLICT"
    assert "nothing has been uploaded" in error["message"]


async def test_upload_then_complete_makes_asset_available_idempotently_and_downloadable(
    client: AsyncClient, token: TokenFactory
) -> None:
    tok = token("amy@example.com")
    payload = await _request_upload(client, tok)
    ident = payload["asset"]["id"]

    assert await _put(client, payload) == 201
    first = await gql(client, COMPLETE, {"id": ident}, tok)
    second = await gql(client, COMPLETE, {"id": ident}, tok)

    assert first["data"]["completeAssetUpload"]["asset"]["status"] == "AVAILABLE"
    assert second["data"]["completeAssetUpload"]["asset"]["status"] == "AVAILABLE"
    url = (await gql(client, ASSET, {"id": ident}, tok))["data"]["asset"]["downloadUrl"]
    assert url is not None
    download = await client.get(local_path(url))
    assert download.status_code == 200
    assert download.content == CONTENT


async def test_upload_of_wrong_size_is_refused_by_the_blob_route(
    client: AsyncClient, token: TokenFactory
) -> None:
    payload = await _request_upload(client, token("amy@example.com"))

    response = await client.put(
        local_path(payload["uploadUrl"]),
        content=CONTENT + b"x",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413


async def test_delete_asset_removes_bytes_and_hides_it(
    client: AsyncClient, token: TokenFactory
) -> None:
    tok = token("amy@example.com")
    payload = await _request_upload(client, tok)
    ident = payload["asset"]["id"]
    await _put(client, payload)
    await gql(client, COMPLETE, {"id": ident}, tok)
    url = (await gql(client, ASSET, {"id": ident}, tok))["data"]["asset"]["downloadUrl"]

    body = await gql(client, DELETE, {"id": ident}, tok)

    assert body["data"]["deleteAsset"]["asset"] == {
        "id": ident,
        "status": "DELETED",
        "downloadUrl": None,
    }
    assert (await client.get(local_path(url))).status_code == 404
    again = await gql(client, DELETE, {"id": ident}, tok)
    assert only_error(again)["extensions"]["code"] == "NOT_FOUND"


async def test_deleted_asset_lookup_is_not_found(client: AsyncClient, token: TokenFactory) -> None:
    tok = token("amy@example.com")
    payload = await _request_upload(client, tok)
    ident = payload["asset"]["id"]
    await gql(client, DELETE, {"id": ident}, tok)

    body = await gql(client, ASSET, {"id": ident}, tok)

    assert only_error(body)["extensions"]["code"] == "NOT_FOUND"


async def test_complete_or_delete_of_anothers_asset_is_not_found(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    bob = await make_user(db, "bob@example.com")
    pending = to_global_id("Asset", await make_asset(db, bob, status="PENDING_UPLOAD"))
    available = to_global_id("Asset", await make_asset(db, bob, file_name="b.png"))
    amy = token("amy@example.com")

    for mutation, ident in ((COMPLETE, pending), (DELETE, available)):
        body = await gql(client, mutation, {"id": ident}, amy)
        assert only_error(body)["extensions"]["code"] == "NOT_FOUND"
    still = await gql(client, ASSET, {"id": available}, token("bob@example.com"))
    assert still["data"]["asset"]["status"] == "AVAILABLE"


async def test_complete_with_id_of_another_type_is_not_found(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    amy = await make_user(db, "amy@example.com")

    body = await gql(client, COMPLETE, {"id": to_global_id("User", amy)}, token("amy@example.com"))

    assert only_error(body)["extensions"]["code"] == "NOT_FOUND"


async def test_put_after_complete_is_refused_and_the_bytes_stay(
    client: AsyncClient, token: TokenFactory
) -> None:
    tok = token("amy@example.com")
    payload = await _request_upload(client, tok)
    ident = payload["asset"]["id"]
    await _put(client, payload)
    await gql(client, COMPLETE, {"id": ident}, tok)

    replaced = await _put(client, payload, CONTENT.upper())

    assert replaced == 409
    url = (await gql(client, ASSET, {"id": ident}, tok))["data"]["asset"]["downloadUrl"]
    assert (await client.get(local_path(url))).content == CONTENT


async def test_a_second_put_while_pending_is_refused(
    client: AsyncClient, token: TokenFactory
) -> None:
    payload = await _request_upload(client, token("amy@example.com"))

    first = await _put(client, payload)
    second = await _put(client, payload, CONTENT.upper())

    assert (first, second) == (201, 412)


async def test_put_after_delete_stores_nothing(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory, settings: Settings
) -> None:
    tok = token("amy@example.com")
    payload = await _request_upload(client, tok)
    ident = payload["asset"]["id"]
    await gql(client, DELETE, {"id": ident}, tok)

    status = await _put(client, payload)

    assert status == 409
    asset_id = parse_id(ident, "Asset")
    async with db.connect() as conn:
        key = (
            await conn.execute(sa.select(assets.c.object_key).where(assets.c.id == asset_id))
        ).scalar_one()
    assert not (settings.data_dir / "blobs" / key).exists()


ERASE = "mutation($email: String!) { deleteViewer(input: {confirmEmail: $email}) { deletedId } }"


async def test_a_download_url_stops_answering_once_its_owner_is_erased(
    client: AsyncClient, token: TokenFactory
) -> None:
    # The URL is signed for its lifetime, and the bytes go with the next sweep: the route
    # itself must refuse bytes whose asset is gone (or no longer AVAILABLE).
    tok = token("erased@example.com")
    payload = await _request_upload(client, tok)
    assert await _put(client, payload) == 201
    done = await gql(client, COMPLETE, {"id": payload["asset"]["id"]}, tok)
    url = local_path(done["data"]["completeAssetUpload"]["asset"]["downloadUrl"])
    assert (await client.get(url)).status_code == 200
    erased = await gql(client, ERASE, {"email": "erased@example.com"}, tok)
    assert "errors" not in erased, erased
    gone = await client.get(url)
    assert gone.status_code == 404
    assert gone.content != CONTENT
