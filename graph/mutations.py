"""The Mutation root. Each mutation runs one use case in its own unit of work."""

from __future__ import annotations

import strawberry

from domain.services import users
from graph.accounts import AccountMutations
from graph.batches import BatchMutations
from graph.ids import required_id
from graph.inference_mutations import InferenceMutations
from graph.protection.sign_in import revoking
from graph.types import AppInfo, UserType
from graph.webhooks import WebhookMutations


@strawberry.input
class UpdateViewerInput:
    name: str | None = None
    language: str | None = None


@strawberry.type
class Mutation(InferenceMutations, WebhookMutations, BatchMutations, AccountMutations):
    @strawberry.mutation(description="Change the viewer's display name or language.")
    async def update_viewer(self, info: AppInfo, input: UpdateViewerInput) -> UserType:
        ctx = info.context
        user = await users.update_viewer(
            ctx.uow(), ctx.principal, name=input.name, language=input.language, clock=ctx.clock
        )
        return UserType.from_entity(user)

    @strawberry.mutation(description="Deactivate a user (administrators only).")
    async def deactivate_user(self, info: AppInfo, id: strawberry.ID) -> UserType:
        ctx = info.context
        principal = ctx.principal
        users.require_admin(principal)
        user_id = required_id(id, "User")
        async with revoking(ctx.sign_ins, [user_id]):  # cached sign-ins end on every process
            user = await users.deactivate_user(ctx.uow(), principal, user_id, clock=ctx.clock)
        return UserType.from_entity(user)
