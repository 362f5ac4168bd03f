"""Who is calling: the verified identity from a token, and the principal built from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from domain.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Identity:
    """Claims of a verified token, independent of who issued it."""

    subject: str
    email: str
    name: str
    groups: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: UUID
    subject: str
    groups: tuple[str, ...]
    is_admin: bool
    # Signed in with this API key rather than a person's token: never an administrator,
    # and some things (making keys, erasing the account) need the person.
    api_key_id: UUID | None = None

    @property
    def revocable_ids(self) -> tuple[UUID, ...]:
        """The ids whose revocation ends this principal's access: its user's, its key's."""
        return (self.user_id,) if self.api_key_id is None else (self.user_id, self.api_key_id)

    def require_person(self, action: str) -> None:
        if self.api_key_id is not None:
            raise Forbidden(f"an API key cannot {action}; sign in as the user")

    def can_read_owned_by(self, owner_id: UUID) -> bool:
        return self.is_admin or owner_id == self.user_id


class Owned(Protocol):
    @property
    def owner_id(self) -> UUID: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def require_owner(principal: Principal, item: OwnedT, kind: str) -> OwnedT:
    """Writes are the owner's alone. Administrators read everyone's objects (support needs
    it) and may deactivate users, but completing, deleting, cancelling or retrying another
    user's work would act in that user's name and spend their quota: Forbidden."""
    if item.owner_id != principal.user_id:
        raise Forbidden(f"only its owner may change this {kind}; administrators may only read it")
    return item


def visible_only(principal: Principal, items: Sequence[OwnedT | None]) -> list[OwnedT | None]:
    """Keep what the principal may read; what it may not becomes None, as if it did not exist."""
    return [
        item if item is not None and principal.can_read_owned_by(item.owner_id) else None
        for item in items
    ]
