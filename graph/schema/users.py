"""Users: the User type, the viewer and the administrators' user list, profile mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry

from domain.assets import AssetStatus
from domain.errors import NotFound
from domain.history import SubmissionOrder
from domain.services import users
from domain.submissions import SubmissionStatus
from domain.users import User
from domain.users import UserFilter as UserFilterValue
from graph.execution import loads
from graph.ids import page_request, required_id
from graph.protection.sign_in import revoking
from graph.schema import history
from graph.schema.declarations import (
    Entity,
    Paged,
    ReferenceOnly,
    Source,
    declared,
    identifier,
)
from graph.schema.nodes import BATCHES, AppInfo, Connection, Node, by_id, connection

if TYPE_CHECKING:
    from graph.schema.assets import AssetType
    from graph.schema.batches import BatchType
    from graph.schema.submissions import SubmissionType

# These modules import this one (their objects have owners).
LazyAsset = Annotated["AssetType", strawberry.lazy("graph.schema.assets")]
LazySubmission = Annotated["SubmissionType", strawberry.lazy("graph.schema.submissions")]
LazyBatch = Annotated["BatchType", strawberry.lazy("graph.schema.batches")]

_ASSETS = Paged(
    "assets", loads.asset_pages, loads.asset_counts, loads.asset_page_arguments, loads.asset_window
)
_SUBMISSIONS = Paged(
    "submissions",
    loads.submission_pages,
    loads.submission_counts,
    loads.submission_page_arguments,
    loads.submission_window,
)
_USERS = Paged(
    "users", loads.user_page, loads.user_count, loads.user_page_arguments, loads.user_window
)


@strawberry.type(name="User")
class UserType(Node, Entity):
    id: strawberry.ID = identifier()
    email: str
    name: str
    language: str
    is_active: bool
    groups: list[str]
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[User]

    @declared(_ASSETS)
    async def assets(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: AssetStatus | None = None,
    ) -> Connection[LazyAsset]:
        from graph.schema.assets import assets_of

        return await assets_of(info, self.entity.id, first, after, status)

    @declared(_SUBMISSIONS)
    async def submissions(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: SubmissionStatus | None = None,
        filter: history.SubmissionFilter | None = None,
        order_by: SubmissionOrder | None = history.DEFAULT_ORDER,
    ) -> Connection[LazySubmission]:
        from graph.schema.submissions import submissions_of

        return await submissions_of(info, self.entity.id, first, after, status, filter, order_by)

    @declared(ReferenceOnly(BATCHES), description="Newest first.")
    async def batches(
        self, info: AppInfo, first: int | None = 20, after: str | None = None
    ) -> Connection[LazyBatch]:
        from graph.schema.batches import batches_of

        return await batches_of(info, self.entity.id, first, after)


async def load_user(info: AppInfo, user_id: UUID) -> UserType:
    user = await info.context.loaders.level(loads.users_by_id).load(user_id)
    if user is None:
        raise NotFound("User", user_id)
    return UserType.from_entity(user)


@strawberry.input
class UserFilter:
    email_contains: str | None = None
    is_active: bool | None = None


@strawberry.input
class UpdateViewerInput:
    name: str | None = None
    language: str | None = None


@strawberry.type
class UserQueries:
    @declared(Source("viewer", loads.viewer), description="The signed-in user.")
    async def viewer(self, info: AppInfo) -> UserType:
        return await load_user(info, info.context.principal.user_id)

    @declared(
        Source("user", loads.users_by_id, "User"),
        description="A user: the viewer, or anyone for administrators.",
    )
    async def user(self, info: AppInfo, id: strawberry.ID) -> UserType | None:
        return await by_id(info, id, "User", loads.users_by_id, UserType.from_entity)

    @declared(_USERS, description="Every user, for administrators.")
    async def users(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> Connection[UserType]:
        ctx = info.context
        value = UserFilterValue(
            email_contains=filter.email_contains if filter else None,
            is_active=filter.is_active if filter else None,
        )
        page = await users.list_users(ctx.uow(), ctx.principal, page_request(first, after), value)
        return connection(
            page,
            UserType.from_entity,
            lambda: users.count_users(ctx.uow(), ctx.principal, value),
        )


@strawberry.type
class UserMutations:
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
