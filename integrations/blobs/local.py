"""BlobStore on the local filesystem, with URLs the server signs and serves itself."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from domain.ports import PresignedUpload
from integrations.blobs.signing import (
    DownloadGrant,
    UploadGrant,
    sign_download,
    sign_upload,
    verify_download,
    verify_upload,
)

_META_DIR = ".meta"
_FLUSH_BYTES = 1024 * 1024
_DEFAULT_CONTENT_TYPE = "application/octet-stream"


class InvalidKeyError(ValueError):
    """The key could name a path outside the store's root."""


class BodyTooLargeError(Exception):
    """More bytes arrived than the upload URL allows."""


class BodyTooShortError(Exception):
    """The body ended before the size the upload URL promises."""


class AlreadyStoredError(Exception):
    """Bytes are stored at the key already: an upload URL is good for one upload, as S3's
    conditional write (If-None-Match: *) makes it there."""


def _check_key(key: str) -> list[str]:
    if not key or key.startswith("/") or "\\" in key or any(c < " " for c in key):
        raise InvalidKeyError(f"invalid blob key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts) or parts[0] == _META_DIR:
        raise InvalidKeyError(f"invalid blob key {key!r}")
    return parts


def _check_header_value(name: str, value: str) -> None:
    if not value or len(value) > 255 or not (value.isascii() and value.isprintable()):
        raise ValueError(f"invalid {name} {value!r}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(temp: Path, final: Path) -> None:
    os.replace(temp, final)
    _fsync_dir(final.parent)


def _remove_with_empty_parents(path: Path, stop: Path) -> None:
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()
        except OSError:  # not empty (or already gone): the tree above is in use
            return
        parent = parent.parent


def _open_temp(directory: Path) -> tuple[Path, BinaryIO]:
    # A concurrent delete may remove the freshly made, still empty directory; retry.
    for _ in range(5):
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".{secrets.token_hex(8)}.part"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:
            continue
        return temp, os.fdopen(fd, "wb")
    raise OSError(f"could not create a temporary file in {directory}")


class PendingWrite:
    """An upload being streamed into a temporary file beside its final path."""

    def __init__(self, store: LocalBlobStore, key: str, expected_size: int) -> None:
        self._store = store
        self._key = key
        self._expected = expected_size
        self._received = 0
        self._buffer = bytearray()
        self._hash = hashlib.md5(usedforsecurity=False)  # S3-compatible ETag
        self._temp: Path | None = None
        self._file: BinaryIO | None = None

    async def open(self) -> None:
        directory = self._store.path_for(self._key).parent
        self._temp, self._file = await asyncio.to_thread(_open_temp, directory)

    async def write(self, chunk: bytes) -> None:
        """Append chunk; raise BodyTooLargeError as soon as the total exceeds the signed size."""
        self._received += len(chunk)
        if self._received > self._expected:
            raise BodyTooLargeError(f"more than {self._expected} bytes")
        self._buffer += chunk
        if len(self._buffer) >= _FLUSH_BYTES:
            await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        assert self._file is not None
        self._hash.update(self._buffer)
        self._file.write(self._buffer)
        self._buffer.clear()

    async def commit(self, content_type: str) -> str:
        """Move the complete body into place; return its ETag."""
        if self._received < self._expected:
            raise BodyTooShortError(f"{self._received} of {self._expected} bytes")
        await asyncio.to_thread(self._finish, content_type)
        return self._hash.hexdigest()

    def _finish(self, content_type: str) -> None:
        assert self._file is not None
        assert self._temp is not None
        self._flush()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._store.install(self._key, self._temp, content_type)
        self._temp = None

    async def abort(self) -> None:
        """Drop the temporary file; safe to call at any point, also after commit."""
        if self._temp is not None or self._file is not None:
            await asyncio.to_thread(self._discard)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._temp is not None:
            _remove_with_empty_parents(self._temp, self._store.root)
        self._file = self._temp = None


class LocalBlobStore:
    """Blobs stored as files at root/key; their content types live under root/.meta/key."""

    def __init__(
        self,
        root: Path,
        base_url: str,
        signing_key: bytes,
        max_bytes: int,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.max_bytes = max_bytes
        self._base_url = base_url.rstrip("/")
        self._signing_key = signing_key
        self._clock = clock
        # Serialises the content-type/data swap so concurrent PUTs of one key stay paired.
        self._install_lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        """The file for key; raise InvalidKeyError for keys that could escape root."""
        return self.root.joinpath(*_check_key(key))

    def _meta_path(self, key: str) -> Path:
        return self.root.joinpath(_META_DIR, *_check_key(key))

    def _url(self, key: str, params: dict[str, str]) -> str:
        return f"{self._base_url}/blobs/{quote(key, safe='/')}?{urlencode(params, quote_via=quote)}"

    def _expiry(self, expires_in: int) -> int:
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        return int(self._clock()) + expires_in

    async def presign_upload(
        self, key: str, *, content_type: str, size_bytes: int, expires_in: int
    ) -> PresignedUpload:
        self.path_for(key)
        _check_header_value("content type", content_type)
        if not 0 <= size_bytes <= self.max_bytes:
            raise ValueError(f"size_bytes must be between 0 and {self.max_bytes}")
        grant = UploadGrant(key, self._expiry(expires_in), size_bytes, content_type)
        return PresignedUpload(
            url=self._url(key, sign_upload(self._signing_key, grant)),
            headers={"Content-Type": content_type, "Content-Length": str(size_bytes)},
            expires_at=datetime.fromtimestamp(grant.expires, UTC),
        )

    async def presign_download(self, key: str, *, expires_in: int, file_name: str) -> str:
        self.path_for(key)
        if not file_name or "\x00" in file_name:
            raise ValueError("file_name must be a non-empty string without NUL")
        grant = DownloadGrant(key, self._expiry(expires_in), file_name)
        return self._url(key, sign_download(self._signing_key, grant))

    def authorise_upload(self, key: str, params: Mapping[str, str]) -> UploadGrant:
        """The grant in a PUT URL; raise SignatureError when forged, expired or not a PUT."""
        return verify_upload(self._signing_key, key, params, now=self._clock())

    def authorise_download(self, key: str, params: Mapping[str, str]) -> DownloadGrant:
        """The grant in a GET URL; raise SignatureError when forged, expired or not a GET."""
        return verify_download(self._signing_key, key, params, now=self._clock())

    async def begin_write(self, key: str, expected_size: int) -> PendingWrite:
        """Start streaming an upload of exactly expected_size bytes to key."""
        pending = PendingWrite(self, key, expected_size)
        await pending.open()
        return pending

    def install(self, key: str, temp: Path, content_type: str) -> None:
        """Blocking: atomically put a complete, fsynced temp file in place as key; raise
        AlreadyStoredError when the key holds bytes already (the first upload wins)."""
        final, meta = self.path_for(key), self._meta_path(key)
        meta_temp, meta_file = _open_temp(meta.parent)
        with meta_file:
            meta_file.write(content_type.encode("ascii"))
            meta_file.flush()
            os.fsync(meta_file.fileno())
        with self._install_lock:
            if final.exists():
                _remove_with_empty_parents(meta_temp, self.root / _META_DIR)
                raise AlreadyStoredError(key)
            _replace_durably(meta_temp, meta)
            _replace_durably(temp, final)

    def _content_type(self, key: str) -> str:
        try:
            return self._meta_path(key).read_text("ascii") or _DEFAULT_CONTENT_TYPE
        except (FileNotFoundError, UnicodeDecodeError):
            return _DEFAULT_CONTENT_TYPE

    async def open_for_read(self, key: str) -> tuple[os.stat_result, str] | None:
        """The stat and content type of the stored file, or None when nothing is stored."""
        path = self.path_for(key)

        def read() -> tuple[os.stat_result, str] | None:
            try:
                return os.stat(path), self._content_type(key)
            except FileNotFoundError:
                return None

        return await asyncio.to_thread(read)

    async def confirm(self, key: str) -> None:
        """Nothing to do: stale local uploads are removed by the sweeper alone."""

    async def size_of(self, key: str) -> int | None:
        path = self.path_for(key)
        try:
            return (await asyncio.to_thread(os.stat, path)).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        path, meta = self.path_for(key), self._meta_path(key)

        def remove() -> None:
            _remove_with_empty_parents(path, self.root)
            _remove_with_empty_parents(meta, self.root / _META_DIR)

        await asyncio.to_thread(remove)

    async def check(self) -> None:
        def probe() -> None:
            if not self.root.is_dir():
                raise OSError(f"blob root {self.root} is not a directory")
            temp, file = _open_temp(self.root)
            file.close()
            temp.unlink()

        await asyncio.to_thread(probe)
