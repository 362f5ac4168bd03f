"""The event outbox: events appended in the writer's transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.event_payloads import SubmissionChange
from domain.events import EventType, NewEvent
from persistence.bulk import dumps, recordset_insert, recordset_values
from persistence.projections import base64url_sql, moment_sql
from persistence.tables import events

_COLUMNS = ("type", "owner_id", "subject_id", "payload")
_insert = recordset_insert(events, _COLUMNS)


def _id(type_name: str, column: str) -> str:
    return base64url_sql(f"'{type_name}:' || {column}::text")


# domain.event_payloads.events_of written by PostgreSQL from the changes' JSON rows: no
# payload dict or JSON text per event in Python. The prediction and confidence are copied
# into the payload as orjson wrote them (as append would send them).
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
  SELECT u.n, u.type, u.owner_id, u.id, u.status, u.error, u.attempts, u.updated_at,
    u.batch_id, u.result_id, u.model_version, u.announces,
    coalesce(u.prediction::text, 'null') AS prediction,
    coalesce(u.confidence::text, 'null') AS confidence,
    {_quoted(_id("Submission", "u.id"))} AS sid,
    {_quoted(_id("Result", "u.result_id"))} AS rid
  FROM json_to_recordset(CAST(:changes AS json)) AS u(
    n integer, type text, owner_id uuid, id uuid, status text, error text, attempts integer,
    updated_at timestamptz, batch_id uuid, result_id uuid, prediction json, confidence json,
    model_version text, announces boolean
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
        await self._conn.execute(_insert, recordset_values(rows))
        self.appended = True
        self.revokes |= any(e.type is EventType.PRINCIPAL_REVOKED for e in new_events)

    async def append_changes(self, changes: Sequence[SubmissionChange]) -> None:
        if not changes:
            return
        await self._conn.execute(_APPEND_CHANGES, {"changes": _change_rows(changes)})
        self.appended = True


def _change_rows(changes: Sequence[SubmissionChange]) -> str:
    """The changes as one JSON array (see bulk.py), each with its place in the list; the
    prediction and confidence as the JSON values they are (the statement writes them into
    the payload as orjson wrote them)."""
    rows = []
    for n, change in enumerate(changes):
        submission, result = change.submission, change.result
        row: dict[str, object] = {
            "n": n,
            "type": change.kind.value,
            "owner_id": submission.owner_id,
            "id": submission.id,
            "status": submission.status.value,
            "error": submission.error,
            "attempts": submission.attempts,
            "updated_at": submission.updated_at,
            "batch_id": submission.batch_id,
            "announces": change.announces_result,
        }
        if result is not None:
            row["result_id"] = result.id
            row["prediction"] = result.prediction
            row["confidence"] = result.confidence
            row["model_version"] = result.model_version
        rows.append(row)
    return dumps(rows)
