"""A user with 100,000 submissions pages through them by index, newest first, filtered or
not: the plan reads one page's rows from an index (no sort, no scan of the user's rows).

Run with -s to see each plan and its execution time (docs/api.md quotes them)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.history import EVERY_SUBMISSION, SubmissionFilter
from domain.submissions import SubmissionStatus
from persistence.driver import _arguments, _compile
from persistence.submissions import _filter_values, _owner_pages, _shape
from tests.factories import make_model, make_user
from tests.integration.conftest import TokenFactory, gql

ROWS = 100_000


async def _fill(db: AsyncEngine) -> tuple[UUID, UUID, UUID]:
    owner = await make_user(db, "busy@example.com")
    other = await make_user(db, "other@example.com")
    iris, wine = await make_model(db, "iris"), await make_model(db, "wine")
    fill = sa.text(
        """INSERT INTO submissions (owner_id, model_id, input, status, created_at, updated_at)
        SELECT CASE WHEN n % 10 = 0 THEN CAST(:other AS uuid) ELSE CAST(:owner AS uuid) END,
               CASE WHEN n % 7 = 0 THEN CAST(:wine AS uuid) ELSE CAST(:iris AS uuid) END,
               '{}'::jsonb,
               CASE WHEN n % 51 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END,
               CAST(:start AS timestamptz) + n * interval '1 second',
               CAST(:start AS timestamptz) + n * interval '1 second'
        FROM generate_series(1, CAST(:rows AS integer)) AS n"""
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.begin() as conn:
        parameters = {"owner": owner, "other": other, "iris": iris, "wine": wine}
        await conn.execute(fill, {**parameters, "start": start, "rows": ROWS + ROWS // 9})
        await conn.execute(sa.text("ANALYZE submissions"))
    return owner, wine, iris


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


CASES = {
    "newest first": (None, EVERY_SUBMISSION, True),
    "newest first, page 2,500": (None, "deep", True),
    "oldest first": (None, EVERY_SUBMISSION, False),
    "by status": (SubmissionStatus.FAILED, EVERY_SUBMISSION, True),
    "by model": (None, "wine", True),
    "by window": (None, "window", True),
}


async def test_a_page_of_100000_submissions_is_read_from_an_index(
    db: AsyncEngine, client: AsyncClient, token: TokenFactory
) -> None:
    owner, wine, _ = await _fill(db)
    for case in CASES:
        await _check_plan(db, owner, wine, case)
    await _time_pages_over_http(client, token("busy@example.com"))


async def _time_pages_over_http(client: AsyncClient, bearer: str) -> None:
    """Printed, not asserted: the machine is shared (docs/accounts.md quotes a run)."""
    query = """query($after: String) { submissions(first: 20, after: $after) {
      pageInfo { endCursor } edges { node { id status createdAt } } } }"""
    after, times = None, []
    for _ in range(30):
        started = time.perf_counter()
        body = await gql(client, query, {"after": after}, bearer)
        times.append((time.perf_counter() - started) * 1000)
        after = body["data"]["submissions"]["pageInfo"]["endCursor"]
    times.sort()
    print(f"\n30 pages over HTTP: median {times[15]:.1f} ms, slowest {times[-1]:.1f} ms")


async def _check_plan(db: AsyncEngine, owner: UUID, wine: UUID, case: str) -> None:
    status, where_name, descending = CASES[case]
    where = {
        "wine": SubmissionFilter(model_id=wine),
        "window": SubmissionFilter(
            created_after=datetime(2026, 1, 1, 10, tzinfo=UTC),
            created_before=datetime(2026, 1, 1, 20, tzinfo=UTC),
        ),
    }.get(str(where_name), EVERY_SUBMISSION)
    assert isinstance(where, SubmissionFilter)
    deep = where_name == "deep"
    statement = _owner_pages(_shape(status, where), deep, descending, False)
    async with db.connect() as conn:
        sync = conn.sync_connection
        assert sync is not None
        compiled = _compile(statement, sync.dialect)
        values = {"keys": [owner], "limit": 21, **_filter_values(status, where)}
        if deep:  # a cursor half way through: the page after it
            values["after_created_at"] = datetime(2026, 1, 1, 15, tzinfo=UTC)
            values["after_id"] = UUID(int=0)
        driver = sync.connection.driver_connection
        assert driver is not None
        started = time.perf_counter()
        [row] = await driver.fetch(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + compiled.sql,
            *_arguments(compiled, values),
        )
        elapsed = time.perf_counter() - started
        text = await driver.fetch(
            "EXPLAIN (ANALYZE, COSTS OFF) " + compiled.sql, *_arguments(compiled, values)
        )
    # the pool's connections decode json themselves
    [explained] = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    nodes = _nodes(explained["Plan"])
    print(f"\n{case}: {explained['Execution Time']:.2f} ms ({elapsed * 1000:.1f} ms round trip)")
    print("\n".join(r[0] for r in text))
    kinds = {n["Node Type"] for n in nodes}
    assert "Sort" not in kinds, kinds
    assert "Seq Scan" not in kinds or all(
        n["Relation Name"] != "submissions" for n in nodes if n["Node Type"] == "Seq Scan"
    )
    scans = [n for n in nodes if n.get("Relation Name") == "submissions"]
    assert scans
    assert all("Index" in n["Node Type"] for n in scans), scans
    read = sum(n.get("Actual Rows", 0) * n.get("Actual Loops", 1) for n in scans)
    assert read <= 21 * 50, f"read {read} rows for a page of 21"
