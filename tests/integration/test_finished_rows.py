"""SubmissionRepository.add_finished on PostgreSQL: submissions run before they were stored
are written as their changes end them, with their results and events_of(changes) in order;
a group whose every run failed writes no result."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.event_payloads import SubmissionChange, events_of
from domain.submissions import SubmissionStatus
from persistence.tables import events, results, submissions
from persistence.unit_of_work import SqlUnitOfWork
from tests.event_changes import varied_changes
from tests.factories import make_model, make_user


async def _finished(db: AsyncEngine) -> list[SubmissionChange]:
    """varied_changes' finished ones, of a model and owner the database holds."""
    owner, model = await make_user(db), await make_model(db)
    return [
        replace(c, submission=replace(c.submission, model_id=model, batch_id=None))
        for c in varied_changes(owner)
        if c.submission.is_finished
    ]


async def _stored(
    db: AsyncEngine,
) -> tuple[dict[object, str], set[object], list[tuple[object, ...]]]:
    async with db.connect() as conn:
        statuses = dict(
            (await conn.execute(sa.select(submissions.c.id, submissions.c.status))).all()
        )
        written = set((await conn.execute(sa.select(results.c.id))).scalars())
        told = (
            await conn.execute(
                sa.select(events.c.type, events.c.subject_id, events.c.payload).order_by(
                    events.c.id
                )
            )
        ).all()
    return statuses, written, [tuple(row) for row in told]


@pytest.mark.parametrize("failed_only", [False, True])
async def test_finished_runs_are_stored_with_their_results_and_events(
    db: AsyncEngine, failed_only: bool
) -> None:
    changes = await _finished(db)
    if failed_only:
        changes = [c for c in changes if c.submission.status is SubmissionStatus.FAILED]
    calls: list[int] = []

    def meanwhile() -> str:
        calls.append(1)
        return "made"

    async with SqlUnitOfWork(db) as uow:
        made = await uow.submissions.add_finished(changes, meanwhile=meanwhile)
        await uow.commit()
    statuses, written, told = await _stored(db)

    assert calls == [1], "the caller's work is done once, beside the writes"
    assert made == "made"
    assert statuses == {c.submission.id: c.submission.status.value for c in changes}
    assert written == {c.result.id for c in changes if c.result is not None}
    assert bool(written) is not failed_only
    assert told == [(e.type.value, e.subject_id, e.payload) for e in events_of(changes)]
