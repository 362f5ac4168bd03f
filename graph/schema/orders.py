"""The orders of assets, batches and users lists in the schema (the values: domain/orders.py)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.orders import AssetOrder, BatchOrder, UserOrder, _ByCreationTime
from graph.schema.nodes import described_enum

__all__ = [
    "AssetOrder",
    "AssetOrderArgument",
    "BatchOrder",
    "BatchOrderArgument",
    "UserOrder",
    "UserOrderArgument",
]


def _describe(cls: type[_ByCreationTime], objects: str, default: str) -> None:
    newest, oldest = "Newest first", "Oldest first"
    described_enum(
        cls,
        name=cls.__name__,
        description=f"The order of a {objects} list, by creation time.",
        values={
            "CREATED_AT_DESC": f"{newest} (the default)." if default == "DESC" else f"{newest}.",
            "CREATED_AT_ASC": f"{oldest} (the default)." if default == "ASC" else f"{oldest}.",
        },
    )


_describe(AssetOrder, "assets", "DESC")
_describe(BatchOrder, "batches", "DESC")
# The contract keeps admin `users` in its order, oldest first, unless orderBy says otherwise.
_describe(UserOrder, "users", "ASC")

AssetOrderArgument = Annotated[
    AssetOrder | None,
    strawberry.argument(description="The order of the list; default (and null) newest first."),
]
BatchOrderArgument = Annotated[
    BatchOrder | None,
    strawberry.argument(description="The order of the list; default (and null) newest first."),
]
UserOrderArgument = Annotated[
    UserOrder | None,
    strawberry.argument(description="The order of the list; default (and null) oldest first."),
]
