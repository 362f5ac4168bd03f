"""API keys, erasure, reactivation and retention against PostgreSQL, over HTTP where the
API is the point."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.services import accounts
from domain.webhooks import DeliveryAttempt, DeliveryStatus, WebhookDelivery
from graph.ids import from_global_id, to_global_id
from integrations.blobs.local import LocalBlobStore
from persistence import tables
from persistence.unit_of_work import SqlUnitOfWork
from tests.factories import (
    make_asset,
    make_model,
    make_result,
    make_submission,
    make_user,
)
from tests.integration.conftest import JSONDict, TokenFactory, gql, only_error
from tests.unit.fakes import FakeClock
from tests.unit.test_erasure_coverage import user_references

CREATE_KEY = """mutation($name: String!, $days: Int) {
  createApiKey(input: {name: $name, expiresInDays: $days}) {
    apiKey { id name prefix createdAt lastUsedAt expiresAt revokedAt } secret } }"""
REVOKE_KEY = "mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id revokedAt } } }"
DELETE_VIEWER = """mutation($email: String!) {
  deleteViewer(input: {confirmEmail: $email}) { deletedId } }"""
VIEWER = "{ viewer { id email submissions { totalCount } assets { totalCount } } }"


def _code(body: JSONDict) -> str:
    code: str = only_error(body)["extensions"]["code"]
    return code


async def _count(db: AsyncEngine, table: sa.Table, owner: UUID) -> int:
    async with db.connect() as conn:
        statement = sa.select(sa.func.count()).select_from(table).where(table.c.owner_id == owner)
        return int((await conn.execute(statement)).scalar_one())


async def test_an_api_key_signs_in_as_its_user_and_is_stored_only_as_a_digest(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    person = token("keys@example.com", ["admin"])
    made = (await gql(client, CREATE_KEY, {"name": "ci", "days": 30}, person))["data"]
    key, secret = made["createApiKey"]["apiKey"], made["createApiKey"]["secret"]
    assert secret.startswith("assay_sk_")
    assert secret.startswith(key["prefix"])
    assert key["expiresAt"] is not None
    assert key["lastUsedAt"] is None
    viewer = await gql(client, "{ viewer { email } }", None, secret)
    assert viewer["data"]["viewer"]["email"] == "keys@example.com"
    async with db.connect() as conn:
        stored = (await conn.execute(sa.select(tables.api_keys))).mappings().one()
    assert secret.encode() not in bytes(stored["secret_hash"])
    assert stored["last_used_at"] is not None
    listed = await gql(client, "{ apiKeys { id lastUsedAt } }", None, person)
    assert [k["id"] for k in listed["data"]["apiKeys"]] == [key["id"]]
    node = "query($id: ID!) { node(id: $id) { ... on ApiKey { name } } }"
    found = await gql(client, node, {"id": key["id"]}, person)
    assert found["data"]["node"] == {"name": "ci"}
    someone = token("someone@example.com")
    assert _code(await gql(client, node, {"id": key["id"]}, someone)) == "NOT_FOUND"


async def test_an_api_key_is_never_an_admin_and_cannot_make_keys_or_erase(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    person = token("root-keys@example.com", ["admin"])
    secret = (await gql(client, CREATE_KEY, {"name": "ci"}, person))["data"]["createApiKey"][
        "secret"
    ]
    assert "errors" not in await gql(client, "{ users { totalCount } }", None, person)
    assert _code(await gql(client, "{ users { totalCount } }", None, secret)) == "FORBIDDEN"
    assert _code(await gql(client, CREATE_KEY, {"name": "more"}, secret)) == "FORBIDDEN"
    refused = await gql(client, DELETE_VIEWER, {"email": "root-keys@example.com"}, secret)
    assert _code(refused) == "FORBIDDEN"
    assert "errors" not in await gql(client, "{ viewer { id } }", None, person)


async def test_a_revoked_key_stops_working_at_once(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    person = token("revoke@example.com")
    made = (await gql(client, CREATE_KEY, {"name": "ci"}, person))["data"]["createApiKey"]
    assert "errors" not in await gql(client, "{ viewer { id } }", None, made["secret"])
    revoked = await gql(client, REVOKE_KEY, {"id": made["apiKey"]["id"]}, person)
    assert revoked["data"]["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    after = await gql(client, "{ viewer { id } }", None, made["secret"])
    assert _code(after) == "UNAUTHENTICATED"
    forged = made["secret"][:-4] + "AAAA"
    assert _code(await gql(client, "{ viewer { id } }", None, forged)) == "UNAUTHENTICATED"


async def test_bad_key_input_is_bad_user_input_and_stores_nothing(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    person = token("bad-keys@example.com")
    body = await gql(client, CREATE_KEY, {"name": "ci", "days": 366}, person)
    assert only_error(body)["extensions"]["fields"] == {
        "input.expiresInDays": "must be between 1 and 365, or null"
    }
    async with db.connect() as conn:
        assert (
            await conn.execute(sa.select(sa.func.count()).select_from(tables.api_keys))
        ).scalar_one() == 0


async def _deliveries(conn: AsyncConnection, owner: UUID, submission: UUID) -> None:
    """An event with a webhook delivery (and one attempt) and a callback queued for it."""
    event = (
        await conn.execute(
            sa.insert(tables.events)
            .values(type="SUBMISSION_SUCCEEDED", owner_id=owner, subject_id=submission, payload={})
            .returning(tables.events.c.id)
        )
    ).scalar_one()
    endpoint = (
        await conn.execute(
            sa.select(tables.webhook_endpoints.c.id).where(
                tables.webhook_endpoints.c.owner_id == owner
            )
        )
    ).scalar_one()
    delivery = (
        await conn.execute(
            sa.insert(tables.webhook_deliveries)
            .values(
                endpoint_id=endpoint, event_id=event, event_type="SUBMISSION_SUCCEEDED", payload={}
            )
            .returning(tables.webhook_deliveries.c.id)
        )
    ).scalar_one()
    await conn.execute(
        sa.insert(tables.webhook_delivery_attempts).values(
            delivery_id=delivery, attempt=1, duration_ms=3
        )
    )
    await conn.execute(
        sa.insert(tables.callback_deliveries).values(
            owner_id=owner,
            subject_id=submission,
            url="https://example.com/cb",
            event_id=event,
            event_type="SUBMISSION_SUCCEEDED",
            payload={},
        )
    )


async def _left_behind(db: AsyncEngine, owner: UUID) -> dict[str, int]:
    """Rows still referring to the user, in every table the metadata says refers to one
    (the PRINCIPAL_REVOKED event the erasure itself writes, which carries no personal data,
    excepted), and rows of the tables that hang off them."""
    left = {}
    async with db.connect() as conn:
        for table_name, column in sorted(user_references(tables.metadata)):
            table = tables.metadata.tables[table_name]
            where = [table.c[column] == owner]
            if table is tables.events:
                where.append(table.c.type != "PRINCIPAL_REVOKED")
            count = sa.select(sa.func.count()).select_from(table).where(*where)
            left[f"{table_name}.{column}"] = int((await conn.execute(count)).scalar_one())
        for table in (
            tables.results,
            tables.submission_assets,
            tables.webhook_deliveries,
            tables.webhook_delivery_attempts,
        ):
            count = sa.select(sa.func.count()).select_from(table)
            left[table.name] = int((await conn.execute(count)).scalar_one())
    return {name: count for name, count in left.items() if count}


def _stored(root: Path) -> list[Path]:
    return list(root.rglob("photo.png"))


async def _account(db: AsyncEngine, email: str, tmp: Path, blobs: LocalBlobStore) -> UUID:
    owner = await make_user(db, email)
    model = await make_model(db)
    submission = await make_submission(db, owner, model)
    await make_result(db, submission)
    asset = await make_asset(db, owner)
    async with db.begin() as conn:
        key = (
            await conn.execute(
                sa.select(tables.assets.c.object_key).where(tables.assets.c.id == asset)
            )
        ).scalar_one()
        await conn.execute(
            sa.insert(tables.webhook_endpoints).values(
                owner_id=owner,
                url="https://example.com/h",
                events=["SUBMISSION_SUCCEEDED"],
                secret="s",
            )
        )
        await conn.execute(
            sa.insert(tables.api_keys).values(
                owner_id=owner, name="k", prefix="assay_sk_x", secret_hash=b"h" * 32
            )
        )
        batch = (
            await conn.execute(
                sa.insert(tables.batches)
                .values(owner_id=owner, model_id=model, size=1)
                .returning(tables.batches.c.id)
            )
        ).scalar_one()
        await conn.execute(
            sa.update(tables.submissions)
            .where(tables.submissions.c.id == submission)
            .values(batch_id=batch)
        )
        await conn.execute(
            sa.insert(tables.callback_secrets).values(user_id=owner, secret="whsec_x")
        )
        await _deliveries(conn, owner, submission)
        await conn.execute(
            sa.insert(tables.persisted_operations).values(
                sha256="a" * 64, document="{ viewer { name } } # Ann's query", registered_by=owner
            )
        )
    path = blobs.path_for(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"bytes")
    return owner


async def test_erasure_deletes_the_account_in_one_go_and_its_bytes_through_the_queue(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path, "http://assay.test", b"k" * 32, 1024)
    owner = await _account(db, "erase@example.com", tmp_path, blobs)
    me = token("erase@example.com")
    wrong = await gql(client, DELETE_VIEWER, {"email": "someone@example.com"}, me)
    assert _code(wrong) == "BAD_USER_INPUT"
    assert await _count(db, tables.submissions, owner) == 1

    seeded = await _left_behind(db, owner)
    assert set(seeded) >= {f"{t}.{c}" for t, c in user_references(tables.metadata)}, (
        "seed every table with a user reference in _account"
    )
    erased = await gql(client, DELETE_VIEWER, {"email": "erase@example.com"}, me)
    assert erased["data"]["deleteViewer"]["deletedId"] == to_global_id("User", owner)
    assert await _left_behind(db, owner) == {}
    erased_tables = (tables.submissions, tables.batches, tables.assets, tables.webhook_endpoints)
    for table in (*erased_tables, tables.api_keys):
        assert await _count(db, table, owner) == 0, table.name
    async with db.connect() as conn:
        secrets = tables.callback_secrets
        count = sa.select(sa.func.count()).where(secrets.c.user_id == owner)
        assert (await conn.execute(count)).scalar_one() == 0  # the callback secret too
        results = (
            await conn.execute(sa.select(sa.func.count()).select_from(tables.results))
        ).scalar_one()
        user = (
            (await conn.execute(sa.select(tables.users).where(tables.users.c.id == owner)))
            .mappings()
            .one()
        )
    assert results == 0
    assert (user["email"], user["name"], user["is_active"]) == ("", "", False)
    assert user["erased_at"] is not None
    assert _stored(tmp_path) != []  # the bytes wait for the deleter
    deleted = await accounts.delete_queued_blobs(
        SqlUnitOfWork(db), blobs, clock=FakeClock(user["erased_at"] + timedelta(seconds=1))
    )
    assert deleted == 1
    assert _stored(tmp_path) == []

    again = await gql(client, VIEWER, None, me)  # the same identity: a new, empty account
    viewer = again["data"]["viewer"]
    assert from_global_id(viewer["id"])[1] != owner
    assert viewer["submissions"]["totalCount"] == 0
    assert viewer["assets"]["totalCount"] == 0
    admin = token("root@example.com", ["admin"])
    listed = await gql(client, "{ users { edges { node { id } } } }", None, admin)
    assert to_global_id("User", owner) not in str(listed["data"])  # the emptied row is hidden
    node = await gql(
        client,
        "query($id: ID!) { user(id: $id) { id } }",
        {"id": to_global_id("User", owner)},
        admin,
    )
    assert _code(node) == "NOT_FOUND"


async def test_admins_reactivate_deactivated_users(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory
) -> None:
    admin = token("root@example.com", ["admin"])
    dana = token("dana@example.com")
    dana_id = (await gql(client, "{ viewer { id } }", None, dana))["data"]["viewer"]["id"]
    deactivate = "mutation($id: ID!) { deactivateUser(id: $id) { isActive } }"
    reactivate = "mutation($id: ID!) { reactivateUser(id: $id) { isActive } }"
    await gql(client, deactivate, {"id": dana_id}, admin)
    assert _code(await gql(client, "{ viewer { id } }", None, dana)) == "FORBIDDEN"
    assert _code(await gql(client, reactivate, {"id": dana_id}, dana)) == "FORBIDDEN"
    back = await gql(client, reactivate, {"id": dana_id}, admin)
    assert back["data"]["reactivateUser"]["isActive"] is True
    assert "errors" not in await gql(client, "{ viewer { id } }", None, dana)


async def test_retention_retires_old_assets_and_queues_their_bytes(db: AsyncEngine) -> None:
    owner = await make_user(db, "old@example.com")
    clock = FakeClock()
    old = await make_asset(db, owner, created_at=clock() - timedelta(days=31))
    young = await make_asset(db, owner, created_at=clock() - timedelta(days=1))
    assert await accounts.retire_old_assets(SqlUnitOfWork(db), 30, clock=clock) == 1
    async with db.connect() as conn:
        statuses = dict(
            (await conn.execute(sa.select(tables.assets.c.id, tables.assets.c.status))).all()
        )
        queued = (await conn.execute(sa.select(tables.blob_deletions.c.object_key))).scalars().all()
    assert statuses == {old: "DELETED", young: "AVAILABLE"}
    assert len(queued) == 1
    assert str(old) in queued[0]


async def test_bytes_of_an_upload_url_still_valid_are_deleted_again_after_it_expires(
    db: AsyncEngine, tmp_path: Path
) -> None:
    """S3 can store a PUT until its presigned URL expires, after the row is gone."""
    blobs = LocalBlobStore(tmp_path, "http://assay.test", b"k" * 32, 1024)
    clock = FakeClock()
    owner = await make_user(db, "pending@example.com")
    await make_asset(
        db, owner, status="PENDING_UPLOAD", upload_expires_at=clock() + timedelta(minutes=15)
    )
    async with SqlUnitOfWork(db) as uow:
        assert await uow.accounts.erase(owner, clock()) == 1
        await uow.commit()
    assert await accounts.delete_queued_blobs(SqlUnitOfWork(db), blobs, clock=clock) == 1
    async with db.connect() as conn:
        [queued] = (await conn.execute(sa.select(tables.blob_deletions))).mappings().all()
    assert queued["next_attempt_at"] == clock() + timedelta(minutes=15)
    assert queued["not_final_before"] is None
    clock.advance(minutes=15)
    assert await accounts.delete_queued_blobs(SqlUnitOfWork(db), blobs, clock=clock) == 1
    async with db.connect() as conn:
        left = (
            await conn.execute(sa.select(sa.func.count()).select_from(tables.blob_deletions))
        ).scalar_one()
    assert left == 0


async def _claimed_delivery(db: AsyncEngine) -> tuple[WebhookDelivery, WebhookDelivery]:
    """The seeded delivery as the dispatcher claimed it, and its state after a 200."""
    now = datetime.now(UTC)
    async with db.begin() as conn:
        await conn.execute(sa.update(tables.webhook_deliveries).values(next_attempt_at=now))
    async with SqlUnitOfWork(db) as uow:
        [due] = await uow.webhooks.claim_deliveries(10, now, now + timedelta(minutes=1))
        await uow.commit()
    claimed = due.delivery
    return claimed, replace(claimed, status=DeliveryStatus.SUCCEEDED, last_status_code=200)


def _attempt(delivery: WebhookDelivery) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=uuid4(),
        delivery_id=delivery.id,
        attempt=delivery.attempts,
        status_code=200,
        error=None,
        duration_ms=5,
        created_at=datetime.now(UTC),
    )


async def _erase(db: AsyncEngine, owner: UUID) -> None:
    async with SqlUnitOfWork(db) as uow:
        await uow.accounts.erase(owner, datetime.now(UTC))
        await uow.commit()


async def test_a_delivery_finished_after_its_owner_was_erased_records_nothing(
    db: AsyncEngine, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path, "http://assay.test", b"k" * 32, 1024)
    owner = await _account(db, "late@example.com", tmp_path, blobs)
    claimed, updated = await _claimed_delivery(db)
    await _erase(db, owner)  # while the POST was on its way

    async with SqlUnitOfWork(db) as uow:
        assert not await uow.webhooks.finish_attempt(claimed, updated, _attempt(claimed))
        await uow.commit()
    assert await _left_behind(db, owner) == {}


async def test_an_erasure_waits_for_a_delivery_being_recorded_and_then_takes_it_too(
    db: AsyncEngine, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path, "http://assay.test", b"k" * 32, 1024)
    owner = await _account(db, "busy@example.com", tmp_path, blobs)
    claimed, updated = await _claimed_delivery(db)

    async with SqlUnitOfWork(db) as uow:
        assert await uow.webhooks.finish_attempt(claimed, updated, _attempt(claimed))
        erasing = asyncio.create_task(_erase(db, owner))
        await asyncio.sleep(0.3)  # the erasure is under way, waiting on the delivery
        await uow.commit()
    await asyncio.wait_for(erasing, 10)
    assert await _left_behind(db, owner) == {}
