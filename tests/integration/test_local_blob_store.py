"""Integration tests: the local blob store behind a real uvicorn server, driven with httpx."""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from integrations.blobs import LocalBlobStore, blob_routes, load_or_create_signing_key
from integrations.blobs.local import InvalidKeyError

REPO = Path(__file__).resolve().parents[2]
MAX_BYTES = 200 * 1024 * 1024
SERVER_LIFETIME_S = 120  # the server kills itself after this even if teardown never runs

# Runs in a subprocess: serve blob_routes on a kernel-chosen port and print that port.
SERVER_SCRIPT = """
import asyncio, os, sys, threading
from pathlib import Path
import uvicorn
from starlette.applications import Starlette
from integrations.blobs import LocalBlobStore, blob_routes, load_or_create_signing_key

root, key_file = Path(sys.argv[1]), Path(sys.argv[2])
max_bytes, lifetime = int(sys.argv[3]), float(sys.argv[4])
threading.Timer(lifetime, os._exit, args=(3,)).start()

async def main() -> None:
    store = LocalBlobStore(root, "http://unused", load_or_create_signing_key(key_file), max_bytes)
    config = uvicorn.Config(
        Starlette(routes=blob_routes(store)),
        host="127.0.0.1", port=0, log_level="warning", lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    print(server.servers[0].sockets[0].getsockname()[1], flush=True)
    await task
    os._exit(0)

asyncio.run(main())
"""


@dataclass(frozen=True)
class BlobServer:
    process: subprocess.Popen[str]
    base_url: str
    root: Path
    signing_key: bytes

    def store(self, *, clock_offset: float = 0.0) -> LocalBlobStore:
        """A store sharing the server's files and key (for presigning and inspection)."""
        return LocalBlobStore(
            self.root,
            self.base_url,
            self.signing_key,
            MAX_BYTES,
            clock=lambda: time.time() + clock_offset,
        )


def _start_server(tmp: Path) -> BlobServer:
    root, key_file = tmp / "blobs", tmp / "blob.key"
    args = [str(root), str(key_file), str(MAX_BYTES), str(SERVER_LIFETIME_S)]
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 20)
    if not ready:
        _stop(process)
        pytest.fail("blob server did not start within 20 s")
    port = int(process.stdout.readline())
    return BlobServer(
        process, f"http://127.0.0.1:{port}", root, load_or_create_signing_key(key_file)
    )


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BlobServer]:
    running = _start_server(tmp_path_factory.mktemp("local-blobs"))
    yield running
    _stop(running.process)


@pytest.fixture
def store(server: BlobServer) -> LocalBlobStore:
    return server.store()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as c:
        yield c


def _new_key(file_name: str = "photo.png") -> str:
    return f"assets/{uuid.uuid4()}/{uuid.uuid4()}/{file_name}"


async def _chunks(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".part")]


def _assert_nothing_stored(store: LocalBlobStore, key: str) -> None:
    owner_dir = store.path_for(key).parents[1]
    assert not owner_dir.exists(), list(owner_dir.rglob("*"))
    assert _leftovers(store.root) == []


async def test_upload_then_download_roundtrip(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key, body = _new_key("report ü.png"), os.urandom(300_000)
    upload = await store.presign_upload(
        key, content_type="image/png", size_bytes=len(body), expires_in=60
    )
    put = await client.put(upload.url, content=body, headers=upload.headers)
    assert put.status_code == 201, put.text
    assert put.headers["etag"] == f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
    assert await store.size_of(key) == len(body)

    url = await store.presign_download(key, expires_in=60, file_name='my "report" ü.png')
    got = await client.get(url)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"] == (
        'attachment; filename="my _report_ _.png"; '
        "filename*=UTF-8''my%20%22report%22%20%C3%BC.png"
    )
    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(body))


async def test_tampered_signature_is_forbidden(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key = _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    sig = httpx.URL(upload.url).params["sig"]
    forged = upload.url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    put = await client.put(forged, content=b"hello", headers=upload.headers)
    assert put.status_code == 403
    _assert_nothing_stored(store, key)


async def test_url_for_another_key_is_forbidden(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key, other = _new_key(), _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    put = await client.put(upload.url.replace(key, other), content=b"hello", headers=upload.headers)
    assert put.status_code == 403
    _assert_nothing_stored(store, other)


async def test_expired_urls_are_forbidden(server: BlobServer, client: httpx.AsyncClient) -> None:
    past = server.store(clock_offset=-3600)
    key = _new_key()
    upload = await past.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    put = await client.put(upload.url, content=b"hello", headers=upload.headers)
    assert put.status_code == 403
    assert "expired" in put.text
    _assert_nothing_stored(past, key)
    download = await past.presign_download(key, expires_in=60, file_name="a.png")
    assert (await client.get(download)).status_code == 403


async def test_wrong_method_is_forbidden(store: LocalBlobStore, client: httpx.AsyncClient) -> None:
    key = _new_key()
    download = await store.presign_download(key, expires_in=60, file_name="a.png")
    put = await client.put(
        download, content=b"hello", headers={"Content-Type": "image/png", "Content-Length": "5"}
    )
    assert put.status_code == 403
    _assert_nothing_stored(store, key)
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    assert (await client.get(upload.url)).status_code == 403


async def test_body_larger_than_signed_is_refused(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key = _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    headers = upload.headers | {"Content-Length": "6"}
    put = await client.put(upload.url, content=b"hello!", headers=headers)
    assert put.status_code == 413
    _assert_nothing_stored(store, key)


async def test_body_smaller_than_signed_is_refused(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key = _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    put = await client.put(
        upload.url, content=b"hell", headers=upload.headers | {"Content-Length": "4"}
    )
    assert put.status_code == 400
    _assert_nothing_stored(store, key)


async def test_body_without_length_is_refused(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key = _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    put = await client.put(
        upload.url, content=_chunks([b"hel", b"lo"]), headers={"Content-Type": "image/png"}
    )
    assert put.status_code == 411
    _assert_nothing_stored(store, key)


async def test_wrong_content_type_is_refused(
    store: LocalBlobStore, client: httpx.AsyncClient
) -> None:
    key = _new_key()
    upload = await store.presign_upload(key, content_type="image/png", size_bytes=5, expires_in=60)
    headers = upload.headers | {"Content-Type": "text/html"}
    put = await client.put(upload.url, content=b"hello", headers=headers)
    assert put.status_code == 403
    _assert_nothing_stored(store, key)


@pytest.mark.parametrize(
    ("declared", "sent", "status"), [(5, b"hello, world", 413), (5, b"hel", 400)]
)
async def test_body_that_lies_about_its_length_leaves_nothing(
    store: LocalBlobStore, declared: int, sent: bytes, status: int
) -> None:
    # A real server stops reading at Content-Length, so drive the ASGI app directly to
    # feed the handler more (or fewer) bytes than the header it already checked.
    app = Starlette(routes=blob_routes(store))
    key = _new_key()
    upload = await store.presign_upload(
        key, content_type="image/png", size_bytes=declared, expires_in=60
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport) as asgi_client:
        put = await asgi_client.put(upload.url, content=sent, headers=upload.headers)
    assert put.status_code == status
    _assert_nothing_stored(store, key)


async def test_missing_blob_is_not_found(store: LocalBlobStore, client: httpx.AsyncClient) -> None:
    url = await store.presign_download(_new_key(), expires_in=60, file_name="a.png")
    assert (await client.get(url)).status_code == 404


async def test_delete_removes_the_file(store: LocalBlobStore, client: httpx.AsyncClient) -> None:
    key = _new_key()
    upload = await store.presign_upload(key, content_type="text/plain", size_bytes=2, expires_in=60)
    assert (await client.put(upload.url, content=b"hi", headers=upload.headers)).status_code == 201
    assert await store.size_of(key) == 2
    await store.delete(key)
    assert await store.size_of(key) is None
    _assert_nothing_stored(store, key)
    await store.delete(key)  # idempotent


@pytest.mark.parametrize(
    "key",
    [
        "assets/../../etc/passwd",
        "../outside",
        "/etc/passwd",
        "assets/a/./b",
        "assets//b",
        "assets/a\x00/b",
        ".meta/assets/a/b",
        "",
    ],
)
async def test_keys_that_could_escape_root_are_rejected(store: LocalBlobStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        await store.presign_upload(key, content_type="text/plain", size_bytes=1, expires_in=60)
    with pytest.raises(InvalidKeyError):
        await store.presign_download(key, expires_in=60, file_name="a")
    with pytest.raises(InvalidKeyError):
        await store.size_of(key)
    with pytest.raises(InvalidKeyError):
        await store.delete(key)


async def test_dot_dot_in_the_request_path_is_rejected(
    server: BlobServer, client: httpx.AsyncClient
) -> None:
    # Percent-encoded so httpx does not normalise it away before the server sees it.
    query = "method=PUT&expires=9999999999&size=1&ct=a&sig=0"
    url = f"{server.base_url}/blobs/assets/%2E%2E/%2E%2E/escape?{query}"
    put = await client.put(url, content=b"x", headers={"Content-Type": "a"})
    assert put.status_code == 400
    assert put.text == "invalid key"
    assert not (server.root.parent / "escape").exists()


async def test_check_passes_for_a_writable_root(store: LocalBlobStore) -> None:
    await store.check()
    assert _leftovers(store.root) == []


async def test_check_fails_when_root_is_gone(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "root", "http://x", b"k" * 32, 10)
    (tmp_path / "root").rmdir()
    with pytest.raises(OSError, match="not a directory"):
        await store.check()


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


async def _repeat(chunk: bytes, times: int) -> AsyncIterator[bytes]:
    for _ in range(times):
        yield chunk


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_100_mb_upload_is_streamed_in_bounded_memory(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    # A server of its own, so the peak RSS is not inflated by other tests.
    server = _start_server(tmp_path)
    try:
        store = server.store()
        warm_key = _new_key()
        warm = await store.presign_upload(warm_key, content_type="a/b", size_bytes=3, expires_in=60)
        assert (await client.put(warm.url, content=b"abc", headers=warm.headers)).status_code == 201
        before = _peak_rss_kib(server.process.pid)

        chunk, count = os.urandom(1024 * 1024), 100
        key = _new_key("big.bin")
        upload = await store.presign_upload(
            key,
            content_type="application/octet-stream",
            size_bytes=len(chunk) * count,
            expires_in=60,
        )
        put = await client.put(upload.url, content=_repeat(chunk, count), headers=upload.headers)
        after = _peak_rss_kib(server.process.pid)
    finally:
        _stop(server.process)

    assert put.status_code == 201, put.text
    expected = hashlib.md5(chunk * count, usedforsecurity=False).hexdigest()
    assert put.headers["etag"] == f'"{expected}"'
    assert await store.size_of(key) == len(chunk) * count
    growth_mib = (after - before) / 1024
    print(
        f"\n100 MB upload: server peak RSS {before / 1024:.1f} -> {after / 1024:.1f} MiB "
        f"(growth {growth_mib:.1f} MiB)"
    )
    assert growth_mib < 50
