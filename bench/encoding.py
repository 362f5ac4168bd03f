"""Assay's wire encodings, written out again: Relay ids, keyset cursors, DateTime text."""

from __future__ import annotations

import base64
from datetime import datetime
from uuid import UUID


def b64(text: str) -> str:
    """base64url without padding, as graph/ids.py writes it."""
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def unb64(text: str) -> str:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode()).decode()


def global_id(type_name: str, ident: UUID) -> str:
    return b64(f"{type_name}:{ident}")


def parse_global_id(value: str) -> tuple[str, UUID]:
    type_name, _, raw = unb64(value).partition(":")
    return type_name, UUID(raw)


def cursor(kind: str, created_at: datetime, ident: UUID) -> str:
    """A keyset cursor in a list of `kind` objects: "s" submissions, "u" users (domain/ids.py)."""
    return b64(f"{kind}|{created_at.isoformat()}|{ident}")


def date_time(value: datetime) -> str:
    """Strawberry's DateTime: `datetime.isoformat()`."""
    return value.isoformat()
