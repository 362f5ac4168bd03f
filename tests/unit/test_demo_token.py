"""GraphiQL's demo token: in development with the local issuer only."""

from __future__ import annotations

from pathlib import Path

import jwt

from graph.transport.graphiql import graphiql_page
from server.bootstrap import DEMO_EMAIL, demo_token_issuer, local_issuer
from server.settings import Environment, Settings


def test_development_with_the_local_issuer_signs_graphiql_in(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    issue = demo_token_issuer(settings, local_issuer(settings))
    assert issue is not None
    bearer = issue()
    claims = jwt.decode(bearer, options={"verify_signature": False})
    assert claims["email"] == DEMO_EMAIL
    assert f"Bearer {bearer}" in graphiql_page("/graphql", bearer)


def test_never_in_production_or_with_cognito(tmp_path: Path) -> None:
    production = Settings(data_dir=tmp_path, environment=Environment.PRODUCTION)
    assert demo_token_issuer(production, local_issuer(production)) is None
    cognito = Settings(
        data_dir=tmp_path,
        cognito_region="eu-west-1",
        cognito_user_pool_id="eu-west-1_pool",
        cognito_app_client_id="client",
    )
    assert demo_token_issuer(cognito, None) is None
    no_ide = Settings(data_dir=tmp_path, graphiql=False)
    assert demo_token_issuer(no_ide, local_issuer(no_ide)) is None
