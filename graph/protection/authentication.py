"""Who is calling: a bearer token (verified, or a sign-in cached briefly) or an API key.

The request pipeline's authenticate step and a WebSocket's connection_init both sign in here;
the view only reads the credential off the request."""

from __future__ import annotations

from datetime import datetime

from domain.api_keys import ApiKeySecrets
from domain.errors import DomainError, Unauthenticated
from domain.ports import Clock, TokenVerifier, UnitOfWork, UnitOfWorkFactory
from domain.principal import Principal
from domain.services import api_keys, users
from graph.protection.refused_keys import UnknownKeys
from graph.protection.sign_in import SignedIn, SignInCache
from telemetry import metrics

SignIn = tuple[Principal | DomainError, datetime | None]


def bearer_token(header: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>`: None without the header, "" when it is
    not a bearer credential."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


class Authenticator:
    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        uow: UnitOfWorkFactory,
        read_uow: UnitOfWorkFactory | None,
        clock: Clock,
        admin_group: str,
        api_key_secrets: ApiKeySecrets | None,
        sign_ins: SignInCache | None,
    ) -> None:
        self.verifier = verifier
        self.uow = uow
        self.read_uow = read_uow
        self.clock = clock
        self.admin_group = admin_group
        self.api_key_secrets = api_key_secrets
        self.sign_ins = sign_ins
        self.unknown_keys = UnknownKeys()  # this process's; only misses, so none to revoke

    async def authenticate(
        self, authorization: str | None, reader: UnitOfWork | None = None
    ) -> SignIn:
        """The caller and when its credential expires, or the error every resolver will raise.

        `reader`: the read-only unit of work to look a returning user up on (a new one if
        not given)."""
        token = bearer_token(authorization)
        if token is None:
            return Unauthenticated(), None
        if not token:
            return Unauthenticated("the Authorization header must be 'Bearer <token>'"), None
        secrets = self.api_key_secrets
        if secrets is not None and secrets.is_api_key(token):
            return await self._key_holder(secrets, token, reader)
        cache = self.sign_ins
        if cache is not None and (hit := cache.get(token)) is not None:
            metrics.labelled(metrics.SIGN_INS, "cached").inc()
            return hit.principal, hit.expires_at
        generation = cache.generation if cache is not None else 0
        try:
            identity = await self.verifier.verify(token)
            if reader is None and self.read_uow is not None:
                reader = self.read_uow()
            principal, _ = await users.authenticate(
                self.uow(),
                identity,
                admin_group=self.admin_group,
                clock=self.clock,
                reader=reader,
            )
        except DomainError as error:
            return error, None
        metrics.SIGN_INS.labels("verified").inc()
        if cache is not None:
            cache.put(token, SignedIn(principal, identity.expires_at), generation=generation)
        return principal, identity.expires_at

    async def caller(
        self, authorization: str | None, reader: UnitOfWork | None = None
    ) -> Principal | DomainError:
        """The caller alone: the pipeline's authenticate step."""
        principal_or_error, _ = await self.authenticate(authorization, reader)
        return principal_or_error

    async def _key_holder(
        self, secrets: ApiKeySecrets, secret: str, reader: UnitOfWork | None
    ) -> SignIn:
        """An API key acts as its user, never as an administrator, until revoked or expired.
        A malformed key is refused without a lookup, and one found unknown a moment ago too."""
        if not secrets.is_well_formed(secret):
            return Unauthenticated("malformed API key"), None
        digest = secrets.digest(secret)
        if digest in self.unknown_keys:
            return Unauthenticated("unknown, revoked or expired API key"), None
        if reader is None and self.read_uow is not None:
            reader = self.read_uow()
        try:
            principal, key = await api_keys.authenticate_key(
                self.uow(), secrets, secret, clock=self.clock, reader=reader
            )
        except Unauthenticated as error:
            self.unknown_keys.add(digest)
            return error, None
        except DomainError as error:
            return error, None
        return principal, key.expires_at
