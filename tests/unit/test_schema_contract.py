"""The printed schema matches schema.graphql and breaks nothing in the public contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, find_breaking_changes

from graph.schema import schema

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT.parent / "shared" / "api-contract.graphql"


def test_schema_graphql_is_printed_from_the_code() -> None:
    assert (ROOT / "schema.graphql").read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `assay schema --write`"
    )


def test_schema_breaks_nothing_in_the_contract() -> None:
    if not CONTRACT.exists():
        pytest.fail(f"the contract is missing at {CONTRACT}")
    contract = build_schema(CONTRACT.read_text())
    ours = build_schema(schema.as_str())
    changes = find_breaking_changes(contract, ours)
    assert changes == [], "\n".join(f"{c.type.name}: {c.description}" for c in changes)
