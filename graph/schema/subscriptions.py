"""Subscriptions: the Subscription root, fed by this process's event broker (graph/realtime)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

import strawberry

from domain.assets import Asset, AssetStatus
from domain.errors import NotFound
from domain.event_payloads import Payload, asset_as_of, submission_as_of
from domain.events import Event, EventType
from domain.ports import UnitOfWork
from domain.principal import Principal, visible_only
from domain.services import owned
from domain.submissions import Result, Submission
from graph.errors import AssayGraphQLError
from graph.ids import required_id, to_global_id
from graph.realtime.broker import SlowConsumer, Subscriber
from graph.schema.assets import AssetType
from graph.schema.batches import BatchSubscriptions
from graph.schema.model_alerts import ModelAlertSubscriptions
from graph.schema.nodes import AppInfo
from graph.schema.results import ResultType
from graph.schema.submissions import SubmissionType

SUBMISSION_EVENTS = frozenset(
    {
        EventType.SUBMISSION_CREATED,
        EventType.SUBMISSION_UPDATED,
        EventType.SUBMISSION_SUCCEEDED,
        EventType.SUBMISSION_FAILED,
    }
)
ASSET_EVENTS = frozenset({EventType.ASSET_AVAILABLE, EventType.ASSET_DELETED})
SLOW_CONSUMER_CLOSE_CODE = 1013  # "try again later"
Subject = TypeVar("Subject", Submission, Result, Asset)
Followed = TypeVar("Followed", Submission, Asset)
Load = Callable[[UnitOfWork, Principal, Sequence[UUID]], Awaitable[list[Subject | None]]]


def _owned_by(principal: Principal, kinds: frozenset[EventType]) -> Callable[[Event], bool]:
    return lambda e: e.type in kinds and e.owner_id == principal.user_id


def _about(subject_id: UUID, kinds: frozenset[EventType]) -> Callable[[Event], bool]:
    return lambda e: e.type in kinds and e.subject_id == subject_id


def _result_of(submission_id: UUID | None, principal: Principal) -> Callable[[Event], bool]:
    wanted = None if submission_id is None else to_global_id("Submission", submission_id)

    def matches(e: Event) -> bool:
        if e.type is not EventType.RESULT_CREATED:
            return False
        if wanted is None:
            return e.owner_id == principal.user_id
        return e.payload.get("submissionId") == wanted

    return matches


@contextlib.asynccontextmanager
async def _listening(
    info: AppInfo, matches: Callable[[Event], bool]
) -> AsyncIterator[AsyncIterator[Event]]:
    """Subscribed from entering: what happens from now on is heard, so an object read inside
    can be sent first without missing a change that lands while it is read."""
    ctx = info.context
    if ctx.broker is None:
        raise AssayGraphQLError("subscriptions are not available on this server", "INTERNAL")
    ctx.open_subscriptions += 1
    try:
        if ctx.open_subscriptions > ctx.max_subscriptions_per_connection:
            raise AssayGraphQLError(
                f"at most {ctx.max_subscriptions_per_connection} subscriptions per connection",
                "RATE_LIMITED",
                retryAfterSeconds=0,
            )
        with ctx.broker.subscribe(matches) as subscriber:
            yield _messages(info, subscriber)
    finally:
        ctx.open_subscriptions -= 1


async def _messages(info: AppInfo, subscriber: Subscriber) -> AsyncIterator[Event]:
    """The subscriber's events, each resolved as one message with loaders of its own."""
    ctx = info.context
    try:
        async for event in subscriber.events():
            with ctx.message():
                yield event
    except SlowConsumer:
        await ctx.close_socket(SLOW_CONSUMER_CLOSE_CODE, "subscriber too slow")


async def _stream(info: AppInfo, matches: Callable[[Event], bool]) -> AsyncIterator[Event]:
    async with _listening(info, matches) as events:
        async for event in events:
            yield event


async def _assets_with_deleted(
    uow: UnitOfWork, principal: Principal, ids: Sequence[UUID]
) -> list[Asset | None]:
    return await owned.get_visible_assets(uow, principal, ids, include_deleted=True)


async def _subject_of(info: AppInfo, event: Event, load: Load[Subject]) -> Subject | None:
    """What the event is about, as this subscriber may see it: read once per event for every
    subscriber of this process. What changes (a status) comes from the event's payload."""
    ctx = info.context
    principal = ctx.principal
    assert ctx.broker is not None  # _stream refuses to run without one

    async def read() -> Subject | None:
        [found] = await load(ctx.uow(), principal, [event.subject_id])
        return found

    found = await ctx.broker.load_once(event.id, read)
    [visible] = visible_only(principal, [found])
    return visible


# The events one subscription hears, as a public name for subscriptions in other modules.
def event_stream(info: AppInfo, matches: Callable[[Event], bool]) -> AsyncIterator[Event]:
    return _stream(info, matches)


async def _first(info: AppInfo, id: strawberry.ID, type_name: str, load: Load[Subject]) -> Subject:
    """The one object a subscription names, as it is now: its first message."""
    [found] = await load(info.context.uow(), info.context.principal, [required_id(id, type_name)])
    if found is None:
        raise NotFound(type_name, id)
    return found


def _is_news(first: datetime | None, changed: datetime) -> bool:
    """A change the first message did not already show (it may have landed while that
    message was read: it is sent once)."""
    return first is None or changed > first


@dataclass(frozen=True, slots=True)
class _Follow(Generic[Followed]):
    """How a subscription follows one kind of object through its events."""

    type_name: str
    kinds: frozenset[EventType]
    load_first: Load[Followed]  # the object a subscription names, as the viewer sees it now
    load_event: Load[Followed]  # what an event is about (a DELETED asset's last event too)
    as_of: Callable[[Followed, Payload], Followed]  # laid over with the event's state
    is_last: Callable[[Followed], bool]  # no change comes after this state


SUBMISSIONS: _Follow[Submission] = _Follow(
    "Submission",
    SUBMISSION_EVENTS,
    owned.get_visible_submissions,
    owned.get_visible_submissions,
    submission_as_of,
    lambda submission: submission.is_finished,
)
ASSETS: _Follow[Asset] = _Follow(
    "Asset",
    ASSET_EVENTS,
    owned.get_visible_assets,
    _assets_with_deleted,
    asset_as_of,
    lambda asset: asset.status is AssetStatus.DELETED,
)


async def _followed(
    info: AppInfo, id: strawberry.ID | None, follow: _Follow[Followed]
) -> AsyncGenerator[tuple[Followed, bool], None]:
    """The viewer's objects as their events change them, or with `id` that one object: first
    as it is now (flagged True), then each change that first message did not show, until its
    last state."""
    matches = (
        _about(required_id(id, follow.type_name), follow.kinds)
        if id is not None
        else _owned_by(info.context.principal, follow.kinds)
    )
    async with _listening(info, matches) as events:
        shown = None
        if id is not None:
            with info.context.message():
                first = await _first(info, id, follow.type_name, follow.load_first)
                yield first, True
            if follow.is_last(first):
                return
            shown = first.updated_at
        async for event in events:
            found = await _subject_of(info, event, follow.load_event)
            if found is None:
                continue
            now = follow.as_of(found, event.payload)
            if _is_news(shown, now.updated_at):
                yield now, False
                if id is not None and follow.is_last(now):
                    return


@strawberry.type(
    description="Live changes over WebSocket on /graphql (graphql-transport-ws or graphql-ws; "
    "the token in `connection_init`'s payload). Each message shows its object as it was when "
    "the event happened. The same limits as queries, charged once when it starts."
)
class Subscription(BatchSubscriptions, ModelAlertSubscriptions):
    @strawberry.subscription(
        description="Status changes of the viewer's submissions. With `id`, that one "
        "submission: the first message is the submission as it is now, then one message per "
        "change, in order; the subscription completes after a finished status "
        "(SUCCEEDED, FAILED, CANCELLED), at once if it has one already. NOT_FOUND for an id "
        "the viewer cannot see."
    )
    async def submission_updated(
        self,
        info: AppInfo,
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="A submission's global id to follow it alone; null: every "
                "submission of the viewer's."
            ),
        ] = None,
    ) -> AsyncGenerator[SubmissionType, None]:
        async with contextlib.aclosing(_followed(info, id, SUBMISSIONS)) as followed:
            async for submission, is_first in followed:
                if is_first:
                    yield SubmissionType.from_entity(submission)
                else:
                    yield SubmissionType.as_of(submission)

    @strawberry.subscription(
        description="Results of the viewer's submissions. With `submissionId`, that "
        "submission's result: sent at once if it has one already, else when it is recorded; "
        "the subscription then completes. NOT_FOUND for a submission the viewer cannot see."
    )
    async def result_created(
        self,
        info: AppInfo,
        submission_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="A submission's global id to wait for its result alone; null: "
                "results of every submission of the viewer's."
            ),
        ] = None,
    ) -> AsyncGenerator[ResultType, None]:
        principal = info.context.principal
        subject = None if submission_id is None else required_id(submission_id, "Submission")
        async with _listening(info, _result_of(subject, principal)) as events:
            if submission_id is not None:
                with info.context.message():
                    await _first(info, submission_id, "Submission", owned.get_visible_submissions)
                    [results] = await owned.list_results_for_submissions(
                        info.context.uow(), principal, [required_id(submission_id, "Submission")]
                    )
                    if results:
                        yield ResultType.from_entity(results[-1])
                if results:
                    return
            async for event in events:
                result = await _subject_of(info, event, owned.get_visible_results)
                if result is not None:
                    yield ResultType.from_entity(result)
                    if submission_id is not None:
                        return

    @strawberry.subscription(
        description="Changes of the viewer's assets. With `id`, that one asset: the first "
        "message is the asset as it is now, then one message per change; the subscription "
        "completes once the asset is DELETED. NOT_FOUND for an id the viewer cannot see."
    )
    async def asset_updated(
        self,
        info: AppInfo,
        id: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="An asset's global id to follow it alone; null: every asset of "
                "the viewer's."
            ),
        ] = None,
    ) -> AsyncGenerator[AssetType, None]:
        async with contextlib.aclosing(_followed(info, id, ASSETS)) as followed:
            async for asset, _ in followed:
                yield AssetType.from_entity(asset)
