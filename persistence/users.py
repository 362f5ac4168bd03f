"""The users repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.pagination import Page, PageRequest
from domain.principal import Identity
from domain.users import User, UserFilter
from persistence.batching import Row, any_key, keyset_bounds, rows_for_keys, scan_order
from persistence.driver import fetch, reusable
from persistence.tables import users

# The columns _user reads, in the order it unpacks them.
_COLUMNS = (
    users.c.id,
    users.c.subject,
    users.c.email,
    users.c.name,
    users.c.language,
    users.c.is_active,
    users.c.groups,
    users.c.created_at,
    users.c.updated_at,
)


def _user(row: Row) -> User:
    id_, subject, email, name, language, is_active, groups, created_at, updated_at = row
    return User(
        id=id_,
        subject=subject,
        email=email,
        name=name,
        language=language,
        is_active=is_active,
        groups=tuple(groups),
        created_at=created_at,
        updated_at=updated_at,
    )


# An erased account's emptied row is nobody's to see.
_NOT_ERASED = users.c.erased_at.is_(None)
_by_id = reusable(sa.select(*_COLUMNS).where(any_key(users.c.id), _NOT_ERASED))
_by_subject = reusable(
    sa.select(*_COLUMNS).where(users.c.subject == sa.bindparam("claimed_subject"))
)


def _upsert_from_identity() -> sa.CompoundSelect[Any]:
    """Write only when a claim changed, else read: one round trip on the hot path.

    Bound: claimed_subject, claimed_email, claimed_name, claimed_groups and now. (A bound
    name may not be a column's: SQLAlchemy keeps those for the VALUES and SET clauses.)"""
    email = sa.bindparam("claimed_email", type_=users.c.email.type)
    groups = sa.bindparam("claimed_groups", type_=users.c.groups.type)
    now = sa.bindparam("now", type_=users.c.updated_at.type)
    insert_stmt = insert(users).values(
        subject=sa.bindparam("claimed_subject", type_=users.c.subject.type),
        email=email,
        name=sa.bindparam("claimed_name", type_=users.c.name.type),
        groups=groups,
    )
    changed = sa.or_(
        users.c.email.is_distinct_from(insert_stmt.excluded.email),
        users.c.groups.is_distinct_from(insert_stmt.excluded.groups),
    )
    upsert = insert_stmt.on_conflict_do_update(
        index_elements=[users.c.subject],
        set_={"email": email, "groups": groups, "updated_at": now},
        where=changed,
    ).returning(*_COLUMNS)
    written = upsert.cte("written")
    unchanged = _by_subject.where(~sa.exists(sa.select(written.c.id)))
    return sa.select(written).union_all(unchanged)


_upsert = _upsert_from_identity()


def _filter(user_filter: UserFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [_NOT_ERASED]
    if user_filter.email_contains:
        where.append(users.c.email.icontains(user_filter.email_contains, autoescape=True))
    if user_filter.is_active is not None:
        where.append(users.c.is_active.is_(user_filter.is_active))
    return where


class SqlUserRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def upsert_from_identity(self, identity: Identity, now: datetime) -> User:
        name = identity.name or identity.email.split("@")[0]
        claims = {
            "claimed_subject": identity.subject,
            "claimed_email": identity.email,
            "claimed_name": name,
            "claimed_groups": list(identity.groups),
            "now": now,
        }
        row = (await self._conn.execute(_upsert, claims)).first()
        if row is None:  # a concurrent first sign-in committed after this statement's snapshot
            subject = {"claimed_subject": identity.subject}
            row = (await self._conn.execute(_by_subject, subject)).one()
        return _user(row)

    async def get_by_subject(self, subject: str) -> User | None:
        rows, _ = await fetch(self._conn, _by_subject, {"claimed_subject": subject})
        return _user(rows[0]) if rows else None

    async def get_many(self, ids: Sequence[UUID]) -> list[User | None]:
        return await rows_for_keys(self._conn, _by_id, ids, _user)

    async def list_page(self, request: PageRequest, user_filter: UserFilter) -> Page[User]:
        statement = (
            sa.select(*_COLUMNS)
            .where(*_filter(user_filter), *keyset_bounds(users, request))
            .order_by(*scan_order(users, request))
            .limit(request.first + 1)
        )
        rows = [_user(row) for row in await self._conn.execute(statement)]
        return Page.from_overfetch(rows, request)

    async def count(self, user_filter: UserFilter) -> int:
        statement = sa.select(sa.func.count()).select_from(users).where(*_filter(user_filter))
        return int((await self._conn.execute(statement)).scalar_one())

    async def save(self, user: User) -> User:
        statement = (
            sa.update(users)
            .where(users.c.id == user.id)
            .values(
                name=user.name,
                language=user.language,
                is_active=user.is_active,
                updated_at=user.updated_at,
            )
            .returning(*_COLUMNS)
        )
        return _user((await self._conn.execute(statement)).one())
