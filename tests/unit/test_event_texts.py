"""The store's payload texts (persistence.events.event_columns) are the domain's events
(event_payloads.events_of) as orjson writes them, character for character."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

import orjson

from domain.event_payloads import SubmissionChange, events_of
from persistence.events import event_columns
from tests.event_changes import varied_changes


def _by_domain(changes: Sequence[SubmissionChange]) -> list[tuple[str, uuid.UUID, uuid.UUID, str]]:
    return [
        (e.type.value, e.owner_id, e.subject_id, orjson.dumps(e.payload).decode())
        for e in events_of(changes)
    ]


def test_each_payload_is_the_domains_text() -> None:
    changes = varied_changes(uuid.uuid4())
    columns = event_columns(changes)
    stored = list(
        zip(columns.types, columns.owners, columns.subjects, columns.payloads, strict=True)
    )
    assert stored == _by_domain(changes)


def test_a_value_met_again_is_written_as_the_first_time() -> None:
    # Ids and times are remembered within a call: the same submission twice (its PENDING and
    # RUNNING, as a batch writes them) and two submissions of one moment.
    owner = uuid.uuid4()
    first, second = varied_changes(owner)[:2]
    again = replace(first, submission=replace(first.submission, attempts=1))
    same_moment = replace(second, submission=replace(second.submission, id=uuid.uuid4()))
    changes = [first, again, second, same_moment]
    assert event_columns(changes).payloads == [p for *_, p in _by_domain(changes)]
