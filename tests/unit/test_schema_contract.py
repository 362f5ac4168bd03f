"""The printed schema matches schema.graphql and breaks nothing in the public contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    DefinitionNode,
    DocumentNode,
    GraphQLSchema,
    TypeDefinitionNode,
    TypeExtensionNode,
    build_schema,
    find_breaking_changes,
    parse,
    print_ast,
)

from graph.schema.record import schema

ROOT = Path(__file__).resolve().parents[2]
# The repository carries its own copy of the contract so that a clean clone tests alone;
# the shared original, when present beside the checkout, must not have drifted from it.
CONTRACT = ROOT / "contract" / "api-contract.graphql"
ADDITIONS = ROOT / "contract" / "api-contract-additions.graphql"
NEXT = ROOT / "contract" / "api-contract-next.graphql"
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


def _members(node: DefinitionNode) -> tuple[str, tuple[object, ...]]:
    """The attribute holding a definition's members (fields, enum values) and those members."""
    for attribute in ("fields", "values"):
        members = getattr(node, attribute, None)
        if members is not None:
            return attribute, tuple(members)
    return "", ()


def _built_part(node: DefinitionNode, ours: GraphQLSchema) -> DefinitionNode | None:
    """What of one additions definition our schema has: a new type whole once it exists, an
    extension's members that exist. Whatever exists must then match the additions exactly."""
    assert isinstance(node, TypeDefinitionNode | TypeExtensionNode)
    built = ours.get_type(node.name.value)
    if built is None:
        return None
    if isinstance(node, TypeDefinitionNode):
        return node
    attribute, members = _members(node)
    names = set(getattr(built, attribute, {}) or {})
    kept = tuple(m for m in members if m.name.value in names)  # type: ignore[attr-defined]  # every member node is named
    if not kept:
        return None
    fields = {key: getattr(node, key) for key in node.keys}
    return node.__class__(**{**fields, attribute: kept})


def _built_additions(ours: GraphQLSchema) -> tuple[str, int]:
    """The additions file cut to what is built, and how many of its definitions are cut."""
    document = parse(ADDITIONS.read_text())
    parts = [_built_part(d, ours) for d in document.definitions]
    built = tuple(p for p in parts if p is not None)
    unbuilt = sum(p is not d for p, d in zip(parts, document.definitions, strict=True))
    return print_ast(DocumentNode(definitions=built)), unbuilt


def test_schema_breaks_nothing_in_the_built_additions() -> None:
    """Once everything in the additions is built, this is contract + additions vs ours whole;
    until then every part that exists must have the additions' exact signature."""
    ours = build_schema(schema.as_str())
    built, _ = _built_additions(ours)
    expected = build_schema(CONTRACT.read_text() + "\n" + built)
    changes = find_breaking_changes(expected, ours)
    assert changes == [], "\n".join(f"{c.type.name}: {c.description}" for c in changes)


def test_batches_and_callbacks_of_the_additions_are_built() -> None:
    ours = build_schema(schema.as_str())
    for name in ("Batch", "BatchCounts", "BatchConnection", "RotateCallbackSecretPayload"):
        assert ours.get_type(name) is not None, name
    built, _ = _built_additions(ours)
    for field in ("cancelBatch", "rotateCallbackSecret", "batchUpdated", "batches", "callbackUrl"):
        assert field in built, field


def test_schema_breaks_nothing_in_model_monitoring() -> None:
    """api-contract-next.graphql (model monitoring) is built whole: contract, the built
    additions and it, against ours, show no breaking change."""
    ours = build_schema(schema.as_str())
    built, _ = _built_additions(ours)
    expected = build_schema("\n".join([CONTRACT.read_text(), built, NEXT.read_text()]))
    changes = find_breaking_changes(expected, ours)
    assert changes == [], "\n".join(f"{c.type.name}: {c.description}" for c in changes)
    for name in ("ModelStats", "ModelDrift", "ModelQuality", "ModelAlert", "StatsWindow"):
        assert ours.get_type(name) is not None, name


@pytest.mark.parametrize("copy", [CONTRACT, ADDITIONS, NEXT], ids=lambda p: p.name)
def test_contract_copy_equals_the_shared_original(copy: Path) -> None:
    original = SHARED / copy.name
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the copy in contract/ is the reference")
    assert copy.read_bytes() == original.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {original}: copy the shared file again"
    )
