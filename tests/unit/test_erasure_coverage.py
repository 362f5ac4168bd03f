"""Erasure covers every table that refers to a user: a new one fails here until it is covered."""

from __future__ import annotations

import sqlalchemy as sa

from persistence import tables
from persistence.accounts import ERASED_REFERENCES

# Column names that refer to a user without a foreign key (or before one is added).
_USER_COLUMN_NAMES = {"owner_id", "user_id", "registered_by", "created_by", "updated_by"}


def user_references(metadata: sa.MetaData) -> set[tuple[str, str]]:
    """(table, column) for every column that holds a user's id, read from the metadata."""
    found = set()
    for table in metadata.sorted_tables:
        if table is tables.users:
            continue
        for column in table.columns:
            is_foreign = any(key.column.table is tables.users for key in column.foreign_keys)
            if is_foreign or column.name in _USER_COLUMN_NAMES or column.name.endswith("_by"):
                found.add((table.name, column.name))
    return found


def test_every_table_with_a_user_reference_is_erased() -> None:
    covered = {(table.name, column) for table, column in ERASED_REFERENCES}
    missing = user_references(tables.metadata) - covered
    assert not missing, (
        f"{sorted(missing)} refer to a user but persistence/accounts.py does not erase them: "
        "add them to ERASED_REFERENCES (and to the erasure test's seed)"
    )
    assert covered <= user_references(tables.metadata)


def test_the_references_are_found_without_a_foreign_key_too() -> None:
    assert ("persisted_operations", "registered_by") in user_references(tables.metadata)
    assert ("submissions", "owner_id") in user_references(tables.metadata)
