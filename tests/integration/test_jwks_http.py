"""Token verification against a real JWKS endpoint served over HTTP on 127.0.0.1.

A tiny Starlette app runs under uvicorn in a background thread for the module; it counts
requests so that fetches are counted on the server side, and can be switched to answer 500.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.jwks import JwksCache, http_jwks_fetcher
from auth.local_issuer import LocalIssuer
from auth.verifier import JwtVerifier, TrustedIssuer
from domain.errors import Unauthenticated

ISSUER = "http://127.0.0.1/local-auth"
CLIENT_ID = "assay-local"
COOLDOWN = 0.3
STARTUP_TIMEOUT = 10.0


class JwksServer:
    """Serves one JWKS document; counts requests; `status` other than 200 makes it fail."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        self.status = 200
        self._lock = threading.Lock()
        self._requests = 0
        self.url = ""
        self.app = Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)])

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
        self.status = 200

    async def _jwks(self, request: Request) -> Response:
        with self._lock:
            self._requests += 1
        if self.status != 200:
            return JSONResponse({"error": "unavailable"}, status_code=self.status)
        return JSONResponse(self.issuer.jwks())


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jwks-http") / "local-issuer.pem"


@pytest.fixture(scope="module")
def issuer(key_path: Path) -> LocalIssuer:
    return LocalIssuer(key_path, ISSUER, CLIENT_ID)


@pytest.fixture(scope="module")
def server(issuer: LocalIssuer) -> Iterator[JwksServer]:
    jwks_server = JwksServer(issuer)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        jwks_server.app, log_level="warning", lifespan="off", loop="asyncio", access_log=False
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(
        target=uv.run, kwargs={"sockets": [sock]}, name="jwks-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            uv.should_exit = True
            sock.close()
            pytest.fail("the JWKS test server did not start")
        time.sleep(0.01)
    jwks_server.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    try:
        yield jwks_server
    finally:
        uv.should_exit = True
        thread.join(timeout=5)
        sock.close()
        assert not thread.is_alive(), "the JWKS test server did not stop"


@pytest.fixture
def jwks(server: JwksServer) -> JwksServer:
    server.reset()
    return server


class FetchLog:
    def __init__(self) -> None:
        self.results: list[bool] = []

    def __call__(self, ok: bool) -> None:
        self.results.append(ok)


def make_verifier(
    url: str, *, max_age: float = 3600.0, on_fetch: FetchLog | None = None
) -> JwtVerifier:
    cache = JwksCache(
        http_jwks_fetcher(url, timeout=5.0),
        refresh_cooldown_seconds=COOLDOWN,
        max_age_seconds=max_age,
        on_fetch=on_fetch,
    )
    return JwtVerifier(TrustedIssuer(ISSUER, CLIENT_ID), cache)


def token_with_kid(private_key: rsa.RSAPrivateKey, kid: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": str(uuid.uuid4()),
        "client_id": CLIENT_ID,
        "token_use": "access",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def private_key(issuer: LocalIssuer, key_path: Path) -> rsa.RSAPrivateKey:
    """The issuer's own signing key, to sign tokens whose kid header the test chooses."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


async def test_valid_token_verifies_with_one_fetch(jwks: JwksServer, issuer: LocalIssuer) -> None:
    verifier = make_verifier(jwks.url)
    token = issuer.issue(email="ada@example.com", name="Ada", groups=["admins"])
    identity = await verifier.verify(token)
    assert identity.email == "ada@example.com"
    assert identity.groups == ("admins",)
    assert jwks.requests == 1
    await verifier.verify(token)
    assert jwks.requests == 1


async def test_flood_of_unknown_kids_causes_at_most_one_extra_fetch_per_cooldown(
    jwks: JwksServer, issuer: LocalIssuer, private_key: rsa.RSAPrivateKey
) -> None:
    # Signed up front, so each flood runs well inside the cooldown window.
    floods = [
        [token_with_kid(private_key, f"rogue-{uuid.uuid4()}") for _ in range(50)] for _ in range(3)
    ]
    verifier = make_verifier(jwks.url)
    await verifier.verify(issuer.issue(email="ada@example.com", name="Ada"))
    assert jwks.requests == 1

    async def attempt(token: str) -> BaseException | None:
        try:
            await verifier.verify(token)
        except Unauthenticated as exc:
            return exc
        return None

    async def flood() -> None:
        outcomes = await asyncio.gather(*(attempt(token) for token in floods.pop()))
        assert all(isinstance(outcome, Unauthenticated) for outcome in outcomes)
        assert all("unknown key" in str(outcome) for outcome in outcomes)

    # Right after a fetch: inside the cooldown, no fetch at all.
    await flood()
    assert jwks.requests == 1

    # Past the cooldown: the whole flood shares a single forced refresh.
    await asyncio.sleep(COOLDOWN * 1.25)
    await flood()
    assert jwks.requests == 2
    await flood()
    assert jwks.requests == 2


async def test_known_key_keeps_verifying_from_the_cache_when_the_server_answers_500(
    jwks: JwksServer, issuer: LocalIssuer, private_key: rsa.RSAPrivateKey
) -> None:
    log = FetchLog()
    verifier = make_verifier(jwks.url, max_age=0.1, on_fetch=log)
    token = issuer.issue(email="ada@example.com", name="Ada")
    await verifier.verify(token)
    assert jwks.requests == 1

    jwks.status = 500
    await asyncio.sleep(COOLDOWN * 1.25)  # keys are now stale and the cooldown has passed
    # Another token: the first one is answered from the verified-token cache, keys unused.
    token = issuer.issue(email="ada@example.com", name="Ada Again")
    assert (await verifier.verify(token)).email == "ada@example.com"
    assert jwks.requests == 2  # the refresh was attempted and failed

    with pytest.raises(Unauthenticated, match="unknown key"):
        await verifier.verify(token_with_kid(private_key, "rogue"))
    assert jwks.requests == 2  # the failed refresh started a cooldown too
    assert (await verifier.verify(token)).email == "ada@example.com"
    assert log.results == [True, False]


async def test_first_fetch_failing_with_500_refuses_tokens_as_keys_unavailable(
    jwks: JwksServer, issuer: LocalIssuer
) -> None:
    jwks.status = 500
    log = FetchLog()
    verifier = make_verifier(jwks.url, on_fetch=log)
    with pytest.raises(Unauthenticated, match="signing keys are unavailable"):
        await verifier.verify(issuer.issue(email="ada@example.com", name="Ada"))
    assert jwks.requests == 1
    assert log.results == [False]


async def test_unreachable_jwks_endpoint_refuses_tokens_as_keys_unavailable(
    issuer: LocalIssuer,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    verifier = make_verifier(f"http://127.0.0.1:{closed_port}/.well-known/jwks.json")
    with pytest.raises(Unauthenticated, match="signing keys are unavailable"):
        await verifier.verify(issuer.issue(email="ada@example.com", name="Ada"))
