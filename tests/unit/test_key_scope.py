"""Every mutation whose answer carries a secret has a decision for API keys, written in
docs/accounts.md: a new one fails here until it is refused to keys or allowed on purpose."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import GraphQLNamedType, GraphQLObjectType, GraphQLOutputType, get_named_type

from graph.schema.record import schema

ACCOUNTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "accounts.md"
# Allowed to keys on purpose (docs/accounts.md says why).
ALLOWED_WITH_A_KEY = {"createWebhookEndpoint"}


def keys_may_not_call() -> set[str]:
    """The mutations listed under "Mutations an API key may not call" in docs/accounts.md."""
    section = ACCOUNTS_DOC.read_text().split("### Mutations an API key may not call", 1)[1]
    section = section.split("\n#", 1)[0]
    return set(re.findall(r"^- `(\w+)`", section, flags=re.MULTILINE))


def _carries_secret(kind: GraphQLOutputType, seen: set[str]) -> bool:
    named: GraphQLNamedType = get_named_type(kind)
    if not isinstance(named, GraphQLObjectType) or named.name in seen:
        return False
    seen.add(named.name)
    return any(
        "secret" in name.lower() or _carries_secret(field.type, seen)
        for name, field in named.fields.items()
    )


def secret_bearing_mutations() -> set[str]:
    mutation = schema._schema.mutation_type
    assert mutation is not None
    return {
        name
        for name, field in mutation.fields.items()
        if "secret" in name.lower() or _carries_secret(field.type, set())
    }


def test_every_secret_bearing_mutation_has_a_decision_for_keys() -> None:
    undecided = secret_bearing_mutations() - keys_may_not_call() - ALLOWED_WITH_A_KEY
    assert not undecided, (
        f"{sorted(undecided)} answer with a secret: list them in docs/accounts.md under "
        "'Mutations an API key may not call' (and refuse keys in the service), or allow them "
        "in ALLOWED_WITH_A_KEY with the reason in the doc"
    )


def test_the_documented_list_names_mutations_that_exist() -> None:
    mutation = schema._schema.mutation_type
    assert mutation is not None
    listed = keys_may_not_call()
    assert {"rotateCallbackSecret", "rotateWebhookSecret", "createApiKey"} <= listed
    assert listed <= set(mutation.fields)
    assert not listed & ALLOWED_WITH_A_KEY
