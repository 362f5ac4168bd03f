"""API keys, erasure and reactivation at the GraphQL boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry

from domain.api_keys import ApiKey, ApiKeySecrets
from domain.errors import Unavailable
from domain.services import accounts, api_keys
from graph.execution.declarations import ReferenceOnly, declared, reference_only
from graph.ids import required_id, to_global_id
from graph.protection.sign_in import revoking
from graph.schema.nodes import AppInfo, Node
from graph.schema.users import UserType
from graph.schema.webhooks import DeletePayload

_API_KEYS = "API keys: a handful per viewer, read on the reference path"


@reference_only(_API_KEYS)
@strawberry.type(
    name="ApiKey",
    description="A key for third-party integrations, sent as `Authorization: Bearer <secret>`; "
    "it acts as its user, never as an administrator. Its owner's alone.",
)
class ApiKeyType(Node):
    name: str = strawberry.field(description="The name given to recognise it.")
    prefix: str = strawberry.field(description="The secret's first characters, to recognise it.")
    created_at: datetime = strawberry.field(description="When it was made.")
    last_used_at: datetime | None = strawberry.field(
        description="When it was last used, to the minute (written at most once a minute); "
        "null if never."
    )
    expires_at: datetime | None = strawberry.field(
        description="When it stops working (then UNAUTHENTICATED); null: never."
    )
    revoked_at: datetime | None = strawberry.field(
        description="When revokeApiKey stopped it; null while it is not revoked."
    )

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


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    name: str = strawberry.field(
        description="A name to recognise it by, 1 to 100 characters; BAD_USER_INPUT otherwise."
    )
    expires_in_days: int | None = strawberry.field(
        default=None,
        description="Days until it expires, 1 to 365 (BAD_USER_INPUT otherwise); null: the "
        "key never expires.",
    )


@strawberry.type(description="The new key and its secret.")
class CreateApiKeyPayload:
    api_key: ApiKeyType = strawberry.field(description="The key.")
    secret: str = strawberry.field(
        description="Shown once (`assay_sk_` + 43 characters), stored only as a hash: send it "
        "as `Bearer <secret>`."
    )


@strawberry.type(description="The key a mutation changed.")
class ApiKeyPayload:
    api_key: ApiKeyType = strawberry.field(description="The key as it is now.")


@strawberry.input(description="The confirmation that erases the viewer's account.")
class DeleteViewerInput:
    confirm_email: str = strawberry.field(
        description="Must equal the viewer's email (ignoring case); BAD_USER_INPUT otherwise."
    )


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
    @strawberry.mutation(
        description="A new API key; its secret is shown once. FORBIDDEN when called with an "
        "API key; BAD_USER_INPUT for a bad name or expiry."
    )
    async def create_api_key(
        self,
        info: AppInfo,
        input: Annotated[CreateApiKeyInput, strawberry.argument(description="The key.")],
    ) -> CreateApiKeyPayload:
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

    @strawberry.mutation(
        description="Stops the key at once on every process, and closes sockets opened with "
        "it (a revoked key is returned as it is). NOT_FOUND for another user's key (FORBIDDEN "
        "to an administrator)."
    )
    async def revoke_api_key(
        self,
        info: AppInfo,
        id: Annotated[strawberry.ID, strawberry.argument(description="The key's global id.")],
    ) -> ApiKeyPayload:
        ctx = info.context
        principal = ctx.principal
        key = await api_keys.revoke_api_key(
            ctx.uow(), principal, required_id(id, "ApiKey"), clock=ctx.clock
        )
        return ApiKeyPayload(api_key=ApiKeyType.from_entity(key))

    @strawberry.mutation(
        description="Erase the viewer's account and data (submissions, results, batches, "
        "assets and their bytes, webhooks, API keys); a later sign-in starts a new, empty "
        "account. FORBIDDEN when called with an API key; BAD_USER_INPUT for a wrong "
        "confirmEmail."
    )
    async def delete_viewer(
        self,
        info: AppInfo,
        input: Annotated[DeleteViewerInput, strawberry.argument(description="The confirmation.")],
    ) -> DeletePayload:
        ctx = info.context
        principal = ctx.principal
        # Cached sign-ins of the erased account end on every process before the answer.
        async with revoking(ctx.sign_ins, [principal.user_id]):
            user_id = await accounts.delete_viewer(
                ctx.uow(), principal, input.confirm_email, clock=ctx.clock
            )
        return DeletePayload(deleted_id=strawberry.ID(to_global_id("User", user_id)))

    @strawberry.mutation(
        description="Reactivate a deactivated user (administrators only, FORBIDDEN for "
        "others). NOT_FOUND for an unknown or erased user."
    )
    async def reactivate_user(
        self,
        info: AppInfo,
        id: Annotated[strawberry.ID, strawberry.argument(description="The user's global id.")],
    ) -> UserType:
        ctx = info.context
        principal = ctx.principal
        user = await accounts.reactivate_user(
            ctx.uow(), principal, required_id(id, "User"), clock=ctx.clock
        )
        return UserType.from_entity(user)
