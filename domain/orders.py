"""The orders of assets, batches and users lists, by creation time (submissions: history.py)."""

from __future__ import annotations

from enum import StrEnum


class _ByCreationTime(StrEnum):
    @property
    def is_descending(self) -> bool:
        return self.value == "CREATED_AT_DESC"


class AssetOrder(_ByCreationTime):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"


class BatchOrder(_ByCreationTime):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"


class UserOrder(_ByCreationTime):
    CREATED_AT_DESC = "CREATED_AT_DESC"
    CREATED_AT_ASC = "CREATED_AT_ASC"
