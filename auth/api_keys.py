"""API key secrets: `assay_sk_` and 32 random bytes (base64url), stored as SHA-256."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

PREFIX = "assay_sk_"
SECRET_BYTES = 32
# The prefix and the first characters of the random part: enough to tell keys apart in a
# list, far too few to help guess the rest (each hides 6 of 256 bits).
DISPLAY_CHARACTERS = len(PREFIX) + 6
_SHAPE = re.compile(rf"^{PREFIX}[A-Za-z0-9_-]{{43}}$")


class Sha256ApiKeySecrets:
    """The ApiKeySecrets port; why a fast hash suffices is in domain/api_keys.py."""

    def new_secret(self) -> str:
        raw = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=")
        return PREFIX + raw.decode()

    def is_api_key(self, token: str) -> bool:
        return token.startswith(PREFIX)

    def is_well_formed(self, token: str) -> bool:
        return _SHAPE.match(token) is not None

    def digest(self, secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()

    def display_prefix(self, secret: str) -> str:
        return secret[:DISPLAY_CHARACTERS]
