"""Dynamic batching: concurrent calls with one key run as one group, up to a size or a delay.

With no delay (the default) the batcher is continuous: a group takes whatever queued while
the previous group of its key ran, so a lone caller starts at once and waits on no timer. A
caller that finds its key idle (no group running, nobody queued) runs its group of one on its
own task: no task is made for it and no loop round passes between its arrival, its group and
its answer; callers arriving meanwhile form the next group as they would behind any group.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")  # what a group needs to run (the model)
I = TypeVar("I")  # noqa: E741 - one caller's item
A = TypeVar("A")  # one caller's answer


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_batch_size: int = 32
    # 0: never wait for company; a group takes what queued while the previous one ran.
    max_delay_seconds: float = 0.0
    # Groups of one key running at once: the next one predicts while the last one writes.
    groups_in_flight: int = 2

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.groups_in_flight < 1 or self.max_delay_seconds < 0:
            raise ValueError(f"unusable batch policy {self}")


# Runs one group: an answer or an exception for each item, in order.
GroupHandler = Callable[[C, list[I]], Awaitable[Sequence[A | BaseException]]]


@dataclass(eq=False)
class _Call(Generic[I, A]):
    item: I
    queued_at: float
    answer: asyncio.Future[A]


@dataclass(eq=False)
class _Lane(Generic[C, I, A]):
    context: C
    policy: BatchPolicy
    calls: deque[_Call[I, A]] = field(default_factory=deque)
    running: int = 0
    full: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self) -> list[_Call[I, A]]:
        """Up to a group of the calls still waiting; callers that gave up are left out."""
        group: list[_Call[I, A]] = []
        while self.calls and len(group) < self.policy.max_batch_size:
            call = self.calls.popleft()
            if not call.answer.done():
                group.append(call)
        if len(self.calls) < self.policy.max_batch_size:
            self.full.clear()
        return group


class DynamicBatcher(Generic[C, I, A]):
    """Groups concurrent `submit` calls per key and runs each group through `handle`."""

    def __init__(
        self,
        handle: GroupHandler[C, I, A],
        *,
        on_wait: Callable[[C, float], None] | None = None,
        ticks: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._handle = handle
        self._on_wait = on_wait
        self._ticks = ticks
        self._lanes: dict[Hashable, _Lane[C, I, A]] = {}
        self._groups: set[asyncio.Task[None]] = set()
        self._alone = 0  # lone callers running their group on their own task
        self._none_alone = asyncio.Event()
        self._none_alone.set()

    async def submit(self, key: Hashable, context: C, policy: BatchPolicy, item: I) -> A:
        """The item's answer once its group ran. Cancelling a caller still queued takes its
        item out; one whose group already started is left to finish (its answer unread),
        except a lone caller's own group of one, which stops with it (its one statement
        commits whole or not at all, and nobody else waits on it)."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(context, policy)
        lane.context, lane.policy = context, policy
        call: _Call[I, A] = _Call(item, self._ticks(), asyncio.get_running_loop().create_future())
        if not lane.running and not lane.calls and policy.max_delay_seconds <= 0:
            return await self._run_alone(key, lane, call)
        lane.calls.append(call)
        if len(lane.calls) >= policy.max_batch_size:
            lane.full.set()
        if lane.running < policy.groups_in_flight:
            self._start_group(key, lane)
        return await call.answer

    async def drain(self) -> None:
        """Wait for every group started (at shutdown: answers already owed are written)."""
        while self._groups or self._alone:
            if self._groups:
                await asyncio.gather(*self._groups, return_exceptions=True)
            else:
                await self._none_alone.wait()

    def _start_group(self, key: Hashable, lane: _Lane[C, I, A]) -> None:
        lane.running += 1
        task = asyncio.create_task(self._drain(key, lane))
        self._groups.add(task)
        task.add_done_callback(self._groups.discard)

    async def _run_alone(self, key: Hashable, lane: _Lane[C, I, A], call: _Call[I, A]) -> A:
        lane.running += 1
        self._alone += 1
        self._none_alone.clear()
        try:
            await self._run(lane.context, [call])
        finally:
            lane.running -= 1
            self._alone -= 1
            if not self._alone:
                self._none_alone.set()
            if lane.calls and lane.running < lane.policy.groups_in_flight:
                self._start_group(key, lane)  # those who came meanwhile, with no group to run them
            elif not lane.running and not lane.calls and self._lanes.get(key) is lane:
                del self._lanes[key]
        return call.answer.result()

    async def _drain(self, key: Hashable, lane: _Lane[C, I, A]) -> None:
        try:
            while True:
                await self._gather(lane)
                group = lane.take()
                if not group:
                    return
                await self._run(lane.context, group)
        finally:
            lane.running -= 1
            if not lane.running and not lane.calls and self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _gather(self, lane: _Lane[C, I, A]) -> None:
        """With a delay configured, wait for company until the oldest call has waited it."""
        delay = lane.policy.max_delay_seconds
        if delay <= 0 or not lane.calls or lane.full.is_set():
            return
        remaining = lane.calls[0].queued_at + delay - self._ticks()
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.full.wait(), remaining)

    async def _run(self, context: C, group: list[_Call[I, A]]) -> None:
        started = self._ticks()
        if self._on_wait is not None:
            for call in group:
                self._on_wait(context, started - call.queued_at)
        try:
            answers = await self._handle(context, [call.item for call in group])
        except Exception as error:  # the whole group failed (the database): each caller hears
            answers = [error] * len(group)
        except asyncio.CancelledError:
            for call in group:
                call.answer.cancel()
            raise
        for call, answer in zip(group, answers, strict=True):
            if call.answer.done():
                continue  # the caller gave up after its group started
            if isinstance(answer, BaseException):
                call.answer.set_exception(answer)
            else:
                call.answer.set_result(answer)
