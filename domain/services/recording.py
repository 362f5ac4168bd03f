"""What the two record paths call to keep a model's rollup: one tally, one statement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from domain.models import Model, ModelFailure
from domain.monitoring import Observation, layout_of, tally
from domain.ports import UnitOfWork
from domain.submissions import Prediction, Submission


async def record_statistics(
    uow: UnitOfWork,
    model: Model | None,
    written: Sequence[tuple[Submission, Prediction | ModelFailure]],
    now: datetime,
) -> None:
    """Add what was just written to the model's rollup of this minute, inside the caller's
    transaction: one upsert, so statistics and work commit (or roll back) together."""
    if model is None or not written:
        return
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
    await uow.monitoring.add_tally(tally(model.id, layout_of(model), seen, now))
