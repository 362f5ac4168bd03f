"""Bearer token verification, the same code for Cognito and the local issuer."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from auth.jwks import JwksCache, KeyNotFound
from domain.errors import Unauthenticated
from domain.principal import Identity

ALLOWED_ALGORITHMS = ["RS256"]
# A verified token is trusted again without its RSA check for this long (never past its
# exp): a key withdrawn from the JWKS stops being honoured within the same bound.
VERIFIED_TOKEN_SECONDS = 60.0
VERIFIED_TOKENS_KEPT = 4096
TIME_CLAIMS_OUT_OF_RANGE = "token time claims (exp, nbf, iat) are out of range"


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    issuer: str
    client_id: str


class JwtVerifier:
    """Checks signature (RS256 only), iss, exp, nbf, iat, token_use and client_id or aud."""

    def __init__(
        self,
        trusted: TrustedIssuer,
        keys: JwksCache,
        *,
        leeway_seconds: int = 30,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._trusted = trusted
        self._keys = keys
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self._clock = clock
        # Each request carries the same token again and again; its RS256 check and claim
        # parsing were ~15% of a point lookup's CPU (py-spy, W2).
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    async def check_keys(self) -> None:
        """Raise unless the issuer's signing keys can be loaded (for readiness)."""
        await self._keys.ensure_loaded()

    async def verify(self, token: str) -> Identity:
        now = self._clock()
        known = self._verified.get(token)
        if known is not None and now < known[1]:
            self._verified.move_to_end(token)
            return known[0]
        identity = await self._verify(token)
        until = min(now + VERIFIED_TOKEN_SECONDS, identity.expires_at.timestamp())
        self._verified[token] = (identity, until)
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return identity

    async def _verify(self, token: str) -> Identity:
        if len(token) > self._max_bytes:
            raise Unauthenticated(f"token longer than {self._max_bytes} bytes")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed token") from None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthenticated("token algorithm not allowed; RS256 is required")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("token header has no kid")
        try:
            key = await self._keys.get(kid)
        except KeyNotFound:
            raise Unauthenticated("token signed by an unknown key") from None
        except Exception:
            raise Unauthenticated("signing keys are unavailable; try again later") from None
        claims = self._decode(token, key)
        self._check_audience(claims)
        return _identity(claims)

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALLOWED_ALGORITHMS,
                issuer=self._trusted.issuer,
                leeway=self._leeway,
                options={
                    "require": ["exp", "iat", "iss", "sub", "token_use"],
                    "verify_aud": False,  # checked below: client_id or aud by token_use
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token from an untrusted issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token lacks the {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise Unauthenticated("token signature or claims are invalid") from None
        except (OverflowError, ValueError, TypeError, OSError):
            # PyJWT converts the time claims itself: e.g. an infinite exp overflows int().
            raise Unauthenticated(TIME_CLAIMS_OUT_OF_RANGE) from None
        return claims

    def _check_audience(self, claims: dict[str, Any]) -> None:
        kind = claims.get("token_use")
        if kind == "access":
            audience = claims.get("client_id")
        elif kind == "id":
            audience = claims.get("aud")
        else:
            raise Unauthenticated("token_use must be 'access' or 'id'")
        if audience != self._trusted.client_id:
            raise Unauthenticated("token issued for another client")


def _identity(claims: dict[str, Any]) -> Identity:
    groups = claims.get("cognito:groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise Unauthenticated("cognito:groups must be a list of strings")
    return Identity(
        subject=str(claims["sub"]),
        email=str(claims.get("email", "")),
        name=str(claims.get("name", "")),
        groups=tuple(groups),
        expires_at=_expiry(claims["exp"]),
    )


def _expiry(exp: object) -> datetime:
    # A correctly signed exp of 1e18 passes PyJWT's checks but is past what a datetime holds.
    try:
        return datetime.fromtimestamp(int(exp), tz=UTC)  # type: ignore[call-overload]  # PyJWT checked it is a number
    except (OverflowError, OSError, ValueError, TypeError):
        raise Unauthenticated(TIME_CLAIMS_OUT_OF_RANGE) from None
