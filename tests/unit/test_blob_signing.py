"""Unit tests for the local blob store's URL signing (no I/O apart from the key file test)."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from integrations.blobs.signing import (
    DownloadGrant,
    SignatureError,
    UploadGrant,
    attachment_disposition,
    load_or_create_signing_key,
    sign_download,
    sign_upload,
    verify_download,
    verify_upload,
)

KEY = b"k" * 32
NOW = 1_700_000_000.0
BLOB = "assets/owner/asset/photo.png"
UPLOAD = UploadGrant(key=BLOB, expires=int(NOW) + 60, size=1234, content_type="image/png")
DOWNLOAD = DownloadGrant(key=BLOB, expires=int(NOW) + 60, file_name="photo.png")


def test_upload_roundtrip() -> None:
    assert verify_upload(KEY, BLOB, sign_upload(KEY, UPLOAD), now=NOW) == UPLOAD


def test_download_roundtrip() -> None:
    assert verify_download(KEY, BLOB, sign_download(KEY, DOWNLOAD), now=NOW) == DOWNLOAD


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("size", "1235"),
        ("ct", "text/html"),
        ("expires", str(int(NOW) + 3600)),
        ("sig", "0" * 64),
        ("sig", ""),
        ("sig", "é" * 64),
    ],
)
def test_tampered_upload_params_fail(param: str, value: str) -> None:
    params = sign_upload(KEY, UPLOAD) | {param: value}
    with pytest.raises(SignatureError):
        verify_upload(KEY, BLOB, params, now=NOW)


@pytest.mark.parametrize(("param", "value"), [("fn", "evil.html"), ("expires", "9999999999")])
def test_tampered_download_params_fail(param: str, value: str) -> None:
    params = sign_download(KEY, DOWNLOAD) | {param: value}
    with pytest.raises(SignatureError):
        verify_download(KEY, BLOB, params, now=NOW)


def test_tampered_key_fails() -> None:
    with pytest.raises(SignatureError):
        verify_upload(KEY, "assets/owner/asset/other.png", sign_upload(KEY, UPLOAD), now=NOW)
    with pytest.raises(SignatureError):
        verify_download(KEY, "assets/other/asset/photo.png", sign_download(KEY, DOWNLOAD), now=NOW)


def test_other_signing_key_fails() -> None:
    with pytest.raises(SignatureError):
        verify_upload(b"x" * 32, BLOB, sign_upload(KEY, UPLOAD), now=NOW)


def test_download_url_cannot_be_used_for_upload() -> None:
    params = sign_download(KEY, DOWNLOAD)
    with pytest.raises(SignatureError):
        verify_upload(KEY, BLOB, params, now=NOW)
    # Relabelling the method does not help: the signature covers it.
    forged = params | {"method": "PUT", "size": "10", "ct": "image/png"}
    with pytest.raises(SignatureError):
        verify_upload(KEY, BLOB, forged, now=NOW)


def test_upload_url_cannot_be_used_for_download() -> None:
    params = sign_upload(KEY, UPLOAD) | {"method": "GET", "fn": "photo.png"}
    with pytest.raises(SignatureError):
        verify_download(KEY, BLOB, params, now=NOW)


def test_expired_urls_fail() -> None:
    later = UPLOAD.expires + 1.0
    with pytest.raises(SignatureError, match="expired"):
        verify_upload(KEY, BLOB, sign_upload(KEY, UPLOAD), now=later)
    with pytest.raises(SignatureError, match="expired"):
        verify_download(KEY, BLOB, sign_download(KEY, DOWNLOAD), now=later)
    # Still valid in the last second.
    assert verify_upload(KEY, BLOB, sign_upload(KEY, UPLOAD), now=UPLOAD.expires)


@pytest.mark.parametrize("missing", ["method", "expires", "size", "ct", "sig"])
def test_missing_params_fail(missing: str) -> None:
    params = sign_upload(KEY, UPLOAD)
    del params[missing]
    with pytest.raises(SignatureError):
        verify_upload(KEY, BLOB, params, now=NOW)


@pytest.mark.parametrize("size", ["-1", "1e3", " 12", "12 ", "1" * 30])
def test_malformed_numbers_fail(size: str) -> None:
    with pytest.raises(SignatureError):
        verify_upload(KEY, BLOB, sign_upload(KEY, UPLOAD) | {"size": size}, now=NOW)


def test_fields_cannot_bleed_into_each_other() -> None:
    # With naive concatenation these two grants would sign the same bytes.
    a = replace(UPLOAD, key="a/b", content_type="x")
    b = replace(UPLOAD, key="a", content_type="b/x")
    assert sign_upload(KEY, a)["sig"] != sign_upload(KEY, b)["sig"]


def test_attachment_disposition_is_safely_quoted() -> None:
    header = attachment_disposition('re"port\\\r\n ü.pdf')
    assert header == (
        'attachment; filename="re_port___ _.pdf"; '
        "filename*=UTF-8''re%22port%5C%0D%0A%20%C3%BC.pdf"
    )


def test_signing_key_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "blob.key"
    key = load_or_create_signing_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_signing_key(path) == key
    assert list(path.parent.iterdir()) == [path]  # no temporary files left


def test_corrupt_signing_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        load_or_create_signing_key(path)
