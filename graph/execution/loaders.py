"""Per-request DataLoaders: one batched domain read per relation, whatever the parent count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from uuid import UUID

from aiodataloader import DataLoader

from domain.assets import Asset, AssetStatus
from domain.batches import Batch
from domain.history import SubmissionFilter
from domain.models import Model
from domain.pagination import Page, PageRequest
from domain.ports import UnitOfWork, UnitOfWorkFactory
from domain.principal import Principal
from domain.services import batches, owned, webhooks
from domain.services.users import get_visible_users
from domain.submissions import Result, Submission, SubmissionStatus
from domain.users import User
from domain.webhooks import WebhookDelivery
from telemetry import metrics

K = TypeVar("K")
V = TypeVar("V")
A = TypeVar("A", bound=Hashable)

BatchFn = Callable[[UnitOfWork, Principal, list[K]], Awaitable[list[V]]]


class BatchLoader(DataLoader[K, V], Generic[K, V]):
    """A DataLoader bound to one request; each batch takes its own short unit of work."""

    def __init__(self, uow: UnitOfWorkFactory, principal: Principal, load: BatchFn[K, V]) -> None:
        super().__init__()
        self._uow = uow
        self._principal = principal
        self._load = load
        self._name = getattr(load, "__name__", "batch")[:64]

    async def batch_load_fn(self, keys: list[K]) -> list[V]:
        metrics.DATALOADER_BATCH_SIZE.labels(self._name).observe(len(keys))
        return await self._load(self._uow(), self._principal, keys)


def grouped_by_arguments(
    load: Callable[[UnitOfWork, Principal, list[UUID], A], Awaitable[list[V]]],
) -> BatchFn[tuple[UUID, A], V]:
    """Keys are (parent id, arguments): one load per distinct arguments, values in key order."""

    async def batch(uow: UnitOfWork, principal: Principal, keys: list[tuple[UUID, A]]) -> list[V]:
        positions: dict[A, list[int]] = defaultdict(list)
        for position, (_, arguments) in enumerate(keys):
            positions[arguments].append(position)
        values: dict[int, V] = {}
        for arguments, where in positions.items():
            loaded = await load(uow, principal, [keys[p][0] for p in where], arguments)
            values.update(zip(where, loaded, strict=True))
        return [values[p] for p in range(len(keys))]

    batch.__name__ = load.__name__  # the loader's label in /metrics
    return batch


AssetPageKey = tuple[UUID, tuple[PageRequest, AssetStatus | None]]
SubmissionArguments = tuple[PageRequest, SubmissionStatus | None, SubmissionFilter]
SubmissionPageKey = tuple[UUID, SubmissionArguments]
SubmissionCountKey = tuple[UUID, tuple[SubmissionStatus | None, SubmissionFilter]]


async def _asset_pages(
    uow: UnitOfWork,
    principal: Principal,
    owners: list[UUID],
    args: tuple[PageRequest, AssetStatus | None],
) -> list[Page[Asset]]:
    return await owned.list_assets_for_owners(uow, principal, owners, *args)


async def _asset_counts(
    uow: UnitOfWork, principal: Principal, owners: list[UUID], status: AssetStatus | None
) -> list[int]:
    return await owned.count_assets_for_owners(uow, principal, owners, status)


async def _submission_pages(
    uow: UnitOfWork,
    principal: Principal,
    owners: list[UUID],
    args: SubmissionArguments,
) -> list[Page[Submission]]:
    return await owned.list_submissions_for_owners(uow, principal, owners, *args)


async def _submission_counts(
    uow: UnitOfWork,
    principal: Principal,
    owners: list[UUID],
    args: tuple[SubmissionStatus | None, SubmissionFilter],
) -> list[int]:
    return await owned.count_submissions_for_owners(uow, principal, owners, *args)


async def _delivery_pages(
    uow: UnitOfWork, principal: Principal, endpoints: list[UUID], request: PageRequest
) -> list[Page[WebhookDelivery]]:
    return await webhooks.list_deliveries(uow, principal, endpoints, request)


async def _delivery_counts(
    uow: UnitOfWork, principal: Principal, endpoints: list[UUID], _: None
) -> list[int]:
    return await webhooks.count_deliveries(uow, principal, endpoints)


async def _models(uow: UnitOfWork, _: Principal, ids: Sequence[UUID]) -> list[Model | None]:
    return await owned.get_models(uow, ids)


@dataclass(frozen=True, slots=True)
class Loaders:
    user_by_id: BatchLoader[UUID, User | None]
    asset_by_id: BatchLoader[UUID, Asset | None]
    model_by_id: BatchLoader[UUID, Model | None]
    submission_by_id: BatchLoader[UUID, Submission | None]
    result_by_id: BatchLoader[UUID, Result | None]
    asset_page_by_owner: BatchLoader[AssetPageKey, Page[Asset]]
    asset_count_by_owner: BatchLoader[tuple[UUID, AssetStatus | None], int]
    submission_page_by_owner: BatchLoader[SubmissionPageKey, Page[Submission]]
    submission_count_by_owner: BatchLoader[SubmissionCountKey, int]
    results_by_submission: BatchLoader[UUID, list[Result]]
    assets_by_submission: BatchLoader[UUID, list[Asset]]
    delivery_page_by_endpoint: BatchLoader[tuple[UUID, PageRequest], Page[WebhookDelivery]]
    delivery_count_by_endpoint: BatchLoader[tuple[UUID, None], int]
    batch_by_id: BatchLoader[UUID, Batch | None]

    @classmethod
    def create(cls, uow: UnitOfWorkFactory, principal: Principal) -> Loaders:
        def loader(load: BatchFn[K, V]) -> BatchLoader[K, V]:
            return BatchLoader(uow, principal, load)

        return cls(
            user_by_id=loader(get_visible_users),
            asset_by_id=loader(owned.get_visible_assets),
            model_by_id=loader(_models),
            submission_by_id=loader(owned.get_visible_submissions),
            result_by_id=loader(owned.get_visible_results),
            asset_page_by_owner=loader(grouped_by_arguments(_asset_pages)),
            asset_count_by_owner=loader(grouped_by_arguments(_asset_counts)),
            submission_page_by_owner=loader(grouped_by_arguments(_submission_pages)),
            submission_count_by_owner=loader(grouped_by_arguments(_submission_counts)),
            results_by_submission=loader(owned.list_results_for_submissions),
            assets_by_submission=loader(owned.list_assets_for_submissions),
            delivery_page_by_endpoint=loader(grouped_by_arguments(_delivery_pages)),
            delivery_count_by_endpoint=loader(grouped_by_arguments(_delivery_counts)),
            batch_by_id=loader(batches.get_batches),
        )
