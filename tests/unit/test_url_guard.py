"""The SSRF guard: private, loopback, link-local and metadata targets are refused."""

from __future__ import annotations

import ipaddress

import pytest

from domain.errors import InvalidInput
from integrations.webhooks import DnsUrlGuard
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
