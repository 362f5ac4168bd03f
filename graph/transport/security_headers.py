"""Headers every answer carries for browsers: no sniffing, no referrer, no caching of
authenticated answers, and HSTS in production (added by graph/transport/edge.py)."""

from __future__ import annotations

HSTS = "max-age=31536000; includeSubDomains"


def security_headers(
    *, is_authenticated: bool, strict_transport: bool
) -> list[tuple[bytes, bytes]]:
    """The raw headers for an answer; they replace any of the same name the answer set."""
    headers = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
    if is_authenticated:
        # A caller's own data must not stay in a browser's or a proxy's cache.
        headers.append((b"cache-control", b"no-store"))
    if strict_transport:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers
