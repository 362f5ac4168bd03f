"""submitFeedback: a result's owner records the true label (or value) of its prediction."""

from __future__ import annotations

from uuid import UUID

from domain.errors import NotFound
from domain.models import JSONValue
from domain.monitoring import layout_of
from domain.ports import Clock, UnitOfWork
from domain.principal import Principal, require_owner
from domain.quality import feedback_for
from domain.submissions import Result


async def submit_feedback(
    uow: UnitOfWork, principal: Principal, result_id: UUID, label: JSONValue, *, clock: Clock
) -> Result:
    """NOT_FOUND for a result the caller cannot see; FORBIDDEN for an administrator on
    someone else's; BAD_USER_INPUT (input.label) for a label the model cannot have given.
    Submitting again replaces the earlier label."""
    async with uow:
        [result] = await uow.results.get_many([result_id])
        if result is None or not principal.can_read_owned_by(result.owner_id):
            raise NotFound("Result", result_id)
        require_owner(principal, result, "result")
        [submission] = await uow.submissions.get_many([result.submission_id])
        [model] = await uow.models.get_many([submission.model_id]) if submission else [None]
        if model is None:
            raise NotFound("Result", result_id)
        feedback = feedback_for(
            layout_of(model),
            result.prediction,
            label,
            result_id=result.id,
            model_id=model.id,
            result_created_at=result.created_at,
            now=clock(),
        )
        await uow.feedback.record(feedback)
        await uow.commit()
    return result


async def feedback_labels(uow: UnitOfWork, result_ids: list[UUID]) -> list[JSONValue | None]:
    """The labels recorded for results the caller may already see (the loader's batch)."""
    async with uow:
        return await uow.feedback.labels_for(result_ids)
