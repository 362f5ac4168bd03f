"""Field declarations (graph/execution/declarations.py): what the schema says each field is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

from domain.users import User
from graph.execution import loads
from graph.execution.catalog import catalog_of, spec_of
from graph.execution.declarations import (
    Column,
    Identifier,
    ReferenceOnly,
    ToOne,
    declarations_of,
)
from graph.execution.specs import Related, Value
from graph.ids import to_global_id
from graph.schema.record import schema
from graph.schema.users import UserType

GQL = schema._schema
MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _user() -> User:
    return User(
        id=uuid.uuid4(),
        subject="sub",
        email="ann@example.com",
        name="Ann",
        language="en",
        is_active=True,
        groups=("admin",),
        created_at=MOMENT,
        updated_at=MOMENT,
    )


def test_from_entity_reads_columns_and_the_global_id_as_declared() -> None:
    user = _user()
    shown = UserType.from_entity(user)
    assert shown.id == to_global_id("User", user.id)
    assert (shown.email, shown.name, shown.is_active) == ("ann@example.com", "Ann", True)
    assert list(shown.groups) == ["admin"]  # as stored: GraphQL lists any iterable
    assert shown.entity is user


def test_the_schema_holds_each_fields_declaration() -> None:
    declared = declarations_of(GQL)
    assert declared.fields["User"]["id"] == Identifier()
    assert declared.fields["User"]["isActive"] == Column("is_active")  # the convention
    assert declared.fields["Asset"]["owner"] == ToOne("owner_id", loads.users_by_id)
    assert declared.entities["Asset"] == "Asset"  # the class of AssetType's `entity`
    assert isinstance(declared.fields["Query"]["node"], ReferenceOnly)
    assert "Batch" in declared.reference_only_types
    assert "Batch" not in catalog_of(GQL)  # and so the batched plan never serves it


def test_the_batched_catalog_follows_the_declaration() -> None:
    column = spec_of("User", Column("email"))
    assert isinstance(column, Value)
    assert column.attribute == "email"
    relation = spec_of("Asset", ToOne("owner_id", loads.users_by_id))
    assert isinstance(relation, Related)
    assert relation.load is loads.users_by_id
    assert relation.key(SimpleNamespace(owner_id=7)) == 7
    assert spec_of("Query", ReferenceOnly("why")) is None
