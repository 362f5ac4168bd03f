"""Opaque Relay ids ("Type:uuid", base64url) and keyset cursors."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from uuid import UUID

from domain.errors import InvalidInput, NotFound
from domain.ids import CURSOR_KINDS
from domain.ids import b64encode_text as _b64encode
from domain.ids import to_global_id as to_global_id  # re-exported: graph names ids here
from domain.pagination import Keyset, PageRequest

NODE_TYPES = frozenset(
    {
        "User",
        "Asset",
        "Model",
        "Submission",
        "Result",
        "WebhookEndpoint",
        "WebhookDelivery",
        "Batch",
        "ApiKey",
    }
)


def _b64decode(text: str) -> str:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


def from_global_id(global_id: str, path: str = "id") -> tuple[str, UUID]:
    """Split a global id into its type and UUID; a malformed id is BAD_USER_INPUT."""
    try:
        type_name, _, raw = _b64decode(global_id).partition(":")
        ident = UUID(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput({path: f"{global_id!r} is not an Assay id"}) from None
    if type_name not in NODE_TYPES:
        raise InvalidInput({path: f"{global_id!r} is not an Assay id"})
    return type_name, ident


def parse_id(global_id: str, expected_type: str, path: str = "id") -> UUID | None:
    """The UUID inside an id of the expected type; None when the id names another type."""
    type_name, ident = from_global_id(global_id, path)
    return ident if type_name == expected_type else None


def required_id(global_id: str, expected_type: str, path: str = "id") -> UUID:
    """The UUID inside an id of the expected type; an id of another type names nothing."""
    ident = parse_id(global_id, expected_type, path)
    if ident is None:
        raise NotFound(expected_type, global_id)
    return ident


_NOT_A_CURSOR = "not a cursor returned by this API"


def to_cursor(keyset: Keyset, kind: str) -> str:
    """The cursor of a position in a list of `kind` (a type name of CURSOR_KINDS)."""
    return _b64encode(f"{CURSOR_KINDS[kind]}|{keyset.created_at.isoformat()}|{keyset.id}")


def from_cursor(cursor: str | None, kind: str, path: str = "after") -> Keyset | None:
    if cursor is None:
        return None
    try:
        parts = _b64decode(cursor).split("|")
        # Cursors given out before they named their list (`createdAt|id`) still page on:
        # a client paging through a deploy keeps its place.
        code, created_at, raw_id = parts if len(parts) != 2 else [CURSOR_KINDS[kind], *parts]
        keyset = Keyset(datetime.fromisoformat(created_at), UUID(raw_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput({path: _NOT_A_CURSOR}) from None
    if code != CURSOR_KINDS[kind]:
        raise InvalidInput({path: f"a cursor of another list: this one lists {kind} objects"})
    if keyset.created_at.tzinfo is None or not _in_range(keyset.created_at):
        raise InvalidInput({path: _NOT_A_CURSOR})
    return keyset


def _in_range(moment: datetime) -> bool:
    # 0001-01-01T00:00:00+14:00 parses, but is in year 0 in UTC: the database cannot hold it.
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return False
    return True


def page_request(
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
    *,
    kind: str,
    descending: bool = False,
) -> PageRequest:
    """A connection's page from its arguments; BAD_USER_INPUT naming the bad one."""
    return PageRequest.checked(
        first,
        from_cursor(after, kind),
        descending=descending,
        last=last,
        before=from_cursor(before, kind, "before"),
    )
