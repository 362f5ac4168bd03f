"""Users: the User type, the viewer and the administrators' user list, profile mutations."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import strawberry

from domain import projections as p
from domain.access import AdministratorsOnly
from domain.assets import AssetStatus
from domain.errors import NotFound
from domain.history import SubmissionOrder
from domain.services import users
from domain.submissions import SubmissionStatus
from domain.users import User
from domain.users import UserFilter as UserFilterValue
from graph.execution import loads
from graph.execution.declarations import (
    Entity,
    Paged,
    ReferenceOnly,
    Source,
    declared,
    identifier,
)
from graph.ids import required_id
from graph.protection.sign_in import revoking
from graph.schema import history
from graph.schema.nodes import (
    BATCHES,
    After,
    AppInfo,
    Before,
    Connection,
    First,
    Last,
    Node,
    Paging,
    by_id,
    connection,
    described_enum,
)
from graph.schema.orders import (
    AssetOrder,
    AssetOrderArgument,
    BatchOrder,
    BatchOrderArgument,
    UserOrder,
    UserOrderArgument,
)

if TYPE_CHECKING:
    from graph.schema.assets import AssetType
    from graph.schema.batches import BatchType
    from graph.schema.submissions import SubmissionType

# These modules import this one (their objects have owners).
LazyAsset = Annotated["AssetType", strawberry.lazy("graph.schema.assets")]
LazySubmission = Annotated["SubmissionType", strawberry.lazy("graph.schema.submissions")]
LazyBatch = Annotated["BatchType", strawberry.lazy("graph.schema.batches")]

OWNED_ASSETS = Paged(
    loads.asset_pages, loads.asset_counts, loads.asset_page_arguments, loads.asset_window
)
OWNED_SUBMISSIONS = Paged(
    loads.submission_pages,
    loads.submission_counts,
    loads.submission_page_arguments,
    loads.submission_window,
)
described_enum(
    AssetStatus,
    name="AssetStatus",
    description="Where an asset is in its life.",
    values={
        "PENDING_UPLOAD": "Reserved by requestAssetUpload; its bytes are not confirmed yet.",
        "AVAILABLE": "Uploaded and checked: it can be downloaded and attached to submissions.",
        "DELETED": "Deleted by its owner or by retention; its bytes are gone.",
    },
)
described_enum(
    SubmissionStatus,
    name="SubmissionStatus",
    description="Where a submission is in its life: PENDING, RUNNING, then SUCCEEDED, FAILED "
    "or CANCELLED.",
    values={
        "PENDING": "Queued, waiting for a worker (also after retrySubmission).",
        "RUNNING": "A worker is running the model on it.",
        "SUCCEEDED": "Finished with a result.",
        "FAILED": "Finished without a result; `error` says why, and retrySubmission queues it "
        "again.",
        "CANCELLED": "Finished without running: cancelSubmission or cancelBatch cancelled it.",
    },
)
AssetStatusArgument = Annotated[
    AssetStatus | None,
    strawberry.argument(description="Only assets in this status; null: any status."),
]
SubmissionStatusArgument = Annotated[
    SubmissionStatus | None,
    strawberry.argument(description="Only submissions in this status; null: any status."),
]
SubmissionFilterArgument = Annotated[
    history.SubmissionFilter | None,
    strawberry.argument(
        description="Only submissions of one model, or created in a time window; null: all."
    ),
]
SubmissionOrderArgument = Annotated[
    SubmissionOrder | None,
    strawberry.argument(description="The order of the list; default newest first."),
]
UserId = Annotated[strawberry.ID, strawberry.argument(description="The user's global id.")]

# An erased account's emptied row is invisible to every query (persistence/users.py).
UNERASED = (p.Match("erased_at", None),)
_USERS = Paged(
    loads.user_page,
    loads.user_count,
    loads.user_page_arguments,
    loads.user_window,
    value=None,
    where=UNERASED,
    rule=AdministratorsOnly(),
)


@strawberry.type(
    name="User",
    description="A person using the API, created at their first sign-in from the token's "
    "claims. Visible to themselves, and to administrators.",
)
class UserType(Node, Entity):
    id: strawberry.ID = identifier()
    email: str = strawberry.field(
        description="From the token's email claim; follows the token at each sign-in."
    )
    name: str = strawberry.field(
        description="Display name: from the token at the first sign-in, then the user's own "
        "(updateViewer), 1 to 200 characters."
    )
    language: str = strawberry.field(
        description="Preferred language, a BCP 47 tag such as `en` or `pt-BR` (updateViewer)."
    )
    is_active: bool = strawberry.field(
        description="False once an administrator deactivated the user: their requests are "
        "then FORBIDDEN until reactivateUser."
    )
    groups: list[str] = strawberry.field(
        description="The token's `cognito:groups`, followed at each sign-in; the `admin` group "
        "(by default) makes an administrator."
    )
    created_at: datetime = strawberry.field(description="When the user first signed in.")
    updated_at: datetime = strawberry.field(description="When the user last changed.")
    entity: strawberry.Private[User]

    @declared(
        OWNED_ASSETS, description="The user's assets, newest first unless `orderBy` says otherwise."
    )
    async def assets(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        status: AssetStatusArgument = None,
        last: Last = None,
        before: Before = None,
        order_by: AssetOrderArgument = AssetOrder.CREATED_AT_DESC,
    ) -> Connection[LazyAsset]:
        from graph.schema.assets import assets_of

        paging = Paging(first, after, last, before)
        return await assets_of(info, self.entity.id, paging, status, order_by)

    @declared(
        OWNED_SUBMISSIONS,
        description="The user's submissions, newest first unless `orderBy` says otherwise. "
        "BAD_USER_INPUT for a bad `filter`.",
    )
    async def submissions(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        status: SubmissionStatusArgument = None,
        filter: SubmissionFilterArgument = None,
        order_by: SubmissionOrderArgument = history.DEFAULT_ORDER,
        last: Last = None,
        before: Before = None,
    ) -> Connection[LazySubmission]:
        from graph.schema.submissions import submissions_of

        paging = Paging(first, after, last, before)
        return await submissions_of(info, self.entity.id, paging, status, filter, order_by)

    @declared(
        ReferenceOnly(BATCHES),
        description="The user's batches, newest first unless `orderBy` says otherwise.",
    )
    async def batches(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        last: Last = None,
        before: Before = None,
        order_by: BatchOrderArgument = BatchOrder.CREATED_AT_DESC,
    ) -> Connection[LazyBatch]:
        from graph.schema.batches import batches_of

        return await batches_of(info, self.entity.id, Paging(first, after, last, before), order_by)


async def load_user(info: AppInfo, user_id: UUID) -> UserType:
    user = await info.context.loaders.level(loads.users_by_id).load(user_id)
    if user is None:
        raise NotFound("User", user_id)
    return UserType.from_entity(user)


@strawberry.input(description="Which users `users` lists: those matching every field given.")
class UserFilter:
    email_contains: str | None = strawberry.field(
        default=None, description="Only users whose email contains this text, ignoring case."
    )
    is_active: bool | None = strawberry.field(
        default=None, description="Only active (true) or only deactivated (false) users."
    )


@strawberry.input(description="The viewer's profile changes; a field left null is unchanged.")
class UpdateViewerInput:
    name: str | None = strawberry.field(
        default=None,
        description="New display name, 1 to 200 characters (trimmed); BAD_USER_INPUT otherwise.",
    )
    language: str | None = strawberry.field(
        default=None,
        description="New language, a BCP 47 tag such as `en` or `pt-BR`; BAD_USER_INPUT otherwise.",
    )


@strawberry.type
class UserQueries:
    @declared(
        Source(loads.viewer, value=p.Viewer()),
        description="The signed-in user (the API key's user for a key). UNAUTHENTICATED "
        "without a valid token or key, FORBIDDEN for a deactivated user.",
    )
    async def viewer(self, info: AppInfo) -> UserType:
        return await load_user(info, info.context.principal.user_id)

    @declared(
        Source(loads.users_by_id, "User", where=UNERASED),
        description="A user by id: the viewer, or anyone for administrators; NOT_FOUND for "
        "anyone else.",
    )
    async def user(self, info: AppInfo, id: UserId) -> UserType | None:
        return await by_id(info, id, "User", loads.users_by_id, UserType.from_entity)

    @declared(
        _USERS,
        description="Every user, oldest first unless `orderBy` says otherwise; administrators "
        "only (FORBIDDEN for others).",
    )
    async def users(
        self,
        info: AppInfo,
        first: First = 20,
        after: After = None,
        filter: Annotated[
            UserFilter | None,
            strawberry.argument(description="Only users matching it; null: every user."),
        ] = None,
        last: Last = None,
        before: Before = None,
        order_by: UserOrderArgument = UserOrder.CREATED_AT_ASC,
    ) -> Connection[UserType]:
        ctx = info.context
        value = UserFilterValue(
            email_contains=filter.email_contains if filter else None,
            is_active=filter.is_active if filter else None,
        )
        request = Paging(first, after, last, before).ordered(
            "User", order_by, UserOrder.CREATED_AT_ASC
        )
        page = await users.list_users(ctx.uow(), ctx.principal, request, value)
        return connection(
            page,
            UserType.from_entity,
            lambda: users.count_users(ctx.uow(), ctx.principal, value),
            "User",
        )


@strawberry.type
class UserMutations:
    @strawberry.mutation(
        description="Change the viewer's display name or language; returns the viewer. "
        "BAD_USER_INPUT for an invalid value."
    )
    async def update_viewer(
        self,
        info: AppInfo,
        input: Annotated[UpdateViewerInput, strawberry.argument(description="The changes.")],
    ) -> UserType:
        ctx = info.context
        user = await users.update_viewer(
            ctx.uow(), ctx.principal, name=input.name, language=input.language, clock=ctx.clock
        )
        return UserType.from_entity(user)

    @strawberry.mutation(
        description="Deactivate a user (administrators only, FORBIDDEN for others): their "
        "requests become FORBIDDEN and their open sockets close within about a second. "
        "NOT_FOUND for an unknown id; CONFLICT for the administrator's own account."
    )
    async def deactivate_user(self, info: AppInfo, id: UserId) -> UserType:
        ctx = info.context
        principal = ctx.principal
        users.require_admin(principal)
        user_id = required_id(id, "User")
        async with revoking(ctx.sign_ins, [user_id]):  # cached sign-ins end on every process
            user = await users.deactivate_user(ctx.uow(), principal, user_id, clock=ctx.clock)
        return UserType.from_entity(user)
