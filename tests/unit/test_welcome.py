"""What `assay serve` tells the person at the terminal in development."""

from __future__ import annotations

from pathlib import Path

from server.cli import welcome_lines
from server.settings import Environment, Settings


def test_development_names_graphiql_and_the_token_command(tmp_path: Path) -> None:
    lines = welcome_lines(Settings(data_dir=tmp_path), "127.0.0.1", 8000)
    assert lines[0] == "GraphiQL: http://127.0.0.1:8000/graphql (signed in as demo@example.com)"
    assert "assay token --email" in lines[1]


def test_all_interfaces_are_shown_as_the_local_address(tmp_path: Path) -> None:
    lines = welcome_lines(Settings(data_dir=tmp_path), "0.0.0.0", 9000)  # noqa: S104
    assert lines[0].startswith("GraphiQL: http://127.0.0.1:9000/graphql")


def test_production_and_cognito_print_no_token_hints(tmp_path: Path) -> None:
    production = Settings(data_dir=tmp_path, environment=Environment.PRODUCTION)
    assert welcome_lines(production, "0.0.0.0", 8000) == []  # noqa: S104
    cognito = Settings(
        data_dir=tmp_path,
        cognito_region="eu-west-1",
        cognito_user_pool_id="eu-west-1_pool",
        cognito_app_client_id="client",
    )
    assert welcome_lines(cognito, "127.0.0.1", 8000) == ["GraphiQL: http://127.0.0.1:8000/graphql"]
