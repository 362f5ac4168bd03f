"""Background workers: the inference queue consumer and the stale-upload sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from domain.errors import DomainError
from domain.ports import BlobStore, Clock, ModelRuntime, UnitOfWorkFactory
from domain.services import (
    accounts,
    assets,
    callbacks,
    inference,
    model_alerts,
    serving,
    webhooks,
)
from domain.services.inference import Outcome, WorkerPolicy
from domain.services.model_alerts import AlertSettings
from domain.services.model_health import model_health
from domain.submissions import Submission
from telemetry import metrics

logger = logging.getLogger(__name__)
# Before each try to give back a claim whose processing failed: the database may be the one
# failing, for a moment.
GIVE_BACK_PAUSES = (0.0, 0.5, 2.0)


# Work claimed at accept: the claim, when, and its run if the accept began one.
Handed = tuple[Sequence[Submission], datetime, Awaitable[Sequence[Outcome]] | None]


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class WorkBell:
    """Wakes this process's claim loops: rung after a commit here that made work due, and
    by the work listener when another process NOTIFYs. Each loop has its own event, so a
    ring reaches every loop whichever clears first.

    It is also where work claimed at accept (domain.ports.LocalWorkers) is handed to the
    loops: a batch accepted here while a loop idles is stored already claimed by this
    process and put in the inbox, which every loop empties before it claims. Only idle
    loops are offered work, so a busy process leaves new batches to the fair queue."""

    def __init__(self) -> None:
        self._events: list[asyncio.Event] = []
        self._runtimes: frozenset[str] = frozenset()
        self._lease: timedelta | None = None
        self._idle = 0
        self._reserved = 0
        self._inbox: deque[Handed] = deque()
        self._settled = asyncio.Event()  # set while no loop is held for an accept in flight
        self._settled.set()

    def subscribe(self) -> asyncio.Event:
        event = asyncio.Event()
        self._events.append(event)
        return event

    def ring(self) -> None:
        for event in self._events:
            event.set()

    def serve(self, runtimes: Iterable[str], lease: timedelta | None) -> None:
        """Offer claims at accept for these runtimes under `lease` (None: stop offering)."""
        self._runtimes = frozenset(runtimes)
        self._lease = lease

    @contextlib.contextmanager
    def idling(self) -> Iterator[None]:
        """A loop waiting for work: while inside, it counts as one that can be held."""
        self._idle += 1
        try:
            yield
        finally:
            self._idle -= 1

    def reserve(self, runtime: str) -> timedelta | None:
        lease = self._lease
        if lease is None or runtime not in self._runtimes:
            return None
        if self._idle - self._reserved - len(self._inbox) <= 0:
            return None
        self._reserved += 1
        self._settled.clear()
        return lease

    def hand(
        self,
        claimed: Sequence[Submission],
        started: datetime,
        running: Awaitable[Sequence[Outcome]] | None = None,
    ) -> None:
        self._inbox.append((claimed, started, running))
        self._unhold()
        self.ring()

    def release(self) -> None:
        self._unhold()

    def _unhold(self) -> None:
        self._reserved -= 1
        if self._reserved == 0:
            self._settled.set()

    async def settled(self) -> None:
        """Until every accept that held a loop has handed its work over or let the loop go
        (after serve((), None) no new one can start)."""
        await self._settled.wait()

    def take(self) -> Handed | None:
        """The oldest work handed over and not yet taken by a loop, or None."""
        return self._inbox.popleft() if self._inbox else None


@dataclass
class SubmissionWorker:
    """Claims due submissions with SKIP LOCKED, runs them, records the outcome; N loops.

    A loop sleeps only when a claim found nothing, until the bell rings (work was committed)
    or `poll_seconds` pass: the poll is the fallback for a lost wake-up."""

    uow: UnitOfWorkFactory
    runtimes: Mapping[str, ModelRuntime]
    policy: WorkerPolicy
    clock: Clock
    poll_seconds: float = 0.2
    concurrency: int = 2
    bell: WorkBell = field(default_factory=WorkBell)
    processed: int = field(default=0, init=False)
    # One claim at a time in this process: loops woken together would otherwise split a
    # batch between them and run both halves at once, each as slow as the whole on a busy
    # machine, which the model's measured timings would take for the model's speed.
    _claiming: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def run(self, stop: asyncio.Event) -> None:
        wakes = [self.bell.subscribe() for _ in range(self.concurrency)]
        stopping = asyncio.create_task(self._ring_on(stop))
        self.bell.serve(self.runtimes, timedelta(seconds=self.policy.lease_seconds))
        try:
            await asyncio.gather(*(self._loop(stop, wake) for wake in wakes))
        finally:
            self.bell.serve((), None)
            stopping.cancel()
            try:
                # An accept still committing rows claimed for a loop hands them over soon.
                await self.bell.settled()
            finally:
                await self._give_back_handed()

    async def _give_back_handed(self) -> None:
        """Claimed at accept but never begun: PENDING again at once, not after the lease."""
        while (handed := self.bell.take()) is not None:
            try:
                await asyncio.shield(inference.release(self.uow(), handed[0], clock=self.clock))
            except Exception:
                logger.exception("giving back %d submissions failed", len(handed[0]))

    async def _ring_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.bell.ring()

    async def _loop(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        while not stop.is_set():
            wake.clear()  # before the claim: work committed from now on rings again
            handed = self.bell.take()
            if handed is not None:
                await self._process(*handed)
                continue
            try:
                async with self._claiming:
                    started = self.clock()
                    claimed = await inference.claim(self.uow(), self.policy, clock=self.clock)
            except Exception:
                logger.exception("claiming submissions failed; retrying")
                await _sleep_or_stop(stop, self.poll_seconds * 5)
                continue
            if not claimed:
                with self.bell.idling(), contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.poll_seconds)
                continue
            await self._process(claimed, started)

    async def _process(
        self,
        claimed: Sequence[Submission],
        started: datetime,
        running: Awaitable[Sequence[Outcome]] | None = None,
    ) -> None:
        try:
            await inference.process(
                self.uow,
                self.runtimes,
                claimed,
                self.policy,
                clock=self.clock,
                started=started,
                running=running,
            )
            self.processed += len(claimed)
        except asyncio.CancelledError:
            # Hand back what was not finished; the fence leaves finished rows alone.
            await asyncio.shield(inference.release(self.uow(), claimed, clock=self.clock))
            raise
        except Exception:
            logger.exception("processing %d submissions failed", len(claimed))
            await self._give_back(claimed, "the server failed to record the outcome")

    async def _give_back(self, claimed: Sequence[Submission], reason: str) -> None:
        """Due again at once (or FAILED once its attempts are spent) instead of held until the
        lease ends; tried a few times, as the failure may be the database's. If it never
        gets through, the lease is still the fallback."""
        for pause in GIVE_BACK_PAUSES:
            await asyncio.sleep(pause)
            try:
                await asyncio.shield(
                    inference.give_back_failed(
                        self.uow(), claimed, self.policy, reason, clock=self.clock
                    )
                )
                return
            except Exception:
                logger.warning("giving back %d failed submissions failed", len(claimed))
        logger.error("%d submissions wait for their lease to end", len(claimed))


@dataclass
class Periodic:
    """Runs `job` every `interval` seconds until stopped, logging failures."""

    name: str
    job: Callable[[], Awaitable[object]]
    interval: float

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.job()
            except Exception:
                logger.exception("periodic job %s failed", self.name)
            await _sleep_or_stop(stop, self.interval)


def upload_sweeper(uow: UnitOfWorkFactory, blobs: BlobStore, clock: Clock) -> Periodic:
    async def sweep() -> int:
        return await assets.sweep_stale_uploads(uow(), blobs, clock=clock)

    return Periodic("stale-upload-sweeper", sweep, interval=60.0)


def blob_deleter(
    uow: UnitOfWorkFactory, blobs: BlobStore, clock: Clock, interval: float = 10.0
) -> Periodic:
    """Removes queued bytes (erased accounts, retired assets) well within a minute."""

    async def delete() -> int:
        return await accounts.delete_queued_blobs(uow(), blobs, clock=clock)

    return Periodic("blob-deleter", delete, interval=interval)


def asset_retention(uow: UnitOfWorkFactory, days: int, clock: Clock) -> Periodic:
    async def retire() -> int:
        return await accounts.retire_old_assets(uow(), days, clock=clock)

    return Periodic("asset-retention", retire, interval=300.0)


def metrics_sampler(uow: UnitOfWorkFactory, clock: Clock, interval: float = 10.0) -> Periodic:
    """Samples queue gauges that only the database knows, for /metrics and the alarms."""

    async def sample() -> None:
        stats = await inference.queue_stats(uow(), clock=clock)
        metrics.record_queue(stats.pending, stats.running, stats.oldest_pending_age_seconds)
        deliveries = await webhooks.delivery_counts(uow())
        metrics.record_webhook_deliveries({str(k): v for k, v in deliveries.items()})
        sent = await callbacks.delivery_counts(uow())
        metrics.record_callback_deliveries({str(k): v for k, v in sent.items()})

    return Periodic("metrics-sampler", sample, interval=interval)


@dataclass
class ModelLoader:
    """Once, at start: the active models whose runtime can load ahead are loaded
    (serving.load_ahead), so that no caller's first prediction waits for an artifact. The
    process serves meanwhile; a prediction that comes first loads its model itself, as
    without this. A database not reachable yet leaves every model to its first prediction."""

    uow: UnitOfWorkFactory
    runtimes: Mapping[str, ModelRuntime]

    async def run(self, stop: asyncio.Event) -> None:
        try:
            loaded = await serving.load_ahead(self.uow(), self.runtimes, stop)
        except DomainError as error:  # UNAVAILABLE: the first predictions load them
            logger.warning("models not loaded ahead: %s", error)
            return
        for model in loaded:
            logger.info("model %s %s loaded", model.name, model.version)


class Runnable(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class BackgroundTasks:
    """Runs loops on the event loop; stops them gracefully, cancelling after a grace period.
    A loop that fails while the process serves is logged and started again after
    `restart_seconds`: each loop handles its own failures, and this is the net under a
    failure one of them did not foresee (a loop that ended would stop its work for good)."""

    def __init__(
        self, runnables: Sequence[Runnable], grace: float = 20.0, restart_seconds: float = 1.0
    ) -> None:
        self._runnables = runnables
        self._grace = grace
        self._restart_seconds = restart_seconds
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._supervised(r)) for r in self._runnables]

    async def _supervised(self, runnable: Runnable) -> None:
        while True:
            try:
                await runnable.run(self._stop)
                return
            except Exception:
                if self._stop.is_set():
                    raise
                logger.exception("background loop %r failed; starting it again", runnable)
            await _sleep_or_stop(self._stop, self._restart_seconds)
            if self._stop.is_set():
                return

    async def stop(self) -> None:
        self._stop.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self._grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def model_monitor(
    uow: UnitOfWorkFactory, settings: AlertSettings, clock: Clock, interval: float = 60.0
) -> Periodic:
    """Every minute: check the alert policies, sample each model's health for /metrics,
    keep references, prune past retention."""

    async def watch() -> int:
        await model_alerts.check_alerts(uow(), uow(), settings, clock=clock)
        for health in await model_health(uow, settings.monitoring, clock=clock):
            metrics.record_model_health(
                health.name,
                health.version,
                predictions_per_second=health.predictions_per_second,
                error_rate=health.error_rate,
                p95_seconds={
                    "model": health.model_p95_seconds,
                    "end_to_end": health.end_to_end_p95_seconds,
                },
                drift_level=health.drift_level,
                worst_psi=health.worst_psi,
                accuracy=health.accuracy,
            )
        return await model_alerts.maintain(uow(), settings.monitoring, clock=clock)

    return Periodic("model-monitor", watch, interval=interval)
