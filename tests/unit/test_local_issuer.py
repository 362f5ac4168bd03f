"""Unit tests for the local token issuer: key file handling, JWKS shape and Cognito-like claims."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.local_issuer import LOCAL_CLIENT_ID, LocalIssuer

ISSUER = "http://127.0.0.1:8000/local-auth"


@pytest.fixture(scope="module")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("issuer") / "keys" / "local-issuer.pem"


@pytest.fixture(scope="module")
def issuer(key_path: Path) -> LocalIssuer:
    return LocalIssuer(key_path, ISSUER)


def decode(issuer: LocalIssuer, token: str) -> dict[str, Any]:
    """Verifies with plain PyJWT against the issuer's published JWKS key."""
    key = jwt.PyJWK(issuer.jwks()["keys"][0])
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "sub"], "verify_aud": False},
    )
    return claims


def test_key_file_is_created_with_mode_0600_in_a_new_directory(
    issuer: LocalIssuer, key_path: Path
) -> None:
    assert key_path.is_file()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 2048
    assert [p.name for p in key_path.parent.iterdir()] == [key_path.name]  # no temp file left


def test_key_file_is_reused_across_instances(issuer: LocalIssuer, key_path: Path) -> None:
    before = key_path.read_bytes()
    again = LocalIssuer(key_path, ISSUER)
    assert again.kid == issuer.kid
    assert again.jwks() == issuer.jwks()
    assert key_path.read_bytes() == before
    assert decode(issuer, again.issue(email="a@example.com", name="A"))["email"] == "a@example.com"


def test_a_new_key_path_gets_a_different_key(issuer: LocalIssuer, tmp_path: Path) -> None:
    assert LocalIssuer(tmp_path / "other.pem", ISSUER).kid != issuer.kid


def test_a_key_file_that_is_not_rsa_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="RSA"):
        LocalIssuer(path, ISSUER)


def test_jwks_has_one_public_rsa_signing_key_with_kid(issuer: LocalIssuer) -> None:
    document = issuer.jwks()
    assert list(document) == ["keys"]
    assert len(document["keys"]) == 1
    (jwk,) = document["keys"]
    assert jwk["kty"] == "RSA"
    assert jwk["kid"] == issuer.kid
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert jwk["e"]
    assert jwk["n"]
    for private_part in ("d", "p", "q", "dp", "dq", "qi"):
        assert private_part not in jwk


def test_kid_is_the_rfc7638_thumbprint_of_the_public_key(issuer: LocalIssuer) -> None:
    (jwk,) = issuer.jwks()["keys"]
    assert issuer.kid == jwt.PyJWK(jwk).key_id
    assert len(issuer.kid) == 43  # base64url of a SHA-256 digest, unpadded
    assert "=" not in issuer.kid


def test_issued_claims_mirror_a_cognito_access_token(issuer: LocalIssuer) -> None:
    before = int(time.time())
    token = issuer.issue(
        email="ada@example.com", name="Ada Lovelace", groups=["admins"], expires_in=600
    )
    after = int(time.time())
    claims = jwt.decode(token, options={"verify_signature": False})

    assert claims["iss"] == ISSUER
    assert claims["sub"]
    assert claims["client_id"] == LOCAL_CLIENT_ID
    assert claims["token_use"] == "access"
    assert before <= claims["iat"] <= after
    assert claims["exp"] == claims["iat"] + 600
    assert claims["cognito:groups"] == ["admins"]
    assert claims["email"] == "ada@example.com"
    assert claims["name"] == "Ada Lovelace"
    assert "aud" not in claims
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": issuer.kid}


def test_groups_default_to_an_empty_list(issuer: LocalIssuer) -> None:
    claims = decode(issuer, issuer.issue(email="b@example.com", name="B"))
    assert claims["cognito:groups"] == []


def test_client_id_can_be_chosen(key_path: Path) -> None:
    custom = LocalIssuer(key_path, ISSUER, client_id="my-app")
    assert decode(custom, custom.issue(email="c@example.com", name="C"))["client_id"] == "my-app"


def test_subject_is_stable_for_the_same_email(issuer: LocalIssuer, key_path: Path) -> None:
    first = decode(issuer, issuer.issue(email="ada@example.com", name="Ada"))
    second = decode(issuer, issuer.issue(email="ada@example.com", name="Ada L.", groups=["x"]))
    other_instance = LocalIssuer(key_path, ISSUER)
    third = decode(other_instance, other_instance.issue(email="ada@example.com", name="Ada"))
    assert first["sub"] == second["sub"] == third["sub"]
    assert first["jti"] != second["jti"]


def test_subject_differs_by_email_and_can_be_overridden(issuer: LocalIssuer) -> None:
    ada = decode(issuer, issuer.issue(email="ada@example.com", name="Ada"))
    grace = decode(issuer, issuer.issue(email="grace@example.com", name="Grace"))
    chosen = decode(issuer, issuer.issue(email="ada@example.com", name="Ada", subject="user-7"))
    assert ada["sub"] != grace["sub"]
    assert chosen["sub"] == "user-7"


def test_token_verifies_with_pyjwt_using_the_jwks_key(issuer: LocalIssuer) -> None:
    claims = decode(issuer, issuer.issue(email="ada@example.com", name="Ada"))
    assert claims["email"] == "ada@example.com"


def test_token_does_not_verify_with_another_key(issuer: LocalIssuer, tmp_path: Path) -> None:
    stranger = LocalIssuer(tmp_path / "stranger.pem", ISSUER)
    with pytest.raises(jwt.InvalidSignatureError):
        decode(issuer, stranger.issue(email="ada@example.com", name="Ada"))


def test_expired_token_from_the_issuer_is_refused_by_pyjwt(issuer: LocalIssuer) -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        decode(issuer, issuer.issue(email="ada@example.com", name="Ada", expires_in=-60))
