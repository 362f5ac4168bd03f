"""The webhook HTTP sender: signs per the Standard Webhooks spec and POSTs to a checked address."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from domain.webhooks import SECRET_PREFIX, DeliveryOutcome, WebhookMessage
from integrations.webhooks.url_guard import DnsUrlGuard, IPAddress, UnsafeUrl

MAX_RESPONSE_BYTES = 64 * 1024
MAX_ERROR_BODY = 200
USER_AGENT = "Assay-Webhooks/1"


def encode_body(message: WebhookMessage) -> bytes:
    """The JSON body, serialized once: the bytes signed are the bytes sent."""
    timestamp = message.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": message.event_type, "timestamp": timestamp, "data": message.data})


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: one "v1,<base64 HMAC-SHA256>" per secret, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


@dataclass(frozen=True, slots=True)
class _Target:
    """Where to connect: the checked address, with the name kept for Host and TLS."""

    url: str
    host_header: str
    sni_hostname: str


def _host_literal(host: str | IPAddress) -> str:
    text = str(host)
    return f"[{text}]" if ":" in text else text


def _pinned(url: str, address: IPAddress) -> _Target:
    # Connecting to the address that was checked (not resolving again) defeats DNS rebinding.
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + _host_literal(address) + port
    return _Target(
        url=urlunsplit(parts._replace(netloc=netloc)),
        host_header=_host_literal(hostname) + port,
        sni_hostname=hostname,
    )


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    received = bytearray()
    async for chunk in response.aiter_raw():
        received.extend(chunk[: limit - len(received)])
        if len(received) >= limit:
            break
    return bytes(received)


class HttpWebhookSender:
    """Implements the domain's WebhookSender with one shared httpx client."""

    def __init__(
        self,
        guard: DnsUrlGuard,
        *,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._guard = guard
        self._timeout = timeout_seconds
        self._clock = clock
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def headers(self, message: WebhookMessage, body: bytes) -> dict[str, str]:
        timestamp = int(self._clock())
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",
            "webhook-id": message.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(message.secrets, message.webhook_id, timestamp, body),
        }

    async def send(self, message: WebhookMessage) -> DeliveryOutcome:
        started = time.perf_counter()

        def outcome(status_code: int | None, error: str | None) -> DeliveryOutcome:
            elapsed = round((time.perf_counter() - started) * 1000)
            return DeliveryOutcome(status_code=status_code, error=error, duration_ms=elapsed)

        try:
            addresses = await self._guard.safe_addresses(message.url)
        except UnsafeUrl as unsafe:
            return outcome(None, f"refused: the URL {unsafe}")
        target = _pinned(message.url, addresses[0])
        body = encode_body(message)
        headers = {**self.headers(message, body), "host": target.host_header}
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream(
                    "POST",
                    target.url,
                    content=body,
                    headers=headers,
                    extensions={"sni_hostname": target.sni_hostname},
                ) as response:
                    received = await _read_at_most(response, MAX_RESPONSE_BYTES)
        except TimeoutError:
            return outcome(None, f"timed out after {self._timeout:g} s")
        except httpx.HTTPError as error:
            return outcome(None, f"{type(error).__name__}: {error}"[: MAX_ERROR_BODY * 2])
        if 200 <= response.status_code < 300:
            return outcome(response.status_code, None)
        snippet = received[:MAX_ERROR_BODY].decode("utf-8", errors="replace")
        return outcome(response.status_code, f"HTTP {response.status_code}: {snippet}".strip())
