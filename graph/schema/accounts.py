"""API keys, erasure and reactivation at the GraphQL boundary."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry

from domain.api_keys import ApiKey, ApiKeySecrets
from domain.errors import Unavailable
from domain.services import accounts, api_keys
from graph.ids import required_id, to_global_id
from graph.protection.sign_in import revoking
from graph.schema.declarations import ReferenceOnly, declared, reference_only
from graph.schema.nodes import AppInfo, Node
from graph.schema.users import UserType
from graph.schema.webhooks import DeletePayload

_API_KEYS = "API keys: a handful per viewer, read on the reference path"


@reference_only(_API_KEYS)
@strawberry.type(name="ApiKey")
class ApiKeyType(Node):
    name: str
    prefix: str = strawberry.field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_entity(cls, key: ApiKey) -> ApiKeyType:
        return cls(
            id=strawberry.ID(to_global_id("ApiKey", key.id)),
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
        )


@strawberry.input
class CreateApiKeyInput:
    name: str
    expires_in_days: int | None = strawberry.field(
        default=None, description="1 to 365; null: the key never expires."
    )


@strawberry.type
class CreateApiKeyPayload:
    api_key: ApiKeyType
    secret: str = strawberry.field(description="Shown once: send it as `Bearer <secret>`.")


@strawberry.type
class ApiKeyPayload:
    api_key: ApiKeyType


@strawberry.input
class DeleteViewerInput:
    confirm_email: str = strawberry.field(description="Must equal the viewer's email.")


def _secrets(info: AppInfo) -> ApiKeySecrets:
    secrets = info.context.api_key_secrets
    if secrets is None:
        raise Unavailable()
    return secrets


async def load_api_key(info: AppInfo, ident: UUID) -> ApiKeyType | None:
    ctx = info.context
    key = await api_keys.get_api_key(ctx.uow(), ctx.principal, ident)
    return ApiKeyType.from_entity(key) if key is not None else None


@strawberry.type
class AccountQueries:
    @declared(ReferenceOnly(_API_KEYS), description="The viewer's API keys, newest first.")
    async def api_keys(self, info: AppInfo) -> list[ApiKeyType]:
        ctx = info.context
        keys = await api_keys.list_api_keys(ctx.uow(), ctx.principal)
        return [ApiKeyType.from_entity(k) for k in keys]


@strawberry.type
class AccountMutations:
    @strawberry.mutation(description="A new API key; its secret is shown once (not with a key).")
    async def create_api_key(self, info: AppInfo, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        ctx = info.context
        key, secret = await api_keys.create_api_key(
            ctx.uow(),
            _secrets(info),
            ctx.principal,
            name=input.name,
            expires_in_days=input.expires_in_days,
            clock=ctx.clock,
        )
        return CreateApiKeyPayload(api_key=ApiKeyType.from_entity(key), secret=secret)

    @strawberry.mutation(description="Stops the key at once, and closes sockets opened with it.")
    async def revoke_api_key(self, info: AppInfo, id: strawberry.ID) -> ApiKeyPayload:
        ctx = info.context
        principal = ctx.principal
        key = await api_keys.revoke_api_key(
            ctx.uow(), principal, required_id(id, "ApiKey"), clock=ctx.clock
        )
        return ApiKeyPayload(api_key=ApiKeyType.from_entity(key))

    @strawberry.mutation(description="Erase the viewer's account and data (not with an API key).")
    async def delete_viewer(self, info: AppInfo, input: DeleteViewerInput) -> DeletePayload:
        ctx = info.context
        principal = ctx.principal
        # Cached sign-ins of the erased account end on every process before the answer.
        async with revoking(ctx.sign_ins, [principal.user_id]):
            user_id = await accounts.delete_viewer(
                ctx.uow(), principal, input.confirm_email, clock=ctx.clock
            )
        return DeletePayload(deleted_id=strawberry.ID(to_global_id("User", user_id)))

    @strawberry.mutation(description="Reactivate a deactivated user (administrators only).")
    async def reactivate_user(self, info: AppInfo, id: strawberry.ID) -> UserType:
        ctx = info.context
        principal = ctx.principal
        user = await accounts.reactivate_user(
            ctx.uow(), principal, required_id(id, "User"), clock=ctx.clock
        )
        return UserType.from_entity(user)
