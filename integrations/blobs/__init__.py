"""Blob storage adapters: S3 presigned URLs, or local files behind server-signed URLs."""

from integrations.blobs.local import LocalBlobStore
from integrations.blobs.local_routes import blob_routes
from integrations.blobs.s3 import S3BlobStore
from integrations.blobs.signing import load_or_create_signing_key

__all__ = ["LocalBlobStore", "S3BlobStore", "blob_routes", "load_or_create_signing_key"]
