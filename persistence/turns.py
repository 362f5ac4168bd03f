"""Claiming queued rows in turns across owners, one query shape for every queue.

Each owner's first due row comes before any owner's second, so one owner's backlog of
thousands delays another owner's single row by one claim at most. The turns are ranked
without locks (a window function cannot be locked); a bounded look-ahead of the best turns is
then locked with SKIP LOCKED, rechecking the due condition on the locked row version, so
concurrent workers never wait on each other nor claim a row another has just taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

LOOKAHEAD = 4  # candidates ranked per row claimed: room for rows other workers hold

# A queue's claim is built once, with its time, lease end and size bound: see claim_values.
_NOW, _LEASE_UNTIL, _LIMIT = "now", "lease_until", "claim_limit"
_moment = sa.DateTime(timezone=True)


def claim_parameters() -> tuple[sa.BindParameter[datetime], sa.BindParameter[datetime], Any]:
    """(now, lease_until, limit) as bound parameters, for a claim statement built once."""
    return (
        sa.bindparam(_NOW, type_=_moment),
        sa.bindparam(_LEASE_UNTIL, type_=_moment),
        sa.bindparam(_LIMIT, type_=sa.Integer),
    )


def claim_values(limit: int, now: datetime, lease_until: datetime) -> dict[str, object]:
    """The values of claim_parameters."""
    return {_NOW: now, _LEASE_UNTIL: lease_until, _LIMIT: limit}


def in_turns(
    table: sa.Table,
    owner: sa.ColumnElement[Any],
    order: Sequence[sa.ColumnElement[Any]],
    where: Sequence[sa.ColumnElement[bool]],
    limit: int | sa.ColumnElement[int],
    source: sa.FromClause | None = None,
) -> sa.ScalarSelect[UUID]:
    """Ids of up to `limit` due rows of `table` (filtered by `where` over `source`, the table
    or a join of it), ranked by turn per owner, then by `order` and id. `limit` may be a
    bound parameter, for a statement built once."""
    rows = table if source is None else source
    keys = [column.label(f"key_{i}") for i, column in enumerate(order)]
    turn = sa.func.row_number().over(partition_by=owner, order_by=(*order, table.c.id))
    ranked = (
        sa.select(table.c.id, turn.label("turn"), *keys)
        .select_from(rows)
        .where(*where)
        .subquery("ranked")
    )
    best = (
        sa.select(ranked)
        .order_by(*_ranking(ranked, len(keys)))
        .limit(limit * LOOKAHEAD)
        .subquery("best")
    )
    return (
        sa.select(table.c.id)
        .select_from(rows.join(best, best.c.id == table.c.id))
        .where(*where)
        .order_by(*_ranking(best, len(keys)))
        .limit(limit)
        .with_for_update(of=table, skip_locked=True)
        .scalar_subquery()
    )


def _ranking(ranked: sa.Subquery, keys: int) -> list[sa.ColumnElement[Any]]:
    return [ranked.c.turn, *(ranked.c[f"key_{i}"] for i in range(keys)), ranked.c.id]
