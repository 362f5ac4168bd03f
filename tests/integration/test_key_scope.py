"""Each mutation an API key may not call (docs/accounts.md) answers FORBIDDEN to a key and
changes nothing; the person's own token may call it."""

from __future__ import annotations

from uuid import UUID

import pytest
import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import from_global_id, to_global_id
from persistence import tables
from tests.integration.conftest import TokenFactory, gql, only_error
from tests.unit.test_key_scope import keys_may_not_call

CREATE_KEY = """mutation($name: String!) {
  createApiKey(input: {name: $name}) { secret } }"""
# One call of each listed mutation, with the variables a caller of EMAIL would send.
EMAIL = "scoped@example.com"
CALLS: dict[str, str] = {
    "createApiKey": 'mutation { createApiKey(input: {name: "more"}) { secret } }',
    "deleteViewer": (
        f'mutation {{ deleteViewer(input: {{confirmEmail: "{EMAIL}"}}) {{ deletedId }} }}'
    ),
    "rotateCallbackSecret": "mutation { rotateCallbackSecret { secret } }",
    "rotateWebhookSecret": "mutation($e: ID!) { rotateWebhookSecret(id: $e) { secret } }",
}


def test_every_mutation_keys_may_not_call_is_tried() -> None:
    assert set(CALLS) == keys_may_not_call()


async def _state(db: AsyncEngine, user_id: UUID) -> tuple[object, ...]:
    """What the listed mutations would change: keys, the user row, the secrets."""
    async with db.connect() as conn:
        keys = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(tables.api_keys)
            .where(tables.api_keys.c.owner_id == user_id)
        )
        user = (
            await conn.execute(sa.select(tables.users).where(tables.users.c.id == user_id))
        ).one()
        callback = await conn.scalar(
            sa.select(tables.callback_secrets.c.secret).where(
                tables.callback_secrets.c.user_id == user_id
            )
        )
        webhook = await conn.scalar(
            sa.select(tables.webhook_endpoints.c.secret).where(
                tables.webhook_endpoints.c.owner_id == user_id
            )
        )
    return keys, tuple(user), callback, webhook


@pytest.mark.parametrize("mutation", sorted(CALLS))
async def test_an_api_key_may_not_call_it(
    client: AsyncClient, db: AsyncEngine, token: TokenFactory, mutation: str
) -> None:
    person = token(EMAIL)
    viewer = await gql(client, "{ viewer { id } }", None, person)
    user_id = UUID(str(from_global_id(viewer["data"]["viewer"]["id"])[1]))
    key = (await gql(client, CREATE_KEY, {"name": "third party"}, person))["data"]
    secret = key["createApiKey"]["secret"]
    async with db.begin() as conn:
        endpoint = await conn.scalar(
            sa.insert(tables.webhook_endpoints)
            .values(owner_id=user_id, url="https://example.com/h", events=[], secret="whsec_a")
            .returning(tables.webhook_endpoints.c.id)
        )
    variables = {"e": to_global_id("WebhookEndpoint", endpoint)}
    used = {k: v for k, v in variables.items() if f"${k}" in CALLS[mutation]}
    before = await _state(db, user_id)

    refused = await gql(client, CALLS[mutation], used, secret)
    assert only_error(refused)["extensions"]["code"] == "FORBIDDEN", refused
    assert refused.get("data") is None
    assert await _state(db, user_id) == before

    allowed = await gql(client, CALLS[mutation], used, person)
    assert "errors" not in allowed, allowed
