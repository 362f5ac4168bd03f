"""Assets: the Asset type, the viewer's assets, uploads and deletion."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain import projections as p
from domain.assets import Asset, AssetStatus
from domain.services import assets
from graph.execution import loads
from graph.execution.declarations import (
    Computed,
    Entity,
    Source,
    declared,
    identifier,
    to_one,
)
from graph.ids import required_id
from graph.schema.nodes import (
    After,
    AppInfo,
    Before,
    Connection,
    First,
    Last,
    Node,
    Paging,
    by_id,
    of_the_viewer,
    paged_connection,
)
from graph.schema.orders import AssetOrder, AssetOrderArgument
from graph.schema.users import OWNED_ASSETS, AssetStatusArgument, UserType

AssetId = Annotated[strawberry.ID, strawberry.argument(description="The asset's global id.")]


@strawberry.type(
    name="Asset",
    description="A file uploaded to object storage (requestAssetUpload), to attach to "
    "submissions. Visible to its owner and administrators.",
)
class AssetType(Node, Entity):
    id: strawberry.ID = identifier()
    file_name: str = strawberry.field(
        description="The file's name as given at upload, 1 to 255 UTF-8 bytes."
    )
    content_type: str = strawberry.field(description="The file's media type, e.g. `image/png`.")
    size_bytes: int = strawberry.field(description="The file's size in bytes.")
    status: AssetStatus = strawberry.field(
        description="PENDING_UPLOAD until completeAssetUpload, then AVAILABLE, DELETED at the end."
    )
    created_at: datetime = strawberry.field(description="When the upload was requested.")
    updated_at: datetime = strawberry.field(description="When the status last changed.")
    entity: strawberry.Private[Asset]
    owner: UserType = to_one("owner_id", load=loads.users_by_id, description="Who uploaded it.")

    @declared(
        Computed(loads.download_urls, "a URL signed in Python per request"),
        description="A short-lived URL to GET the bytes (valid one hour by default); null "
        "unless AVAILABLE.",
    )
    async def download_url(self, info: AppInfo) -> str | None:
        url: str | None = await info.context.loaders.level(loads.download_urls).load(self.entity)
        return url


async def assets_of(
    info: AppInfo,
    owner_id: UUID,
    paging: Paging,
    status: AssetStatus | None,
    order: AssetOrder | None,
) -> Connection[AssetType]:
    """Newest first unless `order` says otherwise, as people read their own lists."""
    request = paging.ordered("Asset", order, AssetOrder.CREATED_AT_DESC)
    return await paged_connection(
        info, OWNED_ASSETS, (owner_id, (request, status)), AssetType.from_entity, "Asset"
    )


_VIEWER_ASSETS = of_the_viewer(OWNED_ASSETS, "asset")


@strawberry.type
class AssetQueries:
    @declared(
        Source(loads.assets_by_id, "Asset", where=(p.Match("status", "DELETED", negated=True),)),
        description="An asset by id; NOT_FOUND when the viewer cannot see it.",
    )
    async def asset(self, info: AppInfo, id: AssetId) -> AssetType | None:
        return await by_id(info, id, "Asset", loads.assets_by_id, AssetType.from_entity)

    @declared(
        _VIEWER_ASSETS,
        description="The viewer's assets, newest first unless `orderBy` says otherwise.",
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
    ) -> Connection[AssetType]:
        paging = Paging(first, after, last, before)
        return await assets_of(info, info.context.principal.user_id, paging, status, order_by)


@strawberry.input(description="The file to upload; each bad field is BAD_USER_INPUT.")
class RequestAssetUploadInput:
    file_name: str = strawberry.field(
        description="A plain file name: 1 to 255 UTF-8 bytes, no path separators or control "
        "characters."
    )
    content_type: str = strawberry.field(
        description="The media type: image/png, image/jpeg, image/gif, image/webp, "
        "application/pdf, text/csv, application/json, text/plain, audio/wav or audio/x-wav."
    )
    size_bytes: int = strawberry.field(
        description="The exact size in bytes: 1 to 104,857,600 (100 MiB) by default; the "
        "upload must match it."
    )


@strawberry.type(description="The reserved asset and where to PUT its bytes.")
class RequestAssetUploadPayload:
    asset: AssetType = strawberry.field(description="The new asset, PENDING_UPLOAD.")
    upload_url: str = strawberry.field(
        description="PUT the bytes here, once, before `expiresAt`; then call completeAssetUpload."
    )
    upload_headers: JSON = strawberry.field(
        description="The headers the PUT must carry, as an object of header name to value."
    )
    expires_at: datetime = strawberry.field(
        description="When the upload URL stops working (15 minutes by default); an asset "
        "still PENDING_UPLOAD then becomes DELETED."
    )


@strawberry.type(description="The asset a mutation changed.")
class AssetPayload:
    asset: AssetType = strawberry.field(description="The asset as it is now.")


@strawberry.type
class AssetMutations:
    @strawberry.mutation(
        description="Reserve an asset and get a URL to PUT its bytes to. BAD_USER_INPUT for "
        "a bad name, media type or size."
    )
    async def request_asset_upload(
        self,
        info: AppInfo,
        input: Annotated[
            RequestAssetUploadInput, strawberry.argument(description="The file to upload.")
        ],
    ) -> RequestAssetUploadPayload:
        ctx = info.context
        asset, upload = await assets.request_upload(
            ctx.uow(),
            ctx.blobs,
            ctx.principal,
            file_name=input.file_name,
            content_type=input.content_type,
            size_bytes=input.size_bytes,
            policy=ctx.upload_policy,
            clock=ctx.clock,
        )
        return RequestAssetUploadPayload(
            asset=AssetType.from_entity(asset),
            upload_url=upload.url,
            upload_headers=JSON(upload.headers),
            expires_at=upload.expires_at,
        )

    @strawberry.mutation(
        description="Check the bytes are there and of the announced size: PENDING_UPLOAD -> "
        "AVAILABLE (an AVAILABLE asset is returned as it is). CONFLICT when nothing or the "
        "wrong size was uploaded; NOT_FOUND for an unknown, DELETED or other user's asset "
        "(FORBIDDEN to an administrator)."
    )
    async def complete_asset_upload(self, info: AppInfo, id: AssetId) -> AssetPayload:
        ctx = info.context
        asset = await assets.complete_upload(
            ctx.uow(), ctx.blobs, ctx.principal, required_id(id, "Asset"), clock=ctx.clock
        )
        return AssetPayload(asset=AssetType.from_entity(asset))

    @strawberry.mutation(
        description="Mark an asset DELETED and remove its bytes (submissions that used it "
        "keep it). NOT_FOUND for an unknown, DELETED or other user's asset (FORBIDDEN to an "
        "administrator)."
    )
    async def delete_asset(self, info: AppInfo, id: AssetId) -> AssetPayload:
        ctx = info.context
        asset = await assets.delete_asset(
            ctx.uow(), ctx.blobs, ctx.principal, required_id(id, "Asset"), clock=ctx.clock
        )
        return AssetPayload(asset=AssetType.from_entity(asset))
