"""The API's opaque global ids ("Type:uuid" in base64url), which every emitted id uses.

They live in the domain because events, webhook payloads and error messages carry them,
not only GraphQL responses; graph/ids.py adds parsing and cursors on top.
"""

from __future__ import annotations

import binascii
from uuid import UUID

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64encode_text(text: str) -> str:
    # binascii + bytes.translate: a third faster than base64.urlsafe_b64encode, same output.
    encoded = binascii.b2a_base64(text.encode(), newline=False)
    return encoded.translate(_URLSAFE).rstrip(b"=").decode()


def to_global_id(type_name: str, ident: UUID) -> str:
    return b64encode_text(f"{type_name}:{ident}")


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
