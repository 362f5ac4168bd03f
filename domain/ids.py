"""The API's opaque global ids ("Type:uuid" in base64url), which every emitted id uses.

They live in the domain because events, webhook payloads and error messages carry them,
not only GraphQL responses; graph/ids.py adds parsing and cursors on top.
"""

from __future__ import annotations

import binascii
from uuid import UUID

import orjson
from uuid_utils.compat import uuid7

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64encode_text(text: str) -> str:
    # binascii + bytes.translate: a third faster than base64.urlsafe_b64encode, same output.
    encoded = binascii.b2a_base64(text.encode(), newline=False)
    return encoded.translate(_URLSAFE).rstrip(b"=").decode()


def new_id() -> UUID:
    """A new row's id: a UUIDv7 (RFC 9562), its first 48 bits the time in milliseconds and
    each one greater than the one before in this process.

    Random (v4) ids scatter a batch's 1,000 rows over every leaf of each index they lead
    (the primary keys, results' submission_id), and that cost grows with the table; ids in
    time order are added at the right edge (docs/performance.md, "Ids in time order").
    An id shows when its row was made, which createdAt shows anyway.
    """
    return uuid7()


def to_global_id(type_name: str, ident: UUID) -> str:
    # A UUID's text from orjson (in C) rather than UUID.__str__ (in Python): 1.5 -> 0.65 us a
    # global id, thousands of which a batch emits. Ids of other types (asyncpg's own UUID
    # class, which orjson does not write) take str().
    prefix = _PREFIXES.get(type_name)
    if prefix is None:
        prefix = _PREFIXES[type_name] = f"{type_name}:".encode()
    text = orjson.dumps(ident)[1:-1] if type(ident) is UUID else str(ident).encode()
    encoded = binascii.b2a_base64(prefix + text, newline=False)
    return encoded.translate(_URLSAFE).rstrip(b"=").decode()


_PREFIXES: dict[str, bytes] = {}


# A keyset cursor names its list's kind of object (graph/ids.py), so one from another kind
# of list is refused; the store writes the same cursors (persistence/projections.py).
CURSOR_KINDS = {
    "User": "u",
    "Asset": "a",
    "Submission": "s",
    "Batch": "b",
    "WebhookDelivery": "d",
    "ModelAlert": "m",
}
