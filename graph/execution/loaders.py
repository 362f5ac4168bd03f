"""Per-request DataLoaders: one batched domain read per relation, whatever the parent count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

from aiodataloader import DataLoader

from domain.batches import Batch
from domain.pagination import Page, PageRequest
from domain.ports import BlobStore, UnitOfWork, UnitOfWorkFactory
from domain.principal import Principal
from domain.services import batches, webhooks
from domain.webhooks import WebhookDelivery
from graph.execution.specs import LoadFn, Run
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


async def _delivery_pages(
    uow: UnitOfWork, principal: Principal, endpoints: list[UUID], request: PageRequest
) -> list[Page[WebhookDelivery]]:
    return await webhooks.list_deliveries(uow, principal, endpoints, request)


async def _delivery_counts(
    uow: UnitOfWork, principal: Principal, endpoints: list[UUID], _: None
) -> list[int]:
    return await webhooks.count_deliveries(uow, principal, endpoints)


class LevelLoader(DataLoader[Hashable, Any]):
    """A level load (graph/execution/loads.py) as a DataLoader keyed by the parent's key.

    The reference path's relations go through the same level loads as the batched plan, so
    a relation names one load for both; each batch takes its own short unit of work."""

    def __init__(self, run: Callable[[], Run], load: LoadFn) -> None:
        super().__init__()
        self._run = run
        self._load = load
        self._name = getattr(load, "__name__", "level")[:64]

    async def batch_load_fn(self, keys: list[Hashable]) -> list[Any]:
        metrics.DATALOADER_BATCH_SIZE.labels(self._name).observe(len(keys))
        loaded = await self._load(self._run(), keys, None)
        return [loaded[key] for key in keys]


class PagedLoader(DataLoader[tuple[Hashable, Hashable], Any]):
    """A level load taking bound arguments, keyed by (parent key, arguments): one load
    per distinct arguments, values in key order."""

    def __init__(self, run: Callable[[], Run], load: LoadFn) -> None:
        super().__init__()
        self._run = run
        self._load = load
        self._name = getattr(load, "__name__", "paged")[:64]

    async def batch_load_fn(self, keys: list[tuple[Hashable, Hashable]]) -> list[Any]:
        metrics.DATALOADER_BATCH_SIZE.labels(self._name).observe(len(keys))
        parents: dict[Hashable, list[Hashable]] = defaultdict(list)
        for parent, arguments in keys:
            parents[arguments].append(parent)
        values: dict[tuple[Hashable, Hashable], Any] = {}
        for arguments, group in parents.items():
            loaded = await self._load(self._run(), group, arguments)
            values.update(((parent, arguments), loaded[parent]) for parent in group)
        return [values[key] for key in keys]


@dataclass(frozen=True, slots=True)
class Loaders:
    """One request's DataLoaders: one per level load it uses, and the few the batched plan
    has no level load for (batches, webhook deliveries)."""

    uow: UnitOfWorkFactory
    principal: Principal
    blobs: BlobStore
    download_url_ttl: int
    delivery_page_by_endpoint: BatchLoader[tuple[UUID, PageRequest], Page[WebhookDelivery]]
    delivery_count_by_endpoint: BatchLoader[tuple[UUID, None], int]
    batch_by_id: BatchLoader[UUID, Batch | None]
    _levels: dict[LoadFn, LevelLoader] = field(default_factory=dict)
    _paged: dict[LoadFn, PagedLoader] = field(default_factory=dict)

    @classmethod
    def create(
        cls, uow: UnitOfWorkFactory, principal: Principal, blobs: BlobStore, download_url_ttl: int
    ) -> Loaders:
        def loader(load: BatchFn[K, V]) -> BatchLoader[K, V]:
            return BatchLoader(uow, principal, load)

        return cls(
            uow=uow,
            principal=principal,
            blobs=blobs,
            download_url_ttl=download_url_ttl,
            delivery_page_by_endpoint=loader(grouped_by_arguments(_delivery_pages)),
            delivery_count_by_endpoint=loader(grouped_by_arguments(_delivery_counts)),
            batch_by_id=loader(batches.get_batches),
        )

    def level(self, load: LoadFn) -> LevelLoader:
        """The DataLoader of `load`, made on first use in this request."""
        loader = self._levels.get(load)
        if loader is None:
            loader = self._levels[load] = LevelLoader(self._run, load)
        return loader

    def paged(self, load: LoadFn) -> PagedLoader:
        loader = self._paged.get(load)
        if loader is None:
            loader = self._paged[load] = PagedLoader(self._run, load)
        return loader

    def _run(self) -> Run:
        """A batch's run: its own short unit of work."""
        return Run(self.principal, self.uow(), self.blobs, self.download_url_ttl)
