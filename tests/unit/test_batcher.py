"""The dynamic batcher: grouping, no timer for a lone caller (who runs its group on its own
task), failures and cancellation per call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from domain.services.batcher import BatchPolicy, DynamicBatcher

CONTINUOUS = BatchPolicy(max_batch_size=32, max_delay_seconds=0.0, groups_in_flight=2)


class Handler:
    """Answers each item doubled; an item named in `failing` gets its own error. A group
    yields to the loop once, as Assay's group write does; while `gate` is cleared, groups wait
    for it (to queue calls behind a running group). `tasks`: the task each group ran on."""

    def __init__(self, failing: Sequence[int] = ()) -> None:
        self.groups: list[list[int]] = []
        self.tasks: list[asyncio.Task[object] | None] = []
        self.failing = set(failing)
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, context: str, items: list[int]) -> list[int | BaseException]:
        self.groups.append(items)
        self.tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        await self.gate.wait()
        return [ValueError(f"bad {i}") if i in self.failing else i * 2 for i in items]


async def settle(turns: int = 20) -> None:
    """Let the event loop run ready callbacks; no timer can fire within these turns."""
    for _ in range(turns):
        await asyncio.sleep(0)


def submit(
    batcher: DynamicBatcher[str, int, int], item: int, policy: BatchPolicy = CONTINUOUS
) -> asyncio.Task[int]:
    return asyncio.create_task(batcher.submit("model", "context", policy, item))


async def test_concurrent_calls_of_one_key_run_as_one_group_each_with_its_answer() -> None:
    handler = Handler()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)

    # The first finds the key idle and runs alone; the four arriving meanwhile are one group.
    answers = await asyncio.gather(*(batcher.submit("m", "c", CONTINUOUS, i) for i in range(5)))

    assert handler.groups == [[0], [1, 2, 3, 4]]
    assert answers == [0, 2, 4, 6, 8]


async def test_groups_hold_at_most_max_batch_size_items() -> None:
    handler = Handler()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    policy = BatchPolicy(max_batch_size=2, groups_in_flight=1)

    answers = await asyncio.gather(*(batcher.submit("m", "c", policy, i) for i in range(6)))

    assert handler.groups == [[0], [1, 2], [3, 4], [5]]
    assert answers == [0, 2, 4, 6, 8, 10]


async def test_different_keys_are_grouped_apart() -> None:
    handler = Handler()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)

    await asyncio.gather(*(batcher.submit(f"m{i % 2}", "c", CONTINUOUS, i) for i in range(8)))

    assert sorted(handler.groups) == [[0], [1], [2, 4, 6], [3, 5, 7]]


async def test_a_lone_caller_runs_its_group_on_its_own_task() -> None:
    handler = Handler()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)

    lone = submit(batcher, 21)
    assert await lone == 42

    assert handler.groups == [[21]]
    assert handler.tasks == [lone]  # no task of the batcher's: no loop round to the group


async def test_calls_queued_behind_a_lone_callers_group_run_once_it_ends() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    one = BatchPolicy(max_batch_size=32, groups_in_flight=1)

    lone = submit(batcher, 1, one)
    await settle()
    queued = [submit(batcher, i, one) for i in (2, 3)]
    await settle()
    assert handler.groups == [[1]]  # one group in flight: the others wait for it
    handler.gate.set()

    assert list(await asyncio.gather(lone, *queued)) == [2, 4, 6]
    assert handler.groups == [[1], [2, 3]]
    assert handler.tasks[1] not in (lone, *queued)  # a group task of the batcher's


async def test_a_lone_caller_cancelled_during_its_group_leaves_the_key_usable() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)

    lone = submit(batcher, 1)
    await settle()
    lone.cancel()
    await settle()
    handler.gate.set()

    with pytest.raises(asyncio.CancelledError):
        await lone
    assert await submit(batcher, 2) == 4
    assert handler.groups == [[1], [2]]


async def test_a_lone_caller_is_answered_without_waiting_for_a_timer() -> None:
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(Handler())

    lone = submit(batcher, 21)
    await settle()

    assert lone.done()
    assert lone.result() == 42


async def test_with_a_delay_a_group_waits_for_company_until_it_is_full() -> None:
    handler = Handler()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    waiting = BatchPolicy(max_batch_size=3, max_delay_seconds=3600.0, groups_in_flight=1)

    first = submit(batcher, 1, waiting)
    await settle()
    assert not first.done()  # waiting for company, up to the delay
    rest = [submit(batcher, i, waiting) for i in (2, 3)]
    await settle()

    assert [t.done() for t in (first, *rest)] == [True, True, True]
    assert handler.groups == [[1, 2, 3]]


async def test_a_calls_queued_while_a_group_runs_form_the_next_group() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    one = BatchPolicy(max_batch_size=32, groups_in_flight=1)

    first = submit(batcher, 1, one)
    await settle()
    later = [submit(batcher, i, one) for i in (2, 3, 4)]
    await settle()
    handler.gate.set()
    await asyncio.gather(first, *later)

    assert handler.groups == [[1], [2, 3, 4]]


async def test_one_failing_item_fails_only_its_own_caller() -> None:
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(Handler(failing=[2]))

    answers = await asyncio.gather(
        *(batcher.submit("m", "c", CONTINUOUS, i) for i in (1, 2, 3)), return_exceptions=True
    )

    assert answers[0] == 2
    assert isinstance(answers[1], ValueError)
    assert answers[2] == 6


async def test_a_group_that_fails_as_a_whole_fails_each_of_its_callers() -> None:
    async def broken(context: str, items: list[int]) -> list[int | BaseException]:
        raise ConnectionError("database gone")

    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(broken)

    answers = await asyncio.gather(
        *(batcher.submit("m", "c", CONTINUOUS, i) for i in (1, 2)), return_exceptions=True
    )

    assert [type(a) for a in answers] == [ConnectionError, ConnectionError]


async def test_a_caller_cancelled_while_queued_is_left_out_of_its_group() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    one = BatchPolicy(max_batch_size=32, groups_in_flight=1)

    first = submit(batcher, 1, one)
    await settle()
    gone, kept = submit(batcher, 2, one), submit(batcher, 3, one)
    await settle()
    gone.cancel()
    handler.gate.set()

    assert list(await asyncio.gather(first, kept)) == [2, 6]
    assert handler.groups == [[1], [3]]
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_a_caller_cancelled_after_its_group_started_does_not_break_the_group() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)

    # 1 runs alone; 2, 3 and 4 are one group behind it, and 3 gives up once it started.
    calls = [submit(batcher, i) for i in (1, 2, 3, 4)]
    await settle()
    calls[2].cancel()
    await settle()
    handler.gate.set()

    assert list(await asyncio.gather(calls[0], calls[1], calls[3])) == [2, 4, 8]
    assert handler.groups == [[1], [2, 3, 4]]  # the item was run (and, in Assay, recorded)
    assert calls[2].cancelled()


async def test_drain_waits_for_a_lone_callers_group() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    call = submit(batcher, 5)
    await settle()

    draining = asyncio.create_task(batcher.drain())
    await settle()
    assert not draining.done()
    handler.gate.set()
    await draining

    assert call.done()
    assert call.result() == 10


async def test_drain_waits_for_the_groups_queued_behind_a_running_one() -> None:
    handler = Handler()
    handler.gate.clear()
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(handler)
    first = submit(batcher, 5)
    await settle()
    queued = [submit(batcher, 6), submit(batcher, 7)]  # behind the lone caller's group
    await settle()

    draining = asyncio.create_task(batcher.drain())
    await settle()
    assert not draining.done()
    handler.gate.set()
    await draining

    assert [call.result() for call in (first, *queued)] == [10, 12, 14]
    assert handler.groups == [[5], [6, 7]]


async def test_time_in_the_queue_is_reported_per_call() -> None:
    waits: list[tuple[str, float]] = []
    # the lone first: queued, its group start; then two queued behind it, their group start
    ticks = iter([9.0, 9.25, 10.0, 10.5, 12.0])
    batcher: DynamicBatcher[str, int, int] = DynamicBatcher(
        Handler(), on_wait=lambda c, s: waits.append((c, s)), ticks=lambda: next(ticks)
    )

    await asyncio.gather(*(batcher.submit("m", "ctx", CONTINUOUS, i) for i in (0, 1, 2)))

    assert waits == [("ctx", 0.25), ("ctx", 2.0), ("ctx", 1.5)]


def test_an_unusable_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="batch policy"):
        BatchPolicy(max_batch_size=0)
