"""Projections read in one statement (persistence/projections.py), against a real PostgreSQL:
the same text on the driver and through SQLAlchemy, access rules as predicates, anomalies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import projections as p
from domain.access import AdministratorsOnly
from domain.errors import Forbidden, NotFound
from domain.ids import to_global_id
from domain.pagination import PageRequest
from domain.principal import Principal
from persistence.database import create_engine, without_driver_reads
from persistence.unit_of_work import SqlUnitOfWork
from tests.factories import make_asset, make_model, make_result, make_submission, make_user


@pytest.fixture
async def engine(postgres_url: str, db: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0, on_statement=lambda: None)
    yield engine
    await engine.dispose()


def _principal(user_id: uuid.UUID, *, is_admin: bool = False) -> Principal:
    return Principal(user_id, f"sub-{user_id}", ("admin",) if is_admin else (), is_admin)


SUBMISSION = p.Shape(
    "Submission",
    (
        ("id", p.GlobalId("Submission")),
        ("status", p.Attribute("status", p.Kind.TEXT, True, ("PENDING", "SUCCEEDED"))),
        ("error", p.Attribute("error", p.Kind.TEXT, False)),
        ("createdAt", p.Attribute("created_at", p.Kind.MOMENT, True)),
        (
            "results",
            p.Many(
                p.Join("Result", "submission_id", p.Parent("id")),
                p.Shape(
                    "Result",
                    (
                        ("confidence", p.Attribute("confidence", p.Kind.FLOAT, False)),
                        (
                            "alternatives",
                            p.Nested(
                                "alternatives", (("c", p.NestedValue("confidence", p.Kind.FLOAT)),)
                            ),
                        ),
                    ),
                ),
            ),
        ),
    ),
)
OWNER_PAGE = p.Window(
    p.Join("Submission", "owner_id", p.Viewer()),
    0,
    (("totalCount", "totalCount"), ("edges", "edges"), ("pageInfo", "pageInfo")),
    (("cursor", p.Cursor()), ("node", SUBMISSION)),
    (("hasNextPage", "hasNextPage"), ("endCursor", "endCursor")),
)
PAGE = p.Projection((("submissions", p.Root(OWNER_PAGE)),))


def _by_id(shape: p.Shape) -> p.Root:
    return p.Root(p.One(p.Join(shape.entity, value=p.Argument()), shape, is_required=True), 0)


def _slots(first: int = 2, status: str | None = None) -> list[p.SlotValue]:
    return [p.PageArguments(PageRequest(first=first), (("status", status),))]


async def _read(
    engine: AsyncEngine, principal: Principal, projection: p.Projection, slots: Any
) -> Any:
    async with SqlUnitOfWork(engine, read_only=True) as uow:
        return orjson.loads(await uow.projections.read(principal, projection, slots))


async def test_a_page_of_the_viewer_is_one_statement_with_python_spellings(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    ann, model = await make_user(db, "ann@example.com"), await make_model(db)
    subs = [await make_submission(db, ann, model, status="SUCCEEDED") for _ in range(3)]
    await make_result(db, subs[0], confidence=1.0, alternatives=[{"value": 1, "confidence": 1}])
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    data = await _read(engine, _principal(ann), PAGE, _slots())

    page = data["submissions"]
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["pageInfo"]["endCursor"] == page["edges"][1]["cursor"]
    first = page["edges"][0]["node"]
    assert first["id"] == to_global_id("Submission", subs[0])
    assert first["createdAt"].endswith("+00:00")
    assert first["results"] == [{"confidence": 1.0, "alternatives": [{"c": 1.0}]}]
    assert type(first["results"][0]["confidence"]) is float  # PostgreSQL writes "1"
    assert statements == []  # on the driver: SQLAlchemy's execution layer saw nothing


async def test_through_sqlalchemy_the_text_is_the_same(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    ann, model = await make_user(db, "ann@example.com"), await make_model(db)
    for _ in range(3):
        await make_submission(db, ann, model)
    on_driver = await _read(engine, _principal(ann), PAGE, _slots(first=1))
    without_driver_reads(engine)

    through_sqlalchemy = await _read(engine, _principal(ann), PAGE, _slots(first=1))

    assert through_sqlalchemy == on_driver


async def test_the_access_rules_filter_rows_for_users_and_not_for_administrators(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    ann, bob, model = await make_user(db), await make_user(db), await make_model(db)
    mine = await make_submission(db, ann, model)
    theirs = await make_submission(db, bob, model)
    lookup = p.Projection(
        (
            (
                "s",
                _by_id(p.Shape("Submission", (("id", p.GlobalId("Submission")),))),
            ),
        )
    )

    assert await _read(engine, _principal(ann), lookup, [mine]) == {
        "s": {"id": to_global_id("Submission", mine)}
    }
    with pytest.raises(NotFound):  # as if it did not exist, as the services say
        await _read(engine, _principal(ann), lookup, [theirs])
    admin = await _read(engine, _principal(ann, is_admin=True), lookup, [theirs])
    assert admin == {"s": {"id": to_global_id("Submission", theirs)}}


async def test_users_list_is_forbidden_to_non_administrators(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    ann = await make_user(db)
    window = p.Window(p.Join("User"), 0, (("totalCount", "totalCount"),))
    users = p.Projection((("users", p.Root(window, rule=AdministratorsOnly())),))
    slots = [p.PageArguments(PageRequest(), (("email_contains", None), ("is_active", None)))]

    with pytest.raises(Forbidden):
        await _read(engine, _principal(ann), users, slots)
    assert (await _read(engine, _principal(ann, is_admin=True), users, slots))["users"][
        "totalCount"
    ] >= 1


async def test_a_value_graphql_cannot_carry_is_an_anomaly(
    engine: AsyncEngine, db: AsyncEngine
) -> None:
    ann = await make_user(db)
    big = await make_asset(db, ann, size_bytes=2**31)
    size = p.Attribute("size_bytes", p.Kind.INT, True)
    lookup = p.Projection((("a", _by_id(p.Shape("Asset", (("size", size),)))),))

    with pytest.raises(p.Anomaly):
        await _read(engine, _principal(ann), lookup, [big])
