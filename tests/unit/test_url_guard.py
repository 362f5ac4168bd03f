"""The SSRF guard: private, loopback, link-local and metadata targets are refused."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime

import httpx
import pytest

from domain.errors import InvalidInput
from domain.webhooks import WebhookMessage
from integrations.webhooks import DnsUrlGuard
from integrations.webhooks.sender import HttpWebhookSender
from integrations.webhooks.url_guard import IPAddress


def resolving_to(*addresses: str) -> DnsUrlGuard:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in addresses]

    return DnsUrlGuard(allow_private_networks=False, resolver=resolver)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10:8080/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://localhost:8000/hook",
    ],
)
async def test_forbidden_targets_are_refused_on_input_url(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await DnsUrlGuard(allow_private_networks=False).check(url)
    assert set(caught.value.fields) == {"input.url"}


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://x/"])
async def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(InvalidInput):
        await DnsUrlGuard(allow_private_networks=True).check(url)


async def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        await resolving_to("93.184.216.34", "10.0.0.5").check("https://mixed.example/h")
    assert "10.0.0.5" in caught.value.fields["input.url"]


async def test_a_name_resolving_to_public_addresses_is_allowed() -> None:
    await resolving_to("93.184.216.34", "2606:2800:220:1::1").check("https://hooks.example/h")


async def test_an_unresolvable_name_is_refused() -> None:
    with pytest.raises(InvalidInput):
        await DnsUrlGuard(allow_private_networks=False).check("https://no-such-host.invalid/h")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.0.0.1/h", "http://localhost/h", "http://[::1]/"]
)
async def test_private_targets_are_allowed_when_private_networks_are(url: str) -> None:
    await DnsUrlGuard(allow_private_networks=True).check(url)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/"]
)
async def test_metadata_addresses_stay_refused_even_when_private_networks_are_allowed(
    url: str,
) -> None:
    with pytest.raises(InvalidInput):
        await DnsUrlGuard(allow_private_networks=True).check(url)


@pytest.mark.parametrize(
    ("url", "embedded"),
    [
        ("http://[2002:7f00:1::]/", "127.0.0.1"),  # 6to4
        ("http://[2002:a9fe:a9fe::]/", "169.254.169.254"),
        ("http://[2002:c0a8:0101::1]/", "192.168.1.1"),
        ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "10.0.0.1"),  # Teredo client
        ("http://[2001:0:7f00:1:8000:63bf:3fff:fdd2]/", "127.0.0.1"),  # Teredo server
        ("http://[64:ff9b::7f00:1]/", "127.0.0.1"),  # NAT64, well-known prefix
        ("http://[64:ff9b::a9fe:a9fe]/", "169.254.169.254"),
        ("http://[64:ff9b:1::a00:1]/", "10.0.0.1"),  # NAT64, local-use prefix
    ],
)
async def test_ipv6_forms_embedding_a_forbidden_ipv4_are_refused(url: str, embedded: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await DnsUrlGuard(allow_private_networks=False).check(url)
    assert embedded in caught.value.fields["input.url"]


async def test_embedded_metadata_addresses_stay_refused_when_private_networks_are_allowed() -> None:
    guard = DnsUrlGuard(allow_private_networks=True)
    for url in ("http://[2002:a9fe:a9fe::]/", "http://[64:ff9b::a9fe:a9fe]/"):
        with pytest.raises(InvalidInput):
            await guard.check(url)


async def test_the_sender_connects_to_the_checked_address_without_resolving_again() -> None:
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        # A rebinding name: public when checked, loopback on any later lookup.
        lookups.append(host)
        return [ipaddress.ip_address("93.184.216.34" if len(lookups) == 1 else "127.0.0.1")]

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)  # no socket: the transport records where it would connect
        return httpx.Response(204, stream=httpx.ByteStream(b""))

    guard = DnsUrlGuard(allow_private_networks=False, resolver=rebinding)
    sender = HttpWebhookSender(guard, transport=httpx.MockTransport(answer))
    message = WebhookMessage(
        url="https://hooks.example/in",
        webhook_id="msg_1",
        event_type="submission.created",
        occurred_at=datetime.now(UTC),
        data={},
        secrets=("whsec_" + base64.b64encode(b"k" * 24).decode(),),
    )

    outcome = await sender.send(message)
    await sender.aclose()

    assert outcome.status_code == 204
    assert lookups == ["hooks.example"]
    [request] = seen
    assert request.url.host == "93.184.216.34"
    assert request.headers["host"] == "hooks.example"
    assert request.extensions["sni_hostname"] == "hooks.example"
