"""Users: the entity, its invariants and the rules of who may see whom."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from domain.errors import InvalidInput

LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    subject: str
    email: str
    name: str
    language: str
    is_active: bool
    groups: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    def with_profile(self, *, name: str | None, language: str | None, now: datetime) -> User:
        problems: dict[str, str] = {}
        if name is not None and not 1 <= len(name.strip()) <= MAX_NAME_LENGTH:
            problems["input.name"] = f"must be 1 to {MAX_NAME_LENGTH} characters"
        if language is not None and not LANGUAGE_TAG.match(language):
            problems["input.language"] = "must be a BCP 47 language tag such as 'en' or 'pt-BR'"
        if problems:
            raise InvalidInput(problems)
        return replace(
            self,
            name=self.name if name is None else name.strip(),
            language=self.language if language is None else language,
            updated_at=now,
        )

    def deactivated(self, now: datetime) -> User:
        return replace(self, is_active=False, updated_at=now)


@dataclass(frozen=True, slots=True)
class UserFilter:
    email_contains: str | None = None
    is_active: bool | None = None
