"""Unit tests for JwtVerifier: every way a bearer token can be wrong, built explicitly per test.

The key set comes from a LocalIssuer through an in-memory fetch function; tokens are built here
with PyJWT and `cryptography` so that each attack (algorithm confusion, swapped kid, wrong
audience, ...) is spelled out rather than hidden behind the issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.jwks import JwksCache, JwksDocument
from auth.local_issuer import LocalIssuer
from auth.verifier import VERIFIED_TOKEN_SECONDS, JwtVerifier, TrustedIssuer
from domain.errors import Unauthenticated
from domain.principal import Identity

ISSUER = "https://auth.assay.test/local"
CLIENT_ID = "assay-local"
LEEWAY = 30
MAX_TOKEN_BYTES = 8192


# --- token construction helpers -------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand, for tokens PyJWT refuses to produce."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url(signature)}"


def sign(
    claims: dict[str, Any],
    key: rsa.RSAPrivateKey,
    *,
    kid: str | None,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
) -> str:
    """A token signed with `key` by PyJWT, with an explicit algorithm and kid header."""
    all_headers: dict[str, Any] = dict(headers or {})
    if kid is not None:
        all_headers["kid"] = kid
    return jwt.encode(claims, key, algorithm=alg, headers=all_headers)


def access_claims(**overrides: Any) -> dict[str, Any]:
    """Claims shaped like a Cognito access token; `None` values remove the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "0f6c1d1e-5b77-4c61-9d0c-8f1f3b0f6a11",
        "client_id": CLIENT_ID,
        "token_use": "access",
        "scope": "openid email profile",
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
        "jti": "b8c3f0a4-2d3b-4f3e-a3c5-0c1b2d3e4f5a",
        "username": "ada@example.com",
        "cognito:groups": ["admins", "researchers"],
        "email": "ada@example.com",
        "name": "Ada Lovelace",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def id_claims(**overrides: Any) -> dict[str, Any]:
    """Claims shaped like a Cognito ID token: aud instead of client_id."""
    base = access_claims(token_use="id", client_id=None, scope=None, aud=CLIENT_ID)
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


# --- fixtures --------------------------------------------------------------------------------


class Keys:
    def __init__(self, issuer: LocalIssuer, private_key: rsa.RSAPrivateKey) -> None:
        self.issuer = issuer
        self.private_key = private_key  # the key behind issuer.kid
        self.kid = issuer.kid
        self.public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    key_path: Path = tmp_path_factory.mktemp("verifier") / "local-issuer.pem"
    issuer = LocalIssuer(key_path, ISSUER, CLIENT_ID)
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    return Keys(issuer, private_key)


class CountingFetch:
    def __init__(self, document: JwksDocument) -> None:
        self.document = document
        self.calls = 0

    async def __call__(self) -> JwksDocument:
        self.calls += 1
        return self.document


@pytest.fixture
def fetch(keys: Keys) -> CountingFetch:
    return CountingFetch(keys.issuer.jwks())


@pytest.fixture
def verifier(fetch: CountingFetch) -> JwtVerifier:
    cache = JwksCache(fetch, refresh_cooldown_seconds=0.0)
    return JwtVerifier(
        TrustedIssuer(ISSUER, CLIENT_ID),
        cache,
        leeway_seconds=LEEWAY,
        max_token_bytes=MAX_TOKEN_BYTES,
    )


async def refused(verifier: JwtVerifier, token: str, match: str) -> Unauthenticated:
    """Asserts refusal with a message matching `match` that does not echo the token back."""
    with pytest.raises(Unauthenticated, match=match) as caught:
        await verifier.verify(token)
    message = str(caught.value)
    assert message
    if token:
        assert token not in message
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in message
    return caught.value


# --- accepted tokens -------------------------------------------------------------------------


async def test_valid_access_token_gives_identity_with_email_name_groups_subject_expiry(
    verifier: JwtVerifier, keys: Keys
) -> None:
    claims = access_claims()
    identity = await verifier.verify(sign(claims, keys.private_key, kid=keys.kid))
    assert identity == Identity(
        subject=claims["sub"],
        email="ada@example.com",
        name="Ada Lovelace",
        groups=("admins", "researchers"),
        expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
    )


async def test_token_issued_by_the_local_issuer_is_accepted(
    verifier: JwtVerifier, keys: Keys
) -> None:
    token = keys.issuer.issue(email="grace@example.com", name="Grace Hopper", groups=["ops"])
    identity = await verifier.verify(token)
    assert identity.email == "grace@example.com"
    assert identity.name == "Grace Hopper"
    assert identity.groups == ("ops",)


async def test_access_token_without_groups_email_or_name_gives_empty_values(
    verifier: JwtVerifier, keys: Keys
) -> None:
    claims = access_claims(**{"cognito:groups": None, "email": None, "name": None})
    identity = await verifier.verify(sign(claims, keys.private_key, kid=keys.kid))
    assert (identity.groups, identity.email, identity.name) == ((), "", "")


async def test_valid_id_token_with_aud_and_no_client_id_is_accepted(
    verifier: JwtVerifier, keys: Keys
) -> None:
    claims = id_claims()
    assert "client_id" not in claims
    identity = await verifier.verify(sign(claims, keys.private_key, kid=keys.kid))
    assert identity.subject == claims["sub"]
    assert identity.email == "ada@example.com"


async def test_keys_are_fetched_once_for_many_verifications(
    verifier: JwtVerifier, keys: Keys, fetch: CountingFetch
) -> None:
    token = sign(access_claims(), keys.private_key, kid=keys.kid)
    for _ in range(5):
        await verifier.verify(token)
    assert fetch.calls == 1


# --- algorithm and key attacks ---------------------------------------------------------------


async def test_unsigned_token_with_alg_none_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    token = forge({"alg": "none", "typ": "JWT", "kid": keys.kid}, access_claims())
    await refused(verifier, token, "algorithm not allowed")


async def test_unsigned_token_with_alg_none_made_by_pyjwt_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    token = jwt.encode(access_claims(), "", algorithm="none", headers={"kid": keys.kid})
    await refused(verifier, token, "algorithm not allowed")


async def test_token_signed_with_hs256_using_the_public_key_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.kid}
    unsigned = forge(header, access_claims()).rsplit(".", 1)[0]
    mac = hmac.new(keys.public_pem, unsigned.encode(), hashlib.sha256).digest()
    token = f"{unsigned}.{b64url(mac)}"
    await refused(verifier, token, "algorithm not allowed")


async def test_token_with_alg_rs256_in_header_but_hmac_signature_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    header = {"alg": "RS256", "typ": "JWT", "kid": keys.kid}
    unsigned = forge(header, access_claims()).rsplit(".", 1)[0]
    mac = hmac.new(keys.public_pem, unsigned.encode(), hashlib.sha256).digest()
    await refused(verifier, f"{unsigned}.{b64url(mac)}", "signature or claims are invalid")


@pytest.mark.parametrize("alg", ["RS512", "RS384", "PS256", "PS512"])
async def test_token_signed_with_the_right_rsa_key_but_another_rsa_algorithm_is_refused(
    verifier: JwtVerifier, keys: Keys, alg: str
) -> None:
    token = sign(access_claims(), keys.private_key, kid=keys.kid, alg=alg)
    await refused(verifier, token, "algorithm not allowed")


async def test_token_signed_with_another_key_but_naming_the_trusted_kid_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    token = sign(access_claims(), keys.other_key, kid=keys.kid)
    await refused(verifier, token, "signature or claims are invalid")


async def test_token_with_tampered_claims_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    header, _, signature = sign(access_claims(), keys.private_key, kid=keys.kid).split(".")
    payload = b64url(json.dumps(access_claims(**{"cognito:groups": ["admins"]})).encode())
    await refused(verifier, f"{header}.{payload}.{signature}", "signature or claims are invalid")


async def test_token_with_unknown_kid_is_refused(
    verifier: JwtVerifier, keys: Keys, fetch: CountingFetch
) -> None:
    token = sign(access_claims(), keys.private_key, kid="not-a-published-kid")
    await refused(verifier, token, "unknown key")


async def test_token_without_kid_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    await refused(verifier, sign(access_claims(), keys.private_key, kid=None), "no kid")


async def test_token_with_non_string_kid_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    # PyJWT will not encode such a header, and its header parser refuses it as malformed.
    token = forge({"alg": "RS256", "kid": 42}, access_claims(), os.urandom(256))
    await refused(verifier, token, "malformed|no kid")


async def test_token_is_refused_with_a_retry_message_when_keys_cannot_be_fetched(
    keys: Keys,
) -> None:
    async def failing_fetch() -> JwksDocument:
        raise ConnectionError("jwks endpoint unreachable")

    verifier = JwtVerifier(TrustedIssuer(ISSUER, CLIENT_ID), JwksCache(failing_fetch))
    token = sign(access_claims(), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "signing keys are unavailable")


# --- issuer, audience and token_use ----------------------------------------------------------


async def test_token_from_another_issuer_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    token = sign(access_claims(iss="https://evil.example/pool"), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "untrusted issuer")


async def test_access_token_for_another_client_id_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    token = sign(access_claims(client_id="another-app"), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "another client")


async def test_access_token_without_client_id_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    token = sign(access_claims(client_id=None), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "another client")


async def test_access_token_with_aud_but_wrong_client_id_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    claims = access_claims(client_id="another-app", aud=CLIENT_ID)
    await refused(verifier, sign(claims, keys.private_key, kid=keys.kid), "another client")


async def test_id_token_whose_aud_is_another_client_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    token = sign(id_claims(aud="another-app"), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "another client")


async def test_id_token_with_aud_as_a_list_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    token = sign(id_claims(aud=[CLIENT_ID, "another-app"]), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "another client")


async def test_access_token_presented_as_id_token_without_aud_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    claims = access_claims(token_use="id")
    assert "aud" not in claims
    await refused(verifier, sign(claims, keys.private_key, kid=keys.kid), "another client")


async def test_token_without_token_use_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    token = sign(access_claims(token_use=None), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "token_use")


@pytest.mark.parametrize("token_use", ["refresh", "ACCESS", "", "Id"])
async def test_token_with_token_use_other_than_access_or_id_is_refused(
    verifier: JwtVerifier, keys: Keys, token_use: str
) -> None:
    token = sign(access_claims(token_use=token_use), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "token_use must be")


# --- time claims -----------------------------------------------------------------------------


async def test_token_expired_beyond_the_leeway_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    now = int(time.time())
    claims = access_claims(iat=now - 7200, exp=now - LEEWAY - 30)
    await refused(verifier, sign(claims, keys.private_key, kid=keys.kid), "expired")


async def test_token_expired_within_the_leeway_is_accepted(
    verifier: JwtVerifier, keys: Keys
) -> None:
    now = int(time.time())
    claims = access_claims(iat=now - 3600, exp=now - LEEWAY // 3)
    identity = await verifier.verify(sign(claims, keys.private_key, kid=keys.kid))
    assert identity.expires_at < datetime.now(UTC)


async def test_token_with_nbf_in_the_future_is_refused(verifier: JwtVerifier, keys: Keys) -> None:
    claims = access_claims(nbf=int(time.time()) + LEEWAY + 300)
    await refused(verifier, sign(claims, keys.private_key, kid=keys.kid), "not yet valid")


async def test_token_with_nbf_in_the_past_is_accepted(verifier: JwtVerifier, keys: Keys) -> None:
    claims = access_claims(nbf=int(time.time()) - 10)
    assert await verifier.verify(sign(claims, keys.private_key, kid=keys.kid))


async def test_token_issued_in_the_future_beyond_the_leeway_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    # PyJWT 2.15 checks iat against now + leeway (ImmatureSignatureError).
    now = int(time.time())
    claims = access_claims(iat=now + LEEWAY + 300, exp=now + 3600)
    await refused(verifier, sign(claims, keys.private_key, kid=keys.kid), "not yet valid")


async def test_token_issued_slightly_in_the_future_within_the_leeway_is_accepted(
    verifier: JwtVerifier, keys: Keys
) -> None:
    claims = access_claims(iat=int(time.time()) + LEEWAY // 3)
    assert await verifier.verify(sign(claims, keys.private_key, kid=keys.kid))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "sub"])
async def test_token_missing_a_required_claim_is_refused(
    verifier: JwtVerifier, keys: Keys, claim: str
) -> None:
    token = sign(access_claims(**{claim: None}), keys.private_key, kid=keys.kid)
    await refused(verifier, token, f"lacks the {claim} claim")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "tomorrow"), ("iat", "now"), ("nbf", "later"), ("sub", 12345)],
)
async def test_token_with_a_claim_of_the_wrong_type_is_refused(
    verifier: JwtVerifier, keys: Keys, claim: str, value: object
) -> None:
    token = sign(access_claims(**{claim: value}), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "invalid")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", 10**18),
        ("exp", 1e300),
        ("exp", float("inf")),
        ("nbf", float("-inf")),
        ("iat", float("nan")),
    ],
)
async def test_token_with_a_time_claim_out_of_range_is_unauthenticated(
    verifier: JwtVerifier, keys: Keys, claim: str, value: float
) -> None:
    # Correctly signed: only the claim's size is wrong (exp = 1e18 used to raise OSError).
    token = sign(access_claims(**{claim: value}), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "out of range|invalid")


# --- malformed input -------------------------------------------------------------------------


def _garbage() -> list[str]:
    random_b64 = base64.b64encode(os.urandom(96)).decode()
    return [
        "",
        "abc",
        "a.b.c",
        "a.b",
        "....",
        "Bearer abc",
        random_b64,
        ".".join(b64url(os.urandom(32)) for _ in range(3)),
        f"{b64url(b'[1,2]')}.{b64url(b'{}')}.",
        f"{b64url(b'not json')}.{b64url(b'{}')}.sig",
    ]


@pytest.mark.parametrize("token", _garbage())
async def test_garbage_strings_are_refused_as_malformed(
    verifier: JwtVerifier, fetch: CountingFetch, token: str
) -> None:
    await refused(verifier, token, "malformed")
    assert fetch.calls == 0


async def test_well_formed_header_with_garbage_payload_is_refused(
    verifier: JwtVerifier, keys: Keys
) -> None:
    header = b64url(json.dumps({"alg": "RS256", "kid": keys.kid}).encode())
    token = f"{header}.{b64url(os.urandom(40))}.{b64url(os.urandom(256))}"
    await refused(verifier, token, "invalid")


async def test_token_longer_than_max_token_bytes_is_refused_before_parsing(
    verifier: JwtVerifier, keys: Keys, fetch: CountingFetch, monkeypatch: pytest.MonkeyPatch
) -> None:
    padded = access_claims(padding="x" * MAX_TOKEN_BYTES)
    token = sign(padded, keys.private_key, kid=keys.kid)
    assert len(token) > MAX_TOKEN_BYTES

    def must_not_parse(token: str | bytes) -> dict[str, Any]:
        raise AssertionError("the header of an oversized token was parsed")

    monkeypatch.setattr(jwt, "get_unverified_header", must_not_parse)
    await refused(verifier, token, f"longer than {MAX_TOKEN_BYTES} bytes")
    assert fetch.calls == 0


async def test_token_of_exactly_max_token_bytes_is_not_refused_for_its_length(
    keys: Keys, fetch: CountingFetch
) -> None:
    token = sign(access_claims(), keys.private_key, kid=keys.kid)
    verifier = JwtVerifier(
        TrustedIssuer(ISSUER, CLIENT_ID), JwksCache(fetch), max_token_bytes=len(token)
    )
    assert await verifier.verify(token)


# --- claims that reach the Identity ----------------------------------------------------------


@pytest.mark.parametrize("groups", ["admins", {"admins": True}, ["admins", 7], [None], 1])
async def test_cognito_groups_that_are_not_a_list_of_strings_are_refused(
    verifier: JwtVerifier, keys: Keys, groups: object
) -> None:
    token = sign(access_claims(**{"cognito:groups": groups}), keys.private_key, kid=keys.kid)
    await refused(verifier, token, "cognito:groups must be a list of strings")


# --- messages never echo the token -----------------------------------------------------------

TokenMaker = Callable[[Keys], str]

REFUSALS: dict[str, TokenMaker] = {
    "alg none": lambda k: forge({"alg": "none", "kid": k.kid}, access_claims()),
    "rs512": lambda k: sign(access_claims(), k.private_key, kid=k.kid, alg="RS512"),
    "swapped kid": lambda k: sign(access_claims(), k.other_key, kid=k.kid),
    "unknown kid": lambda k: sign(access_claims(), k.private_key, kid="nope"),
    "wrong iss": lambda k: sign(access_claims(iss="https://x"), k.private_key, kid=k.kid),
    "wrong client": lambda k: sign(access_claims(client_id="x"), k.private_key, kid=k.kid),
    "expired": lambda k: sign(access_claims(exp=1), k.private_key, kid=k.kid),
    "no sub": lambda k: sign(access_claims(sub=None), k.private_key, kid=k.kid),
    "refresh": lambda k: sign(access_claims(token_use="refresh"), k.private_key, kid=k.kid),
    "groups": lambda k: sign(access_claims(**{"cognito:groups": "a"}), k.private_key, kid=k.kid),
    "oversized": lambda k: sign(access_claims(pad="p" * 9000), k.private_key, kid=k.kid),
    "garbage": lambda k: "garbage-" + b64url(os.urandom(48)),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_refusal_messages_never_contain_the_token(
    verifier: JwtVerifier, keys: Keys, case: str
) -> None:
    token = REFUSALS[case](keys)
    await refused(verifier, token, ".")


# --- verified-token cache ----------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_verified_token_is_trusted_again_only_until_the_cache_bound_and_its_exp(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = access_claims()
    clock = Clock(float(claims["iat"]))
    verifier = JwtVerifier(
        TrustedIssuer(ISSUER, CLIENT_ID), JwksCache(CountingFetch(keys.issuer.jwks())), clock=clock
    )
    token = sign(claims, keys.private_key, kid=keys.kid)
    first = await verifier.verify(token)

    decodes = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    clock.now += VERIFIED_TOKEN_SECONDS - 1
    assert await verifier.verify(token) == first
    assert decodes == 0  # answered from the cache
    clock.now += 2
    assert await verifier.verify(token) == first
    assert decodes == 1  # past the cache bound: checked again


async def test_a_token_is_never_answered_from_the_cache_past_its_exp(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = access_claims()
    clock = Clock(float(claims["exp"]) - 5)
    verifier = JwtVerifier(
        TrustedIssuer(ISSUER, CLIENT_ID), JwksCache(CountingFetch(keys.issuer.jwks())), clock=clock
    )
    token = sign(claims, keys.private_key, kid=keys.kid)
    await verifier.verify(token)

    def expired(*args: Any, **kwargs: Any) -> Any:
        raise jwt.ExpiredSignatureError

    monkeypatch.setattr(jwt, "decode", expired)  # what PyJWT says once exp has passed
    clock.now = float(claims["exp"])
    with pytest.raises(Unauthenticated, match="expired"):
        await verifier.verify(token)
