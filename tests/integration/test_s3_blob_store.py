"""Integration tests: the S3 blob store against moto's S3 emulator, driven with plain HTTP."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator, Mapping
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from mypy_boto3_s3.client import S3Client

from integrations.blobs import S3BlobStore

BUCKET = "assay-test-blobs"
ACCESS_KEY, SECRET_KEY = "AKIDASSAYTEST", "assay-test-secret"
REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(endpoint: str) -> S3Client:
    client: S3Client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(signature_version="s3v4"),
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def store(s3: S3Client) -> S3BlobStore:
    return S3BlobStore(BUCKET, client=s3)


def _new_key(file_name: str = "photo.png") -> str:
    return f"assets/{uuid.uuid4()}/{uuid.uuid4()}/{file_name}"


def _query_signature(url: str, method: str, headers: Mapping[str, str]) -> str:
    """Recompute a SigV4 query signature for a request sending these headers to url.

    moto does not verify presigned signatures, so this plays S3's part: a request whose
    signed headers differ from what was presigned gets a different signature.
    """
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    fields = dict(params)
    signed = fields["X-Amz-SignedHeaders"].split(";")
    scope = fields["X-Amz-Credential"].split("/", 1)[1]
    sent = {k.lower(): v.strip() for k, v in headers.items()} | {"host": parts.netloc}
    canonical = "\n".join(
        [
            method,
            parts.path,
            "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                for k, v in sorted(params)
                if k != "X-Amz-Signature"
            ),
            "".join(f"{h}:{sent.get(h, '')}\n" for h in signed),
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            fields["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{SECRET_KEY}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _tags(store: S3BlobStore, key: str) -> dict[str, str]:
    response = store._client.get_object_tagging(Bucket=store._bucket, Key=key)
    return {tag["Key"]: tag["Value"] for tag in response["TagSet"]}


async def test_upload_download_delete_roundtrip(store: S3BlobStore) -> None:
    key, body = _new_key(), b"\x89PNG fake image bytes" * 1000
    upload = await store.presign_upload(
        key, content_type="image/png", size_bytes=len(body), expires_in=300
    )
    async with httpx.AsyncClient(timeout=30) as http:
        put = await http.put(upload.url, content=body, headers=upload.headers)
        assert put.status_code == 200, put.text
        assert await store.size_of(key) == len(body)
        assert _tags(store, key) == {"assay-status": "pending-upload"}
        await store.confirm(key)
        assert _tags(store, key) == {}

        url = await store.presign_download(key, expires_in=300, file_name="my photo.png")
        got = await http.get(url)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"my photo.png\"; filename*=UTF-8''my%20photo.png"
    )

    await store.delete(key)
    assert await store.size_of(key) is None
    await store.delete(key)  # idempotent


async def test_size_of_missing_key_is_none(store: S3BlobStore) -> None:
    assert await store.size_of(_new_key()) is None


async def test_upload_url_signs_content_type_and_length(store: S3BlobStore) -> None:
    upload = await store.presign_upload(
        _new_key(), content_type="image/png", size_bytes=5, expires_in=300
    )
    assert upload.headers == {
        "Content-Type": "image/png",
        "Content-Length": "5",
        "x-amz-tagging": "assay-status=pending-upload",
        "If-None-Match": "*",
    }
    fields = dict(parse_qsl(urlsplit(upload.url).query))
    assert fields["X-Amz-SignedHeaders"] == (
        "content-length;content-type;host;if-none-match;x-amz-tagging"
    )
    assert fields["X-Amz-Expires"] == "300"

    signature = fields["X-Amz-Signature"]
    assert _query_signature(upload.url, "PUT", upload.headers) == signature
    longer = upload.headers | {"Content-Length": "6"}
    assert _query_signature(upload.url, "PUT", longer) != signature
    html = upload.headers | {"Content-Type": "text/html"}
    assert _query_signature(upload.url, "PUT", html) != signature
    assert _query_signature(upload.url, "PUT", {}) != signature


async def test_upload_url_is_good_for_one_put(store: S3BlobStore) -> None:
    # The conditional write (If-None-Match: *) makes S3 refuse a second PUT to the key, so
    # a completed asset's bytes cannot be replaced with its upload URL.
    key = _new_key()
    upload = await store.presign_upload(
        key, content_type="text/plain", size_bytes=5, expires_in=300
    )
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.put(upload.url, content=b"first", headers=upload.headers)
        second = await http.put(upload.url, content=b"other", headers=upload.headers)
        url = await store.presign_download(key, expires_in=300, file_name="a.txt")
        stored = await http.get(url)

    assert (first.status_code, second.status_code) == (200, 412)
    assert stored.content == b"first"
    await store.delete(key)


async def test_check_passes_for_existing_bucket(store: S3BlobStore) -> None:
    await store.check()


async def test_check_raises_for_missing_bucket(s3: S3Client) -> None:
    with pytest.raises(ClientError):
        await S3BlobStore("assay-no-such-bucket", client=s3).check()


async def test_emulator_accepts_headers_that_real_s3_would_refuse(store: S3BlobStore) -> None:
    # moto 5 skips SigV4 query-signature checks, so it stores a body whose length and type
    # differ from the signed ones; real S3 answers 403 SignatureDoesNotMatch (see the test
    # above). If this starts failing, moto enforces it: assert the 403 here instead.
    key = _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=300)
    async with httpx.AsyncClient(timeout=30) as http:
        put = await http.put(upload.url, content=b"hello!", headers={"Content-Type": "text/html"})
    assert put.status_code == 200
    assert await store.size_of(key) == 6
    await store.delete(key)
