"""The event outbox: events appended in the writer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_payloads import SubmissionChange
from domain.events import EventType, NewEvent
from persistence.bulk import column_arrays, unnest_insert
from persistence.projections import base64url_sql, moment_sql
from persistence.tables import events

_COLUMNS = ("type", "owner_id", "subject_id", "payload")
_insert = unnest_insert(events, _COLUMNS)


def _id(type_name: str, column: str) -> str:
    return base64url_sql(f"'{type_name}:' || {column}::text")


# domain.event_payloads.events_of written by PostgreSQL from one array per field: no payload
# dict or JSON text per event in Python. The prediction and confidence travel as the JSON
# text orjson writes for them (as append would send them); the rest as plain values.
def _quoted(text_sql: str) -> str:
    """A JSON string of text that needs no escaping (an id, a status, a DateTime)."""
    return f"'\"' || {text_sql} || '\"'"


_RESULT_FIELDS = (
    """',"resultId":' || c.rid"""
    """ || ',"prediction":' || c.prediction || ',"confidence":' || c.confidence"""
    """ || ',"modelVersion":' || to_json(c.model_version)::text"""
)
_APPEND_CHANGES = sa.text(
    # Every piece interpolated is a literal of this module: no value reaches the text.
    f"""
WITH c AS (
  SELECT u.*, {_quoted(_id("Submission", "u.id"))} AS sid,
    {_quoted(_id("Result", "u.result_id"))} AS rid
  FROM unnest(
    :types, :owner_ids, :ids, :statuses, :errors, :attempts, :updated, :batch_ids,
    :result_ids, :predictions, :confidences, :model_versions, :announces
  ) WITH ORDINALITY AS u(
    type, owner_id, id, status, error, attempts, updated_at, batch_id,
    result_id, prediction, confidence, model_version, announces, n
  )
)
INSERT INTO events (type, owner_id, subject_id, payload)
SELECT e.type, e.owner_id, e.subject_id, e.payload::jsonb FROM (
  SELECT c.n, 0 AS k, c.type, c.owner_id, c.id AS subject_id,
    '{{"submissionId":' || c.sid
    || ',"status":' || {_quoted("c.status")}
    || ',"error":' || coalesce(to_json(c.error)::text, 'null')
    || ',"attempts":' || c.attempts
    || ',"updatedAt":' || {_quoted(moment_sql("c.updated_at"))}
    || CASE WHEN c.batch_id IS NULL THEN ''
       ELSE ',"batchId":' || {_quoted(_id("Batch", "c.batch_id"))} END
    || CASE WHEN c.result_id IS NULL THEN '' ELSE {_RESULT_FIELDS} END
    || '}}' AS payload
  FROM c
  UNION ALL
  SELECT c.n, 1, 'RESULT_CREATED', c.owner_id, c.result_id,
    '{{"submissionId":' || c.sid
    || {_RESULT_FIELDS} || '}}'
  FROM c WHERE c.announces AND c.result_id IS NOT NULL
) e
ORDER BY e.n, e.k
"""  # noqa: S608
).bindparams(
    *(
        sa.bindparam(name, type_=postgresql.ARRAY(item))
        for name, item in (
            ("types", sa.Text()),
            ("owner_ids", sa.Uuid()),
            ("ids", sa.Uuid()),
            ("statuses", sa.Text()),
            ("errors", sa.Text()),
            ("attempts", sa.Integer()),
            ("updated", sa.DateTime(timezone=True)),
            ("batch_ids", sa.Uuid()),
            ("result_ids", sa.Uuid()),
            ("predictions", sa.Text()),
            ("confidences", sa.Text()),
            ("model_versions", sa.Text()),
            ("announces", sa.Boolean()),
        )
    )
)


class SqlEventRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self.appended = False
        self.revokes = False  # a PRINCIPAL_REVOKED among what was appended

    async def append(self, new_events: Sequence[NewEvent]) -> None:
        if not new_events:
            return
        rows = [
            {
                "type": e.type.value,
                "owner_id": e.owner_id,
                "subject_id": e.subject_id,
                "payload": e.payload,
            }
            for e in new_events
        ]
        # One statement whatever the count; ids are taken in the list's order.
        await self._conn.execute(_insert, column_arrays(events, _COLUMNS, rows))
        self.appended = True
        self.revokes |= any(e.type is EventType.PRINCIPAL_REVOKED for e in new_events)

    async def append_changes(self, changes: Sequence[SubmissionChange]) -> None:
        if not changes:
            return
        await self._conn.execute(_APPEND_CHANGES, _change_arrays(changes))
        self.appended = True


def _change_arrays(changes: Sequence[SubmissionChange]) -> dict[str, list[Any]]:
    submissions = [c.submission for c in changes]
    results = [c.result for c in changes]
    dumps = orjson.dumps
    return {
        "types": [c.kind.value for c in changes],
        "owner_ids": [s.owner_id for s in submissions],
        "ids": [s.id for s in submissions],
        "statuses": [s.status.value for s in submissions],
        "errors": [s.error for s in submissions],
        "attempts": [s.attempts for s in submissions],
        "updated": [s.updated_at for s in submissions],
        "batch_ids": [s.batch_id for s in submissions],
        "result_ids": [r and r.id for r in results],
        "predictions": [r and dumps(r.prediction).decode() for r in results],
        "confidences": [r and dumps(r.confidence).decode() for r in results],
        "model_versions": [r and r.model_version for r in results],
        "announces": [c.announces_result for c in changes],
    }
