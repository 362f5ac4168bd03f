"""The users repository."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.pagination import Page, PageRequest
from domain.principal import Identity
from domain.users import User, UserFilter
from persistence.batching import Row, after_keyset, any_of, rows_in_key_order
from persistence.tables import users


def _user(row: Row) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        subject=m["subject"],
        email=m["email"],
        name=m["name"],
        language=m["language"],
        is_active=m["is_active"],
        groups=tuple(m["groups"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _filter(user_filter: UserFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
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
        groups = list(identity.groups)
        insert_stmt = insert(users).values(
            subject=identity.subject, email=identity.email, name=name, groups=groups
        )
        changed = sa.or_(
            users.c.email.is_distinct_from(insert_stmt.excluded.email),
            users.c.groups.is_distinct_from(insert_stmt.excluded.groups),
        )
        upsert = insert_stmt.on_conflict_do_update(
            index_elements=[users.c.subject],
            set_={"email": identity.email, "groups": groups, "updated_at": now},
            where=changed,
        ).returning(*users.c)
        # One round trip on the hot path: write only when a claim changed, else read.
        written = upsert.cte("written")
        unchanged = sa.select(users).where(
            users.c.subject == identity.subject, ~sa.exists(sa.select(written.c.id))
        )
        row = (await self._conn.execute(sa.select(written).union_all(unchanged))).first()
        if row is None:  # a concurrent first sign-in committed after this statement's snapshot
            row = (
                await self._conn.execute(
                    sa.select(users).where(users.c.subject == identity.subject)
                )
            ).one()
        return _user(row)

    async def get_many(self, ids: Sequence[UUID]) -> list[User | None]:
        return await rows_in_key_order(
            self._conn, sa.select(users).where(any_of(users.c.id, ids)), ids, _user
        )

    async def list_page(self, request: PageRequest, user_filter: UserFilter) -> Page[User]:
        statement = (
            sa.select(users)
            .where(*_filter(user_filter), *after_keyset(users, request))
            .order_by(users.c.created_at, users.c.id)
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
            .returning(*users.c)
        )
        return _user((await self._conn.execute(statement)).one())
