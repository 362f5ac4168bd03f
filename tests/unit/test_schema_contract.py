"""The printed schema matches schema.graphql and breaks nothing in the public contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import build_schema, find_breaking_changes

from graph.schema import schema

ROOT = Path(__file__).resolve().parents[2]
# The repository carries its own copy of the contract so that a clean clone tests alone;
# the shared original, when present beside the checkout, must not have drifted from it.
CONTRACT = ROOT / "contract" / "api-contract.graphql"
ADDITIONS = ROOT / "contract" / "api-contract-additions.graphql"
SHARED = ROOT.parent / "shared"


def test_schema_graphql_is_printed_from_the_code() -> None:
    assert (ROOT / "schema.graphql").read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `assay schema --write`"
    )


def test_schema_breaks_nothing_in_the_contract() -> None:
    contract = build_schema(CONTRACT.read_text())
    ours = build_schema(schema.as_str())
    changes = find_breaking_changes(contract, ours)
    assert changes == [], "\n".join(f"{c.type.name}: {c.description}" for c in changes)


@pytest.mark.parametrize("copy", [CONTRACT, ADDITIONS], ids=lambda p: p.name)
def test_contract_copy_equals_the_shared_original(copy: Path) -> None:
    original = SHARED / copy.name
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the copy in contract/ is the reference")
    assert copy.read_bytes() == original.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {original}: copy the shared file again"
    )
