"""The submissions and results repositories."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSON, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_payloads import SubmissionChange
from domain.history import EVERY_SUBMISSION, SubmissionFilter
from domain.ids import new_id
from domain.models import Model
from domain.monitoring import Tally
from domain.pagination import Page, PageRequest
from domain.ports import QueueStats
from domain.submissions import (
    Alternative,
    ClaimEnd,
    FinishedRun,
    MetadataEntry,
    Result,
    Submission,
    SubmissionStatus,
)
from persistence.alongside import ResultsAlongside
from persistence.batching import (
    NO_PARAMETERS,
    Parameters,
    Row,
    Select,
    any_key,
    built_once,
    counts_for_keys,
    counts_statement,
    grouped_in_key_order,
    pages_for_keys,
    pages_statement,
    rows_for_keys,
)
from persistence.bulk import Statement, in_order, recordset_rows, recordset_values, shared_insert
from persistence.driver import fetch, reusable
from persistence.events import change_events
from persistence.monitoring import tally_upsert, tally_values
from persistence.tables import (
    events,
    model_stats,
    models,
    results,
    submission_assets,
    submissions,
)
from persistence.turns import claim_parameters, claim_values, in_turns

Made = TypeVar("Made")  # what add_finished's `meanwhile` makes

# The columns _submission reads, in the order it unpacks them: not the claim's
# available_at and lease_expires_at.
_SUBMISSION_COLUMNS = (
    submissions.c.id,
    submissions.c.owner_id,
    submissions.c.model_id,
    submissions.c.input,
    submissions.c.status,
    submissions.c.error,
    submissions.c.attempts,
    submissions.c.idempotency_key,
    submissions.c.created_at,
    submissions.c.updated_at,
    submissions.c.batch_id,
    submissions.c.callback_url,
    submissions.c.metadata,
)


def _submission(row: Row) -> Submission:
    (
        id_,
        owner_id,
        model_id,
        input_,
        status,
        error,
        attempts,
        idempotency_key,
        created_at,
        updated_at,
        batch_id,
        callback_url,
        metadata,
    ) = row
    return Submission(
        id=id_,
        owner_id=owner_id,
        model_id=model_id,
        input=input_,
        status=SubmissionStatus(status),
        error=error,
        attempts=attempts,
        idempotency_key=idempotency_key,
        created_at=created_at,
        updated_at=updated_at,
        batch_id=batch_id,
        callback_url=callback_url,
        metadata=tuple(MetadataEntry(m["key"], m["value"]) for m in metadata),
    )


def _metadata_json(entries: Sequence[MetadataEntry]) -> list[dict[str, str]]:
    return [{"key": m.key, "value": m.value} for m in entries]


# The columns _result reads, in the order it unpacks them.
_RESULT_COLUMNS = (
    results.c.id,
    results.c.submission_id,
    results.c.prediction,
    results.c.confidence,
    results.c.alternatives,
    results.c.model_version,
    results.c.processing_time_ms,
    results.c.created_at,
    submissions.c.owner_id,
)


def _result(row: Row) -> Result:
    (
        id_,
        submission_id,
        prediction,
        confidence,
        alternatives,
        model_version,
        processing_time_ms,
        created_at,
        owner_id,
    ) = row
    return Result(
        id=id_,
        submission_id=submission_id,
        owner_id=owner_id,
        prediction=prediction,
        confidence=confidence,
        alternatives=tuple(
            Alternative(value=a["value"], confidence=a["confidence"]) for a in alternatives
        ),
        model_version=model_version,
        processing_time_ms=processing_time_ms,
        created_at=created_at,
    )


def _by_status(filtered: bool) -> list[sa.ColumnElement[bool]]:
    """The status filter, its value bound as `status` when executed."""
    return [submissions.c.status == sa.bindparam("status")] if filtered else []


def _status(status: SubmissionStatus | None) -> Parameters:
    return NO_PARAMETERS if status is None else {"status": status.value}


# Which of the filter's conditions a statement has: one statement variant per combination.
_Shape = tuple[bool, bool, bool, bool, bool]


def _shape(status: SubmissionStatus | None, where: SubmissionFilter) -> _Shape:
    return (
        status is not None,
        where.model_id is not None,
        where.created_after is not None,
        where.created_before is not None,
        where.metadata is not None,
    )


def _filtered(shape: _Shape) -> list[sa.ColumnElement[bool]]:
    """The filter's conditions, their values bound when executed (see _filter_values)."""
    by_status, by_model, after, before, by_metadata = shape
    moment = sa.DateTime(timezone=True)
    return [
        *_by_status(by_status),
        *([submissions.c.model_id == sa.bindparam("model_id", type_=sa.Uuid)] if by_model else []),
        *(
            [submissions.c.created_at > sa.bindparam("created_after", type_=moment)]
            if after
            else []
        ),
        *(
            [submissions.c.created_at < sa.bindparam("created_before", type_=moment)]
            if before
            else []
        ),
        # One pair: the GIN index ix_submissions_metadata answers the containment. It holds
        # only rows with metadata; stating its predicate (which no row holding the pair
        # fails) lets the planner use it.
        *(
            [
                submissions.c.metadata.contains(sa.bindparam("metadata", type_=JSONB)),
                submissions.c.metadata != sa.text("'[]'::jsonb"),
            ]
            if by_metadata
            else []
        ),
    ]


def _filter_values(status: SubmissionStatus | None, where: SubmissionFilter) -> Parameters:
    values = {
        "model_id": where.model_id,
        "created_after": where.created_after,
        "created_before": where.created_before,
        "metadata": None if where.metadata is None else _metadata_json([where.metadata]),
    }
    return {**_status(status), **{k: v for k, v in values.items() if v is not None}}


_submissions_by_id = reusable(sa.select(*_SUBMISSION_COLUMNS).where(any_key(submissions.c.id)))


@built_once
def _owner_pages(shape: _Shape, keyset: bool, descending: bool, until: bool) -> Select:
    rows = sa.select(*_SUBMISSION_COLUMNS).where(*_filtered(shape))
    return pages_statement(
        rows, submissions.c.owner_id, keyset=keyset, descending=descending, until=until
    )


@built_once
def _owner_counts(shape: _Shape) -> Select:
    return counts_statement(submissions.c.owner_id, _filtered(shape))


_results_with_owner = sa.select(*_RESULT_COLUMNS).join(
    submissions, submissions.c.id == results.c.submission_id
)
_results_by_id = reusable(_results_with_owner.where(any_key(results.c.id)))
_results_by_submission = reusable(
    _results_with_owner.where(any_key(results.c.submission_id)).order_by(
        results.c.submission_id, results.c.created_at, results.c.id
    )
)


def _submission_rows(
    batch: Sequence[Submission], lease_until: datetime | None = None
) -> list[dict[str, object]]:
    """add_many's rows: every item due at once (created_at's offsets only keep the input
    order), a RUNNING one (claimed at accept) leased until `lease_until`."""
    due = min(s.created_at for s in batch)
    return [
        _row_values(s)
        | {
            "available_at": due,
            "lease_expires_at": (lease_until if s.status is SubmissionStatus.RUNNING else None),
        }
        for s in batch
    ]


def _row_values(submission: Submission) -> dict[str, object]:
    return {
        "id": submission.id,
        "owner_id": submission.owner_id,
        "model_id": submission.model_id,
        "input": submission.input,
        "status": submission.status.value,
        "error": submission.error,
        "attempts": submission.attempts,
        "idempotency_key": submission.idempotency_key,
        "available_at": submission.created_at,
        "created_at": submission.created_at,
        "updated_at": submission.updated_at,
        "batch_id": submission.batch_id,
        "callback_url": submission.callback_url,
        "metadata": _metadata_json(submission.metadata),
    }


# add_many's columns, in one INSERT for the whole batch (bulk.shared_insert).
_SUBMISSION_NAMES = (
    "id",
    "owner_id",
    "model_id",
    "input",
    "status",
    "error",
    "attempts",
    "idempotency_key",
    "available_at",
    "created_at",
    "updated_at",
    "batch_id",
    "callback_url",
    "metadata",
    "lease_expires_at",
)


def _array(name: str, item: sa.types.TypeEngine[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=postgresql.ARRAY(item))


_moment = sa.DateTime(timezone=True)


def _fenced(rows: sa.TableValuedAlias) -> list[sa.ColumnElement[bool]]:
    """The fence: each row is still RUNNING under the attempt that claimed it."""
    return [
        submissions.c.id == rows.c.id,
        submissions.c.status == SubmissionStatus.RUNNING.value,
        submissions.c.attempts == rows.c.attempts,
    ]


# A chunk's endings as rows: id, attempt (the fence), new status, error, next availability.
_ends = (
    sa.func.unnest(
        _array("ids", sa.Uuid()),
        _array("claim_attempts", sa.Integer()),
        _array("statuses", sa.Text()),
        _array("errors", sa.Text()),
        _array("available", _moment),
    )
    .table_valued("id", "attempts", "status", "error", "available_at")
    .render_derived(name="ends")
)
_finish_many = (
    sa.update(submissions)
    .where(*_fenced(_ends))
    .values(
        status=_ends.c.status,
        error=_ends.c.error,
        available_at=sa.func.coalesce(_ends.c.available_at, submissions.c.available_at),
        lease_expires_at=None,
        updated_at=sa.bindparam("now", type_=_moment),
    )
    # Only what the UPDATE changed: the rest (the input above all) the claim already holds.
    .returning(submissions.c.id, submissions.c.status, submissions.c.error)
)
_held = (
    sa.func.unnest(_array("ids", sa.Uuid()), _array("claim_attempts", sa.Integer()))
    .table_valued("id", "attempts")
    .render_derived(name="held")
)
_release_many = (
    sa.update(submissions)
    .where(*_fenced(_held))
    .values(
        status=SubmissionStatus.PENDING.value,
        attempts=submissions.c.attempts - 1,
        lease_expires_at=None,
        updated_at=sa.bindparam("now", type_=_moment),
    )
)


@functools.cache
def _claim() -> sa.Update:
    """Up to `limit` due submissions in turns across owners, RUNNING under a lease; built
    once (bound as persistence.turns.claim_parameters): building it per claim cost ~1 ms of
    CPU, and idle workers claim five times a second each."""
    now, lease_until, limit = claim_parameters()
    due = sa.or_(
        sa.and_(
            submissions.c.status == SubmissionStatus.PENDING.value,
            submissions.c.available_at <= now,
        ),
        sa.and_(
            submissions.c.status == SubmissionStatus.RUNNING.value,
            submissions.c.lease_expires_at < now,
        ),
    )
    order = (submissions.c.available_at, submissions.c.created_at)
    candidates = in_turns(submissions, submissions.c.owner_id, order, [due], limit)
    return (
        sa.update(submissions)
        .where(submissions.c.id.in_(candidates))
        .values(
            status=SubmissionStatus.RUNNING.value,
            attempts=submissions.c.attempts + 1,
            lease_expires_at=lease_until,
            updated_at=now,
        )
        .returning(*_SUBMISSION_COLUMNS)
    )


@functools.cache
def _insert_finished(names: tuple[str, ...], *, if_model_current: bool) -> sa.Insert:
    """A group's submissions from one array per column (see bulk.py), leaving out each whose
    idempotency key was used; with `if_model_current`, none at all unless the model is still
    as the caller read it (active, not registered again since; bound as model_id and
    model_updated_at): the check read of a cached model, folded into the write."""
    rows = recordset_rows(submissions, names)
    if if_model_current:
        current = sa.select(models.c.id).where(
            models.c.id == sa.bindparam("model_id", type_=sa.Uuid),
            models.c.is_active,
            models.c.updated_at == sa.bindparam("model_updated_at", type_=_moment),
        )
        rows = rows.where(current.exists())
    return (
        insert(submissions)
        .from_select(list(names), rows)
        .on_conflict_do_nothing(
            index_elements=[submissions.c.owner_id, submissions.c.idempotency_key],
            index_where=submissions.c.idempotency_key.is_not(None),
        )
        .returning(submissions.c.id)
    )


_EVENT_NAMES = ("type", "owner_id", "subject_id", "payload")


def _events_of(kept: sa.CTE) -> sa.Insert:
    """The events of the kept submissions, bound as e_<column> with e_submission_id (the
    submission each belongs to); ids taken in the arrays' order."""
    arrays = [
        sa.bindparam("e_type", type_=postgresql.ARRAY(sa.Text)),
        sa.bindparam("e_owner_id", type_=postgresql.ARRAY(sa.Uuid)),
        sa.bindparam("e_subject_id", type_=postgresql.ARRAY(sa.Uuid)),
        sa.bindparam("e_payload", type_=postgresql.ARRAY(sa.Text)),
        sa.bindparam("e_submission_id", type_=postgresql.ARRAY(sa.Uuid)),
    ]
    rows = (
        sa.func.unnest(*arrays)
        .table_valued(*_EVENT_NAMES, "submission_id", with_ordinality="position")
        .render_derived(name="e")
    )
    picked = sa.select(
        rows.c.type, rows.c.owner_id, rows.c.subject_id, sa.cast(rows.c.payload, JSON)
    )
    kept_rows = picked.where(rows.c.submission_id.in_(sa.select(kept.c.id))).order_by(
        rows.c.position
    )
    return sa.insert(events).from_select(list(_EVENT_NAMES), kept_rows)


@functools.cache
def _record_runs(
    names: tuple[str, ...], *, if_model_current: bool, with_assets: bool, with_tally: bool
) -> sa.Select[UUID]:
    """One statement for a group of finished runs: WITH kept AS (its submissions INSERT),
    its results, events and asset links INSERTs (of the kept rows only), and the model's
    rollup upsert (counted only if every row was kept: the caller corrects it otherwise),
    SELECT the kept ids. A row's result references its submission inserted by the same
    statement: the foreign key is checked at the statement's end."""
    kept = _insert_finished(names, if_model_current=if_model_current).cte("kept")
    kept_ids = sa.select(kept.c.id)
    result_rows = recordset_rows(results, _RESULT_NAMES, prefix="r_")
    result_rows = result_rows.where(result_rows.selected_columns.submission_id.in_(kept_ids))
    written = sa.insert(results).from_select(list(_RESULT_NAMES), result_rows)
    parts = [
        written.returning(results.c.id).cte("results_written"),
        _events_of(kept).returning(events.c.id).cte("events_written"),
    ]
    if with_assets:
        links = recordset_rows(submission_assets, _LINK_NAMES, prefix="a_")
        links = links.where(links.selected_columns.submission_id.in_(kept_ids))
        linked = sa.insert(submission_assets).from_select(list(_LINK_NAMES), links)
        parts.append(linked.returning(submission_assets.c.asset_id).cte("assets_linked"))
    if with_tally:
        every_row_kept = sa.select(sa.func.count()).select_from(
            kept
        ).scalar_subquery() == sa.bindparam("s_expected", type_=sa.Integer)
        counted = tally_upsert(every_row_kept).returning(model_stats.c.span)
        parts.append(counted.cte("tally_counted"))
    return reusable(sa.select(kept.c.id).add_cte(*parts))


_LINK_NAMES = ("submission_id", "asset_id", "position")


class SqlSubmissionCommands:
    """Writes on submissions; mixed into the repository."""

    _conn: AsyncConnection
    # Whether this transaction made work due: the unit of work wakes the workers after commit.
    has_enqueued: bool
    # Whether it appended events (add_finished_runs): the unit of work signals them too.
    has_events: bool
    # Where a batch's results may be written alongside this transaction, asked for only when
    # a batch has results: set by the unit of work (persistence/alongside.py); None, or an
    # answer of None, writes them in it.
    alongside: Callable[[], ResultsAlongside | None] | None

    async def add(
        self, submission: Submission, asset_ids: Sequence[UUID]
    ) -> tuple[Submission, bool]:
        statement = (
            insert(submissions)
            .values(_row_values(submission))
            .on_conflict_do_nothing(
                index_elements=[submissions.c.owner_id, submissions.c.idempotency_key],
                index_where=submissions.c.idempotency_key.is_not(None),
            )
            .returning(*_SUBMISSION_COLUMNS)
        )
        row = (await self._conn.execute(statement)).first()
        if row is None:  # the key was used before: return the first submission
            existing = sa.select(*_SUBMISSION_COLUMNS).where(
                submissions.c.owner_id == submission.owner_id,
                submissions.c.idempotency_key == submission.idempotency_key,
            )
            return _submission((await self._conn.execute(existing)).one()), False
        self.has_enqueued = True
        if asset_ids:
            await self._conn.execute(
                sa.insert(submission_assets),
                [
                    {"submission_id": submission.id, "asset_id": a, "position": n}
                    for n, a in enumerate(asset_ids)
                ],
            )
        return _submission(row), True

    async def add_many(
        self, batch: Sequence[Submission], lease_until: datetime | None = None
    ) -> list[Submission]:
        rows = _submission_rows(batch, lease_until)
        await self._conn.execute(*shared_insert(submissions, _SUBMISSION_NAMES, rows))
        # Rows claimed at accept are this process's already: no other worker is woken.
        self.has_enqueued |= any(s.status is SubmissionStatus.PENDING for s in batch)
        return list(batch)

    async def add_finished(
        self,
        changes: Sequence[SubmissionChange],
        meanwhile: Callable[[], Made] | None = None,
    ) -> Made | None:
        """Three INSERTs (submissions, results, events), each made while the one before is
        written (bulk.in_order). The results go first, on a connection of their own, when
        the unit of work has one to spare (persistence/alongside.py): written while the
        submissions and events are, on another core. `meanwhile` and the 2,000 event
        payloads are made while PostgreSQL writes the submissions; returns what `meanwhile`
        made."""
        if not changes:
            return None if meanwhile is None else meanwhile()
        done = [c.submission for c in changes]
        written = [c.result for c in changes if c.result is not None]
        beside = bool(written) and self._results_alongside(written)
        if beside:
            await asyncio.sleep(0)  # its connection taken and its first statement sent
        made: list[Made] = []

        def meanwhile_step() -> None:
            if meanwhile is not None:
                made.append(meanwhile())

        statements: list[Callable[[], Statement | None]] = [
            lambda: shared_insert(submissions, _SUBMISSION_NAMES, _submission_rows(done))
        ]
        if written and not beside:
            statements.append(lambda: _results_insert(written))
        statements += [meanwhile_step, lambda: change_events(changes)]
        await in_order(self._conn, statements)
        self.has_events = True
        return made[0] if made else None

    def _results_alongside(self, written: Sequence[Result]) -> bool:
        """Whether the results were begun on a connection of their own."""
        alongside = None if self.alongside is None else self.alongside()
        if alongside is None:
            return False
        named = [r.submission_id for r in written]
        return alongside.start(new_id(), named, _results_insert(written))

    async def save_state(
        self, submission: Submission, *, expected: SubmissionStatus
    ) -> Submission | None:
        statement = (
            sa.update(submissions)
            .where(submissions.c.id == submission.id, submissions.c.status == expected.value)
            .values(
                status=submission.status.value,
                error=submission.error,
                attempts=submission.attempts,
                available_at=submission.updated_at,
                lease_expires_at=None,
                updated_at=submission.updated_at,
            )
            .returning(*_SUBMISSION_COLUMNS)
        )
        row = (await self._conn.execute(statement)).first()
        if row is None:
            return None
        self.has_enqueued |= submission.status is SubmissionStatus.PENDING
        return _submission(row)

    async def claim(self, limit: int, now: datetime, lease_until: datetime) -> list[Submission]:
        rows = await self._conn.execute(_claim(), claim_values(limit, now, lease_until))
        return sorted((_submission(r) for r in rows), key=lambda s: (s.created_at, s.id))

    async def finish_many(self, ends: Sequence[ClaimEnd], now: datetime) -> list[Submission]:
        """One UPDATE for a chunk of claims; the fence (still RUNNING under the claim's
        attempt) is checked per row, so a row whose lease another worker took is left
        alone and missing from the answer."""
        if not ends:
            return []
        values = {
            "ids": [e.claimed.id for e in ends],
            "claim_attempts": [e.claimed.attempts for e in ends],
            "statuses": [e.status.value for e in ends],
            "errors": [e.error for e in ends],
            "available": [e.available_at for e in ends],
        }
        rows = await self._conn.execute(_finish_many, values | {"now": now})
        claimed = {e.claimed.id: e.claimed for e in ends}
        return [
            replace(claimed[id_], status=SubmissionStatus(status), error=error, updated_at=now)
            for id_, status, error in rows
        ]

    async def queue_stats(self, now: datetime) -> QueueStats:
        unfinished = [SubmissionStatus.PENDING.value, SubmissionStatus.RUNNING.value]
        statement = sa.select(
            sa.func.count().filter(submissions.c.status == SubmissionStatus.PENDING.value),
            sa.func.count().filter(submissions.c.status == SubmissionStatus.RUNNING.value),
            sa.func.min(submissions.c.created_at).filter(
                submissions.c.status == SubmissionStatus.PENDING.value
            ),
        ).where(submissions.c.status.in_(unfinished))
        pending, running, oldest = (await self._conn.execute(statement)).one()
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        return QueueStats(pending=pending, running=running, oldest_pending_age_seconds=age)

    async def release_many(self, claimed: Sequence[Submission], now: datetime) -> None:
        """One UPDATE: PENDING again, the attempt not counted, where the claim still holds."""
        if not claimed:
            return
        values = {"ids": [s.id for s in claimed], "claim_attempts": [s.attempts for s in claimed]}
        await self._conn.execute(_release_many, values | {"now": now})
        self.has_enqueued = True


class SqlSubmissionRepository(SqlSubmissionCommands):
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.has_enqueued = False
        self.has_events = False
        self.alongside = None

    async def get_many(self, ids: Sequence[UUID]) -> list[Submission | None]:
        return await rows_for_keys(self._conn, _submissions_by_id, ids, _submission)

    async def list_for_owners(
        self,
        owner_ids: Sequence[UUID],
        request: PageRequest,
        status: SubmissionStatus | None,
        where: SubmissionFilter = EVERY_SUBMISSION,
    ) -> list[Page[Submission]]:
        shape = _shape(status, where)
        statement = _owner_pages(
            shape, request.after is not None, request.descending, request.until is not None
        )
        values = _filter_values(status, where)
        return await pages_for_keys(
            self._conn, statement, owner_ids, "owner_id", request, _submission, values
        )

    async def count_for_owners(
        self,
        owner_ids: Sequence[UUID],
        status: SubmissionStatus | None,
        where: SubmissionFilter = EVERY_SUBMISSION,
    ) -> list[int]:
        statement = _owner_counts(_shape(status, where))
        return await counts_for_keys(
            self._conn, statement, owner_ids, _filter_values(status, where)
        )

    async def add_finished_runs(
        self,
        runs: Sequence[FinishedRun],
        asset_ids: Mapping[UUID, Sequence[UUID]],
        *,
        model: Model | None = None,
        tally: Tally | None = None,
    ) -> set[UUID]:
        """One statement for the group (see _record_runs: a used idempotency key leaves its
        row, result, events and asset links out; a `model` no longer current, every row;
        `tally` is added only when every row was inserted)."""
        if not runs:
            return set()
        rows = [_row_values(r.submission) for r in runs]
        names = tuple(rows[0])
        written = [r.result for r in runs if r.result is not None]
        changes = [(r.submission.id, e) for r in runs for e in r.events]
        values: dict[str, object] = {
            **recordset_values(rows),
            **recordset_values(list(map(_result_row, written)), "r_"),
            "e_type": [e.type.value for _, e in changes],
            "e_owner_id": [e.owner_id for _, e in changes],
            "e_subject_id": [e.subject_id for _, e in changes],
            "e_payload": [orjson.dumps(e.payload).decode() for _, e in changes],
            "e_submission_id": [s for s, _ in changes],
        }
        if model is not None:
            values |= {"model_id": model.id, "model_updated_at": model.updated_at}
        links = [
            (r.submission.id, a, n)
            for r in runs
            for n, a in enumerate(asset_ids.get(r.submission.id, ()))
        ]
        if links:
            values |= recordset_values(
                [{"submission_id": s, "asset_id": a, "position": n} for s, a, n in links], "a_"
            )
        if tally is not None:
            values |= tally_values(tally) | {"s_expected": len(runs)}
        statement = _record_runs(
            names,
            if_model_current=model is not None,
            with_assets=bool(links),
            with_tally=tally is not None,
        )
        # On asyncpg itself when the unit of work commits each statement (runInference's
        # group): SQLAlchemy's execution of this many-CTE statement cost ~0.25 ms of CPU.
        kept, _ = await fetch(self._conn, statement, values)
        inserted: set[UUID] = {row[0] for row in kept}
        self.has_events |= bool(inserted) and bool(changes)
        return inserted

    async def get_by_idempotency_keys(
        self, keys: Sequence[tuple[UUID, str]]
    ) -> list[Submission | None]:
        if not keys:
            return []
        statement = sa.select(*_SUBMISSION_COLUMNS).where(
            sa.tuple_(submissions.c.owner_id, submissions.c.idempotency_key).in_(keys)
        )
        found = {
            (s.owner_id, s.idempotency_key): s
            for s in map(_submission, await self._conn.execute(statement))
        }
        return [found.get(key) for key in keys]


class SqlResultRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get_many(self, ids: Sequence[UUID]) -> list[Result | None]:
        return await rows_for_keys(self._conn, _results_by_id, ids, _result)

    async def list_for_submissions(self, submission_ids: Sequence[UUID]) -> list[list[Result]]:
        return await grouped_in_key_order(
            self._conn, _results_by_submission, submission_ids, "submission_id", _result
        )

    async def add(self, result: Result) -> None:
        await self.add_many([result])

    async def add_many(self, batch: Sequence[Result]) -> None:
        """One INSERT for the whole group (see bulk.py)."""
        if not batch:
            return
        await self._conn.execute(*_results_insert(batch))


_RESULT_NAMES = (
    "id",
    "submission_id",
    "prediction",
    "confidence",
    "alternatives",
    "model_version",
    "processing_time_ms",
    "created_at",
)


def _results_insert(written: Sequence[Result]) -> Statement:
    """One INSERT of `written` (see bulk.py)."""
    return shared_insert(results, _RESULT_NAMES, list(map(_result_row, written)))


def _result_row(result: Result) -> dict[str, object]:
    return {
        "id": result.id,
        "submission_id": result.submission_id,
        "prediction": result.prediction,
        "confidence": result.confidence,
        "alternatives": [
            {"value": a.value, "confidence": a.confidence} for a in result.alternatives
        ],
        "model_version": result.model_version,
        "processing_time_ms": result.processing_time_ms,
        "created_at": result.created_at,
    }
