"""The shared budget store on a real Redis server: the same contract as PostgreSQL's, with
a password and over TLS, and an answer (an error) within the timeout when it is gone."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from domain.ports import BudgetCharge
from integrations.budgets import KEY_PREFIX, RedisBudgetStore

PASSWORD = "s3cret-token"


@dataclass(frozen=True)
class RedisServer:
    port: int
    tls_port: int
    ca_file: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        return f"rediss://localhost:{self.tls_port}/0?ssl_ca_certs={self.ca_file}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("no redis-server (or openssl) on PATH: apt-get install redis-server")
    directory = tmp_path_factory.mktemp("redis")
    cert, key = make_certificate(directory)
    server = RedisServer(free_port(), free_port(), cert)
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(server.port), "--tls-port", str(server.tls_port)),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
            *("--requirepass", PASSWORD, "--save", "", "--appendonly", "no"),
            *("--bind", "127.0.0.1", "--dir", str(directory)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield server
    process.terminate()
    process.wait(10)


def charge(key: str, spent: float, per_second: float = 10.0) -> BudgetCharge:
    return BudgetCharge("points", key, spent, per_second=per_second, burst=100.0)


def new_key() -> str:
    return f"user:{uuid.uuid4()}"


async def test_buckets_start_full_go_into_debt_and_take_refunds(redis_server: RedisServer) -> None:
    store = RedisBudgetStore(redis_server.url, password=PASSWORD)
    first, second = new_key(), new_key()
    try:
        assert await store.settle([charge(first, 10), charge(second, 150)]) == pytest.approx(
            [90, -50], abs=0.1
        )
        assert await store.settle([charge(second, -500)]) == [100]
    finally:
        await store.close()


async def test_a_bucket_refills_by_the_servers_clock_and_expires_once_full(
    redis_server: RedisServer,
) -> None:
    store = RedisBudgetStore(redis_server.url, password=PASSWORD)
    direct = Redis.from_url(redis_server.url, password=PASSWORD)
    key = new_key()
    try:
        await store.settle([charge(key, 100)])
        name = f"{KEY_PREFIX}points:{key}"
        at = float(await direct.hget(name, "at") or 0)
        await direct.hset(name, "at", repr(at - 3))

        assert (await store.settle([charge(key, 0)]))[0] == pytest.approx(30, abs=0.5)
        assert 60_000 < await direct.pttl(name) <= 67_500  # 7 s to full, then a minute
    finally:
        await direct.aclose()
        await store.close()


async def test_concurrent_settles_lose_no_charge(redis_server: RedisServer) -> None:
    stores = [RedisBudgetStore(redis_server.url, password=PASSWORD) for _ in range(3)]
    keys = [new_key() for _ in range(5)]
    try:
        await asyncio.gather(
            *(
                store.settle([charge(key, 1, per_second=1e-6) for key in keys])
                for _ in range(10)
                for store in stores
            )
        )
        levels = await stores[0].settle([charge(key, 0, per_second=1e-6) for key in keys])
    finally:
        for store in stores:
            await store.close()

    assert levels == pytest.approx([70] * len(keys), abs=0.01)


async def test_tls_with_the_auth_token(redis_server: RedisServer) -> None:
    store = RedisBudgetStore(redis_server.tls_url, password=PASSWORD)
    try:
        assert await store.settle([charge(new_key(), 1)]) == [99]
    finally:
        await store.close()


async def test_a_wrong_token_or_a_missing_server_is_an_error_within_the_timeout(
    redis_server: RedisServer,
) -> None:
    wrong = RedisBudgetStore(redis_server.url, password="wrong")
    gone = RedisBudgetStore(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.5)
    try:
        with pytest.raises(Exception, match=r"(?i)auth|password"):
            await wrong.settle([charge(new_key(), 1)])
        started = time.monotonic()
        with pytest.raises(Exception, match=r"(?i)connect"):
            await gone.settle([charge(new_key(), 1)])
        assert time.monotonic() - started < 5
    finally:
        await wrong.close()
        await gone.close()
