"""What the two record paths call to keep a model's rollup: one tally, added by the work's
own statement where it can be (see statistics_of), else by one upsert of its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domain.models import Model, ModelFailure
from domain.monitoring import Observation, Tally, layout_of
from domain.ports import UnitOfWork
from domain.submissions import Prediction, Submission
from domain.tallies import tally

Written = Sequence[tuple[Submission, Prediction | ModelFailure]]


def statistics_of(model: Model | None, written: Written, now: datetime) -> Tally | None:
    """What `written` adds to the model's rollup of this minute; None when nothing does.
    Given to the statement that writes the work, so the two commit (or roll back) together."""
    if model is None or not written:
        return None
    seen = [
        Observation(
            submission.input,
            None if isinstance(outcome, ModelFailure) else outcome.prediction,
            isinstance(outcome, ModelFailure),
            0.0 if isinstance(outcome, ModelFailure) else float(outcome.processing_time_ms),
            (now - submission.created_at).total_seconds() * 1000,
        )
        for submission, outcome in written
    ]
    return tally(model.id, layout_of(model), seen, now)


async def record_statistics(
    uow: UnitOfWork, model: Model | None, written: Written, now: datetime
) -> None:
    """Add what was just written to the model's rollup of this minute, inside the caller's
    transaction: one upsert, so statistics and work commit (or roll back) together."""
    counted = statistics_of(model, written, now)
    if counted is not None:
        await uow.monitoring.add_tally(counted)
