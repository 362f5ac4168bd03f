"""API keys: long-lived secrets a user makes for third-party integrations.

A secret is a fixed prefix and 32 random bytes. Only a SHA-256 digest of it is stored.
A slow password hash (bcrypt, Argon2) exists to make guessing a *low-entropy* password
from a stolen digest expensive; a 256-bit random secret cannot be guessed at any hash
speed (2^256 tries), so a fast hash loses nothing, and it lets each request find its key
by an indexed equality on the digest instead of a per-request slow hash.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from domain.errors import InvalidInput
from domain.events import EventType, NewEvent
from domain.ids import to_global_id

MAX_NAME_LENGTH = 100
MAX_EXPIRY_DAYS = 365
# lastUsedAt is a hint for people ("is this key still in use?"), not an audit log: writing
# it on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: UUID
    owner_id: UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def is_due_for_touch(self, now: datetime) -> bool:
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_RESOLUTION

    def revoked(self, now: datetime) -> ApiKey:
        return self if self.revoked_at is not None else replace(self, revoked_at=now)


def checked_request(name: str, expires_in_days: int | None) -> tuple[str, int | None]:
    problems: dict[str, str] = {}
    if not 1 <= len(name.strip()) <= MAX_NAME_LENGTH:
        problems["input.name"] = f"must be 1 to {MAX_NAME_LENGTH} characters"
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        problems["input.expiresInDays"] = f"must be between 1 and {MAX_EXPIRY_DAYS}, or null"
    if problems:
        raise InvalidInput(problems)
    return name.strip(), expires_in_days


def key_revoked(key: ApiKey) -> NewEvent:
    """Every process closes the sockets opened with this key (subject: the key's id)."""
    return NewEvent(
        type=EventType.PRINCIPAL_REVOKED,
        owner_id=key.owner_id,
        subject_id=key.id,
        payload={"apiKeyId": to_global_id("ApiKey", key.id), "reason": "API key revoked"},
    )


class ApiKeySecrets(Protocol):
    """Makes and recognises secrets, and digests them for storage (auth/api_keys.py)."""

    def new_secret(self) -> str: ...
    def is_api_key(self, token: str) -> bool: ...
    def is_well_formed(self, token: str) -> bool: ...
    def digest(self, secret: str) -> bytes: ...
    def display_prefix(self, secret: str) -> str: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey, secret_hash: bytes) -> None: ...
    async def get(self, key_id: UUID) -> ApiKey | None: ...
    async def by_hash(self, secret_hash: bytes) -> ApiKey | None: ...
    async def list_for_owner(self, owner_id: UUID) -> list[ApiKey]:
        """Newest first."""
        ...

    async def save_revoked(self, key: ApiKey) -> None: ...
    async def touch(self, key_id: UUID, now: datetime) -> None:
        """Set last_used_at unless another process set it within LAST_USED_RESOLUTION."""
        ...
