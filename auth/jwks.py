"""A JWKS key cache: async, single-flight, keeps the last good set, cools down forced refreshes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt

JwksDocument = dict[str, Any]
JwksFetcher = Callable[[], Awaitable[JwksDocument]]


class KeyNotFound(Exception):
    pass


def http_jwks_fetcher(url: str, timeout: float = 5.0) -> JwksFetcher:
    async def fetch() -> JwksDocument:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            document: JwksDocument = response.json()
            return document

    return fetch


class JwksCache:
    """Keys by kid; an unknown kid forces at most one refresh per cooldown, shared by waiters."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        refresh_cooldown_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        on_fetch: Callable[[bool], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self._cooldown = refresh_cooldown_seconds
        self._max_age = max_age_seconds
        self._on_fetch = on_fetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def get(self, kid: str) -> jwt.PyJWK:
        if self._is_stale():
            await self._refresh(forced=False)
        key = self._keys.get(kid)
        if key is None and self._may_force_refresh():
            await self._refresh(forced=True)
            key = self._keys.get(kid)
        if key is None:
            raise KeyNotFound(f"no signing key with kid {kid!r}")
        return key

    async def ensure_loaded(self) -> None:
        """Raise unless signing keys are at hand: fetch them when stale, or when missing (at
        most once per cooldown, so readiness probes cannot hammer the issuer)."""
        if self._is_stale() or (not self._keys and self._may_force_refresh()):
            await self._refresh(forced=False)
        if not self._keys:
            raise KeyNotFound("no RS256 signing keys could be loaded")

    def _is_stale(self) -> bool:
        return self._fetched_at is None or time.monotonic() - self._fetched_at > self._max_age

    def _may_force_refresh(self) -> bool:
        # The last attempt time doubles as the negative cache for unknown kids.
        return self._fetched_at is None or time.monotonic() - self._fetched_at >= self._cooldown

    async def _refresh(self, *, forced: bool) -> None:
        if self._inflight is None or self._inflight.done():
            # A done task left behind by cancelled waiters must not stand in for a new fetch.
            self._inflight = asyncio.create_task(self._load())
        task = self._inflight
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._inflight is task:
                self._inflight = None

    async def _load(self) -> None:
        try:
            document = await self._fetch()
            keys = {}
            for jwk in document.get("keys", []):
                if jwk.get("kty") == "RSA" and "kid" in jwk:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm="RS256")
        except Exception:
            if self._on_fetch:
                self._on_fetch(False)
            if not self._keys:
                raise
            # Keep serving the last good key set.
        else:
            if self._on_fetch:
                self._on_fetch(True)
            self._keys = keys
        finally:
            self._fetched_at = time.monotonic()
