"""Submission metadata: a client's own key/value labels on a submission, and the filter by one."""

from __future__ import annotations

import strawberry

from domain.submissions import (
    MAX_METADATA_KEY,
    MAX_METADATA_PAIRS,
    MAX_METADATA_VALUE,
    Metadata,
    checked_metadata,
)
from graph.execution.declarations import Entity

LIMITS = (
    f"at most {MAX_METADATA_PAIRS} pairs, keys distinct, each key 1 to {MAX_METADATA_KEY} "
    f"characters without control characters, each value at most {MAX_METADATA_VALUE} "
    "characters"
)


@strawberry.type(description="One key/value label a client put on a submission.")
class MetadataEntry(Entity):
    key: str = strawberry.field(
        description=f"The label's name, 1 to {MAX_METADATA_KEY} characters."
    )
    value: str = strawberry.field(
        description=f"The label's value, at most {MAX_METADATA_VALUE} characters."
    )


@strawberry.input(description="One key/value label to put on a submission, or to filter by.")
class MetadataEntryInput:
    key: str = strawberry.field(
        description=f"1 to {MAX_METADATA_KEY} characters, no control characters; "
        "BAD_USER_INPUT otherwise."
    )
    value: str = strawberry.field(
        description=f"At most {MAX_METADATA_VALUE} characters; BAD_USER_INPUT otherwise."
    )


METADATA_INPUT = (
    f"Labels of the client's own, returned on the Submission and filterable in `submissions`: "
    f"{LIMITS}. BAD_USER_INPUT naming the bad pair (`input.metadata.2.key`), and then nothing "
    "is stored."
)


def from_input(given: list[MetadataEntryInput] | None, path: str = "input.metadata") -> Metadata:
    """The pairs as stored, checked; BAD_USER_INPUT naming each bad one."""
    if not given:
        return ()
    return checked_metadata([(m.key, m.value) for m in given], path)
