"""Assets: the Asset type, the viewer's assets, uploads and deletion."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import strawberry
from strawberry.scalars import JSON

from domain.assets import Asset, AssetStatus
from domain.services import assets
from graph.execution import loads
from graph.ids import page_request, required_id
from graph.schema.declarations import Computed, Entity, Paged, Source, declared, identifier, to_one
from graph.schema.nodes import AppInfo, Connection, Node, by_id, connection
from graph.schema.users import UserType


@strawberry.type(name="Asset")
class AssetType(Node, Entity):
    id: strawberry.ID = identifier()
    file_name: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    created_at: datetime
    updated_at: datetime
    entity: strawberry.Private[Asset]
    owner: UserType = to_one("owner", key="owner_id", load=loads.users_by_id)

    @declared(
        Computed(loads.download_urls, "a URL signed in Python per request"),
        description="A short-lived URL to fetch the bytes; null unless AVAILABLE.",
    )
    async def download_url(self, info: AppInfo) -> str | None:
        url: str | None = await info.context.loaders.level(loads.download_urls).load(self.entity)
        return url


async def assets_of(
    info: AppInfo, owner_id: UUID, first: int | None, after: str | None, status: AssetStatus | None
) -> Connection[AssetType]:
    """Newest first, as people read their own lists."""
    loaders = info.context.loaders
    key = (owner_id, (page_request(first, after, descending=True), status))
    page = await loaders.paged(loads.asset_pages).load(key)
    return connection(
        page, AssetType.from_entity, lambda: loaders.paged(loads.asset_counts).load(key)
    )


_VIEWER_ASSETS = Paged(
    "assets",
    loads.for_the_viewer(loads.asset_pages, "viewer_asset_page"),
    loads.for_the_viewer(loads.asset_counts, "viewer_asset_count"),
    loads.asset_page_arguments,
    loads.asset_window,
)


@strawberry.type
class AssetQueries:
    @declared(Source("asset", loads.assets_by_id, "Asset"))
    async def asset(self, info: AppInfo, id: strawberry.ID) -> AssetType | None:
        return await by_id(info, id, "Asset", loads.assets_by_id, AssetType.from_entity)

    @declared(_VIEWER_ASSETS, description="The viewer's assets.")
    async def assets(
        self,
        info: AppInfo,
        first: int | None = 20,
        after: str | None = None,
        status: AssetStatus | None = None,
    ) -> Connection[AssetType]:
        return await assets_of(info, info.context.principal.user_id, first, after, status)


@strawberry.input
class RequestAssetUploadInput:
    file_name: str
    content_type: str
    size_bytes: int


@strawberry.type
class RequestAssetUploadPayload:
    asset: AssetType
    upload_url: str = strawberry.field(description="PUT the bytes here.")
    upload_headers: JSON = strawberry.field(description="Headers the PUT must carry.")
    expires_at: datetime


@strawberry.type
class AssetPayload:
    asset: AssetType


@strawberry.type
class AssetMutations:
    @strawberry.mutation(description="Reserve an asset and get a URL to PUT its bytes to.")
    async def request_asset_upload(
        self, info: AppInfo, input: RequestAssetUploadInput
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

    @strawberry.mutation(description="Check the bytes are there: PENDING_UPLOAD -> AVAILABLE.")
    async def complete_asset_upload(self, info: AppInfo, id: strawberry.ID) -> AssetPayload:
        ctx = info.context
        asset = await assets.complete_upload(
            ctx.uow(), ctx.blobs, ctx.principal, required_id(id, "Asset"), clock=ctx.clock
        )
        return AssetPayload(asset=AssetType.from_entity(asset))

    @strawberry.mutation(description="Delete an asset and its bytes.")
    async def delete_asset(self, info: AppInfo, id: strawberry.ID) -> AssetPayload:
        ctx = info.context
        asset = await assets.delete_asset(
            ctx.uow(), ctx.blobs, ctx.principal, required_id(id, "Asset"), clock=ctx.clock
        )
        return AssetPayload(asset=AssetType.from_entity(asset))
