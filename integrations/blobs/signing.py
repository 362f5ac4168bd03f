"""HMAC-SHA256 signed blob URLs for the local store: signing, verification and the key file."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

KEY_BYTES = 32
_CONTEXT = "assay-blob-url-v1"


class SignatureError(Exception):
    """The URL's signature, method or expiry does not authorise the request."""


@dataclass(frozen=True, slots=True)
class UploadGrant:
    key: str
    expires: int
    size: int
    content_type: str


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    key: str
    expires: int
    file_name: str


def _digest(signing_key: bytes, fields: list[str | int]) -> str:
    # A JSON array is an unambiguous encoding: no field can bleed into its neighbour.
    message = json.dumps([_CONTEXT, *fields], separators=(",", ":"), ensure_ascii=True)
    return hmac.new(signing_key, message.encode("ascii"), hashlib.sha256).hexdigest()


def sign_upload(signing_key: bytes, grant: UploadGrant) -> dict[str, str]:
    """The query parameters that authorise a PUT of exactly grant.size bytes."""
    fields: list[str | int] = ["PUT", grant.key, grant.expires, grant.size, grant.content_type]
    return {
        "method": "PUT",
        "expires": str(grant.expires),
        "size": str(grant.size),
        "ct": grant.content_type,
        "sig": _digest(signing_key, fields),
    }


def sign_download(signing_key: bytes, grant: DownloadGrant) -> dict[str, str]:
    """The query parameters that authorise a GET (or HEAD) of grant.key."""
    fields: list[str | int] = ["GET", grant.key, grant.expires, grant.file_name]
    return {
        "method": "GET",
        "expires": str(grant.expires),
        "fn": grant.file_name,
        "sig": _digest(signing_key, fields),
    }


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise SignatureError(f"missing {name!r}")
    return value


def _int_param(params: Mapping[str, str], name: str) -> int:
    value = _param(params, name)
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise SignatureError(f"malformed {name!r}")
    return int(value)


def _check(signing_key: bytes, fields: list[str | int], params: Mapping[str, str]) -> None:
    expected = _digest(signing_key, fields).encode("ascii")
    given = _param(params, "sig").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected, given):
        raise SignatureError("bad signature")


def _check_fresh(expires: int, now: float) -> None:
    if now > expires:
        raise SignatureError("expired")


def verify_upload(
    signing_key: bytes, key: str, params: Mapping[str, str], *, now: float
) -> UploadGrant:
    """The upload grant the URL carries; raise SignatureError unless it is genuine and fresh."""
    if params.get("method") != "PUT":
        raise SignatureError("not an upload URL")
    grant = UploadGrant(
        key=key,
        expires=_int_param(params, "expires"),
        size=_int_param(params, "size"),
        content_type=_param(params, "ct"),
    )
    _check(signing_key, ["PUT", key, grant.expires, grant.size, grant.content_type], params)
    _check_fresh(grant.expires, now)
    return grant


def verify_download(
    signing_key: bytes, key: str, params: Mapping[str, str], *, now: float
) -> DownloadGrant:
    """The download grant the URL carries; raise SignatureError unless it is genuine and fresh."""
    if params.get("method") != "GET":
        raise SignatureError("not a download URL")
    grant = DownloadGrant(
        key=key, expires=_int_param(params, "expires"), file_name=_param(params, "fn")
    )
    _check(signing_key, ["GET", key, grant.expires, grant.file_name], params)
    _check_fresh(grant.expires, now)
    return grant


def attachment_disposition(file_name: str) -> str:
    """A Content-Disposition that always downloads, safe for any file name (RFC 6266)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in file_name
    )
    encoded = quote(file_name, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


def load_or_create_signing_key(path: Path) -> bytes:
    """The key stored at path, creating 32 random bytes (mode 0600) on first use."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
        # link() fails when the key already exists, so a concurrent starter never
        # replaces a key another process is already signing with.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"signing key {path} must hold exactly {KEY_BYTES} bytes")
    return key
