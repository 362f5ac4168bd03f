"""Assets: files a user uploads to object storage and submissions refer to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class AssetStatus(StrEnum):
    PENDING_UPLOAD = "PENDING_UPLOAD"
    AVAILABLE = "AVAILABLE"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Asset:
    id: UUID
    owner_id: UUID
    file_name: str
    content_type: str
    size_bytes: int
    status: AssetStatus
    object_key: str
    upload_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
