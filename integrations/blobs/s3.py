"""BlobStore on Amazon S3 (or an S3-compatible endpoint) via presigned URLs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from domain.ports import PresignedUpload
from integrations.blobs.signing import attachment_disposition

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


# The bucket's lifecycle rule expires objects still tagged like this (infra/), which covers
# uploads that were never confirmed even if the sweeper never runs.
PENDING_UPLOAD_TAGGING = "assay-status=pending-upload"


class S3BlobStore:
    """Objects in one bucket; clients upload and download directly with presigned URLs."""

    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self._bucket = bucket
        self._client: S3Client = client or boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(signature_version="s3v4", retries={"mode": "standard"}),
        )

    async def presign_upload(
        self, key: str, *, content_type: str, size_bytes: int, expires_in: int
    ) -> PresignedUpload:
        issued = datetime.now(UTC)
        # Content type and length go into the signed headers, so S3 rejects any other body.
        url = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size_bytes,
                "Tagging": PENDING_UPLOAD_TAGGING,
                # A conditional write: S3 refuses a second PUT to the key (412), so bytes of
                # a completed asset cannot be replaced with the same URL.
                "IfNoneMatch": "*",
            },
            ExpiresIn=expires_in,
        )
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size_bytes),
            "x-amz-tagging": PENDING_UPLOAD_TAGGING,
            "If-None-Match": "*",
        }
        return PresignedUpload(
            url=url, headers=headers, expires_at=issued + timedelta(seconds=expires_in)
        )

    async def confirm(self, key: str) -> None:
        """Drop the pending-upload tag, so the bucket's lifecycle rule keeps the object."""
        await asyncio.to_thread(self._client.delete_object_tagging, Bucket=self._bucket, Key=key)

    async def presign_download(self, key: str, *, expires_in: int, file_name: str) -> str:
        return await asyncio.to_thread(
            self._client.generate_presigned_url,
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": attachment_disposition(file_name),
            },
            ExpiresIn=expires_in,
        )

    async def size_of(self, key: str) -> int | None:
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self._bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return head["ContentLength"]

    async def delete(self, key: str) -> None:
        # S3 answers 204 for a missing key, so this is idempotent as the port requires.
        await asyncio.to_thread(self._client.delete_object, Bucket=self._bucket, Key=key)

    async def check(self) -> None:
        await asyncio.to_thread(self._client.head_bucket, Bucket=self._bucket)
