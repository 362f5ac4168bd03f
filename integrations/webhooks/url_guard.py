"""The SSRF guard: webhook URLs must resolve to public addresses unless private ones are allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from domain.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# Instance metadata services hand out cloud credentials: never a webhook target.
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeUrl(Exception):
    """The URL may not be called: a bad scheme, an unresolvable name or a forbidden address."""


# IPv6 forms that carry an IPv4 address a gateway would forward to: NAT64 (RFC 6052's
# well-known prefix, and RFC 8215's local-use prefix), besides 6to4 and Teredo below.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address routes to through a translator or tunnel."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:  # 2002::/16
        found.append(address.sixtofour)
    if address.teredo is not None:  # 2001::/32: (server, client)
        found.extend(address.teredo)
    if address in NAT64_WELL_KNOWN or address in NAT64_LOCAL_USE:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def address_problem(address: IPAddress, *, allow_private_networks: bool) -> str | None:
    """Why webhooks may not go to `address`, or None when they may."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in embedded_ipv4(address):
            problem = address_problem(inner, allow_private_networks=allow_private_networks)
            if problem is not None:
                return f"{problem} ({inner}) inside an IPv6 address"
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private_networks:
        return None
    checks = [
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (address.is_unspecified, "an unspecified address"),
        (address in NAT64_LOCAL_USE, "a local-use NAT64 address"),
        (not address.is_global, "not a public address"),
    ]
    return next((reason for failed, reason in checks if failed), None)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the name resolves to, as the HTTP client would see them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # A link-local scope id ("%eth0") is dropped: it does not change the verdict.
    return list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )


class DnsUrlGuard:
    """Implements the domain's UrlGuard; the sender asks it again at delivery time."""

    def __init__(self, *, allow_private_networks: bool, resolver: Resolver = resolve) -> None:
        self.allow_private_networks = allow_private_networks
        self._resolve = resolver

    async def safe_addresses(self, url: str) -> list[IPAddress]:
        """The addresses `url` may be called at; raise UnsafeUrl when there are none."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UnsafeUrl("must be an http or https URL with a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise UnsafeUrl("has an invalid port") from None
        try:
            addresses = await self._resolve(parts.hostname, port)
        except (OSError, UnicodeError, ValueError):
            raise UnsafeUrl(f"host {parts.hostname!r} does not resolve") from None
        if not addresses:
            raise UnsafeUrl(f"host {parts.hostname!r} does not resolve")
        # Refuse when any address is forbidden: a name must not mix public and private ones.
        for address in addresses:
            problem = address_problem(address, allow_private_networks=self.allow_private_networks)
            if problem:
                raise UnsafeUrl(f"host {parts.hostname!r} resolves to {address}, {problem}")
        return addresses

    async def check(self, url: str) -> None:
        try:
            await self.safe_addresses(url)
        except UnsafeUrl as unsafe:
            raise InvalidInput({"input.url": str(unsafe)}) from None
