"""The store's payload texts (persistence.events.event_columns) are the domain's events
(event_payloads.events_of) as orjson writes them, character for character."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson

from domain.event_payloads import SubmissionChange, events_of
from domain.services.inference import began_changes
from domain.submissions import SubmissionStatus
from persistence.events import began_columns, event_columns
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


def test_a_batch_begun_is_written_as_its_changes_would_be() -> None:
    # Accepted submissions with a batch or none, an error to escape, one microsecond apart,
    # and a start time without microseconds (isoformat drops them).
    owner, batch = uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 12, 6, 1, 2, 3, 456789, tzinfo=UTC)
    accepted = [
        replace(c.submission, id=uuid.uuid4(), status=SubmissionStatus.PENDING, attempts=0)
        for c in varied_changes(owner)
    ]
    accepted = [
        replace(
            s, batch_id=batch if n % 3 else s.batch_id, updated_at=at + timedelta(microseconds=n)
        )
        for n, s in enumerate(accepted)
    ]
    started = datetime(2026, 12, 6, 1, 2, 4, tzinfo=UTC)
    columns = began_columns(accepted, started)
    stored = list(
        zip(columns.types, columns.owners, columns.subjects, columns.payloads, strict=True)
    )
    assert stored == _by_domain(began_changes(accepted, started))
    assert began_columns([], started).values() == event_columns([]).values()
