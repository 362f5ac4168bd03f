"""Waiting for a submission another process runs: woken by its events, a re-read as fallback."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from uuid import UUID

from domain.errors import NotFound
from domain.events import Event, EventType
from domain.ports import UnitOfWorkFactory
from domain.principal import Principal, visible_only
from domain.submissions import Result, Submission

# Events after which a submission is finished.
_FINISHING = frozenset(
    {
        EventType.SUBMISSION_SUCCEEDED,
        EventType.SUBMISSION_FAILED,
        EventType.SUBMISSION_UPDATED,  # CANCELLED comes as an update
    }
)


class SubmissionWatch:
    """Wakes the requests of this process that wait for submissions, fed by the event bus.

    A wake-up says "read it again"; the waiter re-reads on its own every `fallback_seconds`
    too, so a notification lost or missed never leaves it waiting until the timeout.
    """

    def __init__(self, fallback_seconds: float = 1.0) -> None:
        self.fallback_seconds = fallback_seconds
        self._waiting: defaultdict[UUID, set[asyncio.Event]] = defaultdict(set)

    def notify(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.type in _FINISHING:
                for woken in self._waiting.get(event.subject_id, ()):
                    woken.set()

    @contextlib.contextmanager
    def watching(self, submission_id: UUID) -> Iterator[asyncio.Event]:
        woken = asyncio.Event()
        self._waiting[submission_id].add(woken)
        try:
            yield woken
        finally:
            self._waiting[submission_id].discard(woken)
            if not self._waiting[submission_id]:
                del self._waiting[submission_id]


async def wait_until_finished(
    reads: UnitOfWorkFactory,
    watch: SubmissionWatch,
    principal: Principal,
    submission_id: UUID,
    timeout_seconds: float,
) -> tuple[Submission, Result | None]:
    """The submission once finished, or as it is when the timeout passes, with its result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    with watch.watching(submission_id) as woken:
        while True:
            woken.clear()  # before reading: an event after this read wakes the wait below
            async with reads() as reader:
                [submission] = visible_only(
                    principal, await reader.submissions.get_many([submission_id])
                )
                if submission is None:
                    raise NotFound("Submission", submission_id)
                left = deadline - loop.time()
                if submission.is_finished or left <= 0:
                    [results] = await reader.results.list_for_submissions([submission_id])
                    return submission, (results[-1] if results else None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(left, watch.fallback_seconds))
