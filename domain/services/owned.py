"""Use cases for reading what users own: assets, submissions, results; and the model catalogue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar
from uuid import UUID

from domain.assets import Asset, AssetStatus
from domain.history import EVERY_SUBMISSION, SubmissionFilter
from domain.models import Model, ModelDefinition
from domain.pagination import Page, PageRequest
from domain.ports import UnitOfWork
from domain.principal import Principal, visible_only
from domain.submissions import Result, Submission, SubmissionStatus

V = TypeVar("V")


async def get_visible_assets(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID], *, include_deleted: bool = False
) -> list[Asset | None]:
    """Assets by id; a DELETED asset is gone unless asked for (its last event, say)."""
    async with uow:
        found = visible_only(principal, await uow.assets.get_many(ids))
    if include_deleted:
        return found
    return [a if a is not None and a.status is not AssetStatus.DELETED else None for a in found]


async def get_visible_submissions(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[Submission | None]:
    async with uow:
        return visible_only(principal, await uow.submissions.get_many(ids))


async def get_visible_results(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[Result | None]:
    async with uow:
        return visible_only(principal, await uow.results.get_many(ids))


async def _per_visible_owner(
    principal: Principal,
    owner_ids: Sequence[UUID],
    load: Callable[[list[UUID]], Awaitable[list[V]]],
    default: V,
) -> list[V]:
    """Load for the owners the principal may read; the others get `default`."""
    visible = [i for i in owner_ids if principal.can_read_owned_by(i)]
    values = await load(visible) if visible else []
    by_owner = dict(zip(visible, values, strict=True))
    return [by_owner.get(i, default) for i in owner_ids]


async def list_assets_for_owners(
    uow: UnitOfWork,
    principal: Principal,
    owner_ids: Sequence[UUID],
    request: PageRequest,
    status: AssetStatus | None,
) -> list[Page[Asset]]:
    async with uow:
        return await _per_visible_owner(
            principal,
            owner_ids,
            lambda ids: uow.assets.list_for_owners(ids, request, status),
            Page.empty(),
        )


async def count_assets_for_owners(
    uow: UnitOfWork, principal: Principal, owner_ids: Sequence[UUID], status: AssetStatus | None
) -> list[int]:
    async with uow:
        return await _per_visible_owner(
            principal, owner_ids, lambda ids: uow.assets.count_for_owners(ids, status), 0
        )


async def list_submissions_for_owners(
    uow: UnitOfWork,
    principal: Principal,
    owner_ids: Sequence[UUID],
    request: PageRequest,
    status: SubmissionStatus | None,
    where: SubmissionFilter = EVERY_SUBMISSION,
) -> list[Page[Submission]]:
    async with uow:
        return await _per_visible_owner(
            principal,
            owner_ids,
            lambda ids: uow.submissions.list_for_owners(ids, request, status, where),
            Page.empty(),
        )


async def count_submissions_for_owners(
    uow: UnitOfWork,
    principal: Principal,
    owner_ids: Sequence[UUID],
    status: SubmissionStatus | None,
    where: SubmissionFilter = EVERY_SUBMISSION,
) -> list[int]:
    async with uow:
        return await _per_visible_owner(
            principal,
            owner_ids,
            lambda ids: uow.submissions.count_for_owners(ids, status, where),
            0,
        )


async def list_results_for_submissions(
    uow: UnitOfWork, principal: Principal, submission_ids: Sequence[UUID]
) -> list[list[Result]]:
    async with uow:
        lists = await uow.results.list_for_submissions(submission_ids)
    return [[r for r in results if principal.can_read_owned_by(r.owner_id)] for results in lists]


async def list_assets_for_submissions(
    uow: UnitOfWork, principal: Principal, submission_ids: Sequence[UUID]
) -> list[list[Asset]]:
    """Assets a submission uses stay readable through it, even when since deleted."""
    async with uow:
        lists = await uow.assets.list_for_submissions(submission_ids)
    return [[a for a in assets if principal.can_read_owned_by(a.owner_id)] for assets in lists]


async def get_models(uow: UnitOfWork, ids: Sequence[UUID]) -> list[Model | None]:
    async with uow:
        return await uow.models.get_many(ids)


async def list_active_models(uow: UnitOfWork) -> list[Model]:
    async with uow:
        return await uow.models.list_active()


async def register_models(uow: UnitOfWork, definitions: Sequence[ModelDefinition]) -> list[Model]:
    async with uow:
        registered = await uow.models.register(definitions)
        await uow.commit()
    return registered
