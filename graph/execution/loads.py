"""The level loads: the domain calls behind relations, once per level of a response.

Each function takes the distinct keys of a level and returns a value per key, through the
domain services (and so their access rules). Fields name them in their declarations; the
batched plan calls them per level, the reference path's DataLoaders per batch
(graph/execution/loaders.py). A root answer the reference would give as an error (an id the
caller cannot see) raises Fallback, so the reference path answers it with the error in its
proper place.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import projections as p
from domain.assets import Asset, AssetStatus
from domain.errors import InvalidInput
from domain.history import EVERY_SUBMISSION, SubmissionFilter, SubmissionOrder
from domain.orders import AssetOrder, UserOrder
from domain.pagination import PageRequest
from domain.services import feedback, owned, users
from domain.submissions import SubmissionStatus
from domain.users import UserFilter
from graph.execution.specs import ROOT, Arguments, Fallback, Loaded, LoadFn, Run
from graph.ids import from_global_id, page_request, required_id

PageArguments = tuple[PageRequest, Any]
SubmissionArguments = tuple[PageRequest, SubmissionStatus | None, SubmissionFilter]
UserPageArguments = tuple[PageRequest, UserFilter]


def _by_key(keys: Sequence[Hashable], values: Sequence[Any]) -> Loaded:
    return dict(zip(keys, values, strict=True))


def _the_one(value: Any) -> Loaded:
    if value is None:
        raise Fallback("not_found")
    return {ROOT: value}


# ------------------------------------------------------------------ arguments


def paging(arguments: Arguments, kind: str, descending: bool) -> PageRequest:
    """The page a connection's first/after/last/before ask for, in a list of `kind`."""
    return page_request(
        arguments.get("first"),
        arguments.get("after"),
        arguments.get("last"),
        arguments.get("before"),
        kind=kind,
        descending=descending,
    )


def asset_page_arguments(arguments: Arguments) -> PageArguments:
    status = arguments.get("status")
    order = AssetOrder(arguments.get("orderBy") or AssetOrder.CREATED_AT_DESC)
    request = paging(arguments, "Asset", order.is_descending)
    return request, None if status is None else AssetStatus(status)


def submission_page_arguments(arguments: Arguments) -> SubmissionArguments:
    status = arguments.get("status")
    order = SubmissionOrder(arguments.get("orderBy") or SubmissionOrder.CREATED_AT_DESC)
    request = paging(arguments, "Submission", order.is_descending)
    given = arguments.get("filter") or {}
    pair = given.get("metadata")
    where = filter_value(
        given.get("modelId"),
        _moment(given.get("createdAfter")),
        _moment(given.get("createdBefore")),
        None if pair is None else (pair["key"], pair["value"]),
    )
    return request, None if status is None else SubmissionStatus(status), where


def model_id_of(global_id: str | None, path: str = "filter.modelId") -> UUID | None:
    if global_id is None:
        return None
    type_name, ident = from_global_id(global_id, path)
    if type_name != "Model":
        raise InvalidInput({path: f"{global_id!r} is not a Model id"})
    return ident


def filter_value(
    model_id: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    metadata: tuple[str, str] | None = None,
) -> SubmissionFilter:
    """The domain's filter from the input's fields (the compiled path has them as a dict)."""
    if model_id is None and created_after is None and created_before is None and metadata is None:
        return EVERY_SUBMISSION
    return SubmissionFilter.checked(
        model_id_of(model_id), created_after, created_before, metadata=metadata
    )


def _moment(value: object) -> datetime | None:
    """A DateTime argument, already parsed by the schema's scalar when arguments are bound."""
    if value is None or isinstance(value, datetime):
        return value
    raise Fallback("unparsed_datetime")


def user_page_arguments(arguments: Arguments) -> UserPageArguments:
    given = arguments.get("filter") or {}
    user_filter = UserFilter(
        email_contains=given.get("emailContains"), is_active=given.get("isActive")
    )
    order = UserOrder(arguments.get("orderBy") or UserOrder.CREATED_AT_ASC)
    return paging(arguments, "User", order.is_descending), user_filter


# The same arguments as the store's one-statement projection reads them (filters by attribute).


def submission_window(arguments: Arguments) -> p.PageArguments:
    request, status, where = submission_page_arguments(arguments)
    filters = (
        ("status", None if status is None else status.value),
        ("model_id", where.model_id),
        ("created_after", where.created_after),
        ("created_before", where.created_before),
        ("metadata", where.metadata),
    )
    return p.PageArguments(request, filters)


def asset_window(arguments: Arguments) -> p.PageArguments:
    request, status = asset_page_arguments(arguments)
    return p.PageArguments(request, (("status", None if status is None else status.value),))


def user_window(arguments: Arguments) -> p.PageArguments:
    request, found = user_page_arguments(arguments)
    filters = (("email_contains", found.email_contains), ("is_active", found.is_active))
    return p.PageArguments(request, filters)


def id_of(type_name: str) -> Any:
    def bind(arguments: Arguments) -> UUID:
        return required_id(arguments["id"], type_name)

    return bind


# ----------------------------------------------------------- by id, per level


async def users_by_id(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await users.get_visible_users(run.uow, run.principal, ids))


async def models_by_id(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await owned.get_models(run.uow, ids))


async def assets_by_id(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await owned.get_visible_assets(run.uow, run.principal, ids))


async def results_by_id(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await owned.get_visible_results(run.uow, run.principal, ids))


async def feedback_of_results(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    """The labels of results the caller already sees (the parent resolved them)."""
    return _by_key(ids, await feedback.feedback_labels(run.uow, list(ids)))


async def submissions_by_id(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await owned.get_visible_submissions(run.uow, run.principal, ids))


async def results_of_submissions(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await owned.list_results_for_submissions(run.uow, run.principal, ids))


async def latest_results_of_submissions(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    lists = await owned.list_results_for_submissions(run.uow, run.principal, ids)
    return _by_key(ids, [results[-1] if results else None for results in lists])


async def assets_of_submissions(run: Run, ids: Sequence[UUID], _: None) -> Loaded:
    return _by_key(ids, await owned.list_assets_for_submissions(run.uow, run.principal, ids))


async def download_urls(run: Run, assets: Sequence[Asset], _: None) -> Loaded:
    urls: dict[Hashable, str | None] = {}
    for asset in assets:
        urls[asset] = (
            await run.blobs.presign_download(
                asset.object_key, expires_in=run.download_url_ttl, file_name=asset.file_name
            )
            if asset.status is AssetStatus.AVAILABLE
            else None
        )
    return urls


# ------------------------------------------------------------- pages, per level


async def asset_pages(run: Run, owners: Sequence[UUID], arguments: PageArguments) -> Loaded:
    pages = await owned.list_assets_for_owners(run.uow, run.principal, owners, *arguments)
    return _by_key(owners, pages)


async def asset_counts(run: Run, owners: Sequence[UUID], arguments: PageArguments) -> Loaded:
    counts = await owned.count_assets_for_owners(run.uow, run.principal, owners, arguments[1])
    return _by_key(owners, counts)


async def submission_pages(
    run: Run, owners: Sequence[UUID], arguments: SubmissionArguments
) -> Loaded:
    pages = await owned.list_submissions_for_owners(run.uow, run.principal, owners, *arguments)
    return _by_key(owners, pages)


async def submission_counts(
    run: Run, owners: Sequence[UUID], arguments: SubmissionArguments
) -> Loaded:
    _, status, where = arguments
    counts = await owned.count_submissions_for_owners(run.uow, run.principal, owners, status, where)
    return _by_key(owners, counts)


# ------------------------------------------------------------- the Query root


async def viewer(run: Run, _: Sequence[str], __: None) -> Loaded:
    [user] = await users.get_visible_users(run.uow, run.principal, [run.principal.user_id])
    return _the_one(user)


def by_argument_id(load: LoadFn) -> LoadFn:
    """A root field by id (`submission(id:)`), through the level load of its type."""

    async def one(run: Run, _: Sequence[str], ident: UUID) -> Loaded:
        return _the_one((await load(run, [ident], None))[ident])

    return one


async def active_models(run: Run, _: Sequence[str], __: None) -> Loaded:
    return {ROOT: await owned.list_active_models(run.uow)}


async def user_page(run: Run, _: Sequence[str], arguments: UserPageArguments) -> Loaded:
    return {ROOT: await users.list_users(run.uow, run.principal, *arguments)}


async def user_count(run: Run, _: Sequence[str], arguments: UserPageArguments) -> Loaded:
    return {ROOT: await users.count_users(run.uow, run.principal, arguments[1])}


def for_the_viewer(load: LoadFn, name: str) -> LoadFn:
    """A root list of the viewer's own (`submissions`), through the per-owner level load."""

    async def viewers(run: Run, _: Sequence[str], arguments: PageArguments) -> Loaded:
        owner = run.principal.user_id
        return {ROOT: (await load(run, [owner], arguments))[owner]}

    viewers.__name__ = name  # how plans and their tests name the load
    return viewers
