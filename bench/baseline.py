"""The baseline: Starlette + asyncpg answering W1 and W2 with hand-written SQL, no GraphQL.

It recognises the benchmark's documents by their exact text and returns the bytes Assay
returns for them. `python -m bench.baseline --port P --database-url URL` serves it (uvicorn,
one process, 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.encoding import cursor, global_id, parse_global_id
from bench.workloads import SUBMISSIONS_PER_USER_PAGE, USERS_PAGE, W1_QUERY, W2_QUERY

Record = asyncpg.Record
Json = dict[str, Any]

USERS_SQL = """
SELECT id, email, name, created_at FROM users
ORDER BY created_at, id LIMIT $1"""

SUBMISSIONS_SQL = """
SELECT s.owner_id, s.id, s.model_id, s.status, s.created_at
FROM unnest($1::uuid[]) AS o(owner_id)
CROSS JOIN LATERAL (
  SELECT * FROM submissions
  WHERE submissions.owner_id = o.owner_id
  ORDER BY created_at, id LIMIT $2
) AS s"""

# Per submission: its model, its assets in position order, its results in keyset order.
CHILDREN_SQL = """
SELECT x.sid, m.id AS model_id, m.name,
  ARRAY(
    SELECT ROW(a.id, a.file_name, a.size_bytes)
    FROM submission_assets sa JOIN assets a ON a.id = sa.asset_id
    WHERE sa.submission_id = x.sid ORDER BY sa.position
  ) AS assets,
  ARRAY(
    SELECT ROW(r.id, r.prediction::text, r.confidence, r.created_at)
    FROM results r WHERE r.submission_id = x.sid ORDER BY r.created_at, r.id
  ) AS results
FROM unnest($1::uuid[], $2::uuid[]) AS x(sid, mid)
JOIN models m ON m.id = x.mid"""

SUBMISSION_SQL = """
SELECT s.id, s.status, s.input, s.attempts, s.created_at, s.updated_at,
       u.id AS owner_id, u.email, u.name AS owner_name,
       m.id AS model_id, m.name AS model_name, m.version
FROM submissions s JOIN users u ON u.id = s.owner_id JOIN models m ON m.id = s.model_id
WHERE s.id = $1"""

RESULTS_SQL = """
SELECT id, prediction, confidence, model_version, created_at FROM results
WHERE submission_id = $1 ORDER BY created_at, id"""


class Statements:
    """Counts requests and SQL statements, exported under Assay's metric names."""

    def __init__(self) -> None:
        self.total = 0
        self.requests = 0


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


def _asset(row: Record) -> Json:
    ident, file_name, size_bytes = row
    return {"id": global_id("Asset", ident), "fileName": file_name, "sizeBytes": size_bytes}


def _w1_result(row: Record) -> Json:
    ident, prediction, confidence, created_at = row
    return {
        "id": global_id("Result", ident),
        "prediction": orjson.loads(prediction),
        "confidence": confidence,
        "createdAt": created_at.isoformat(),
    }


def _page_info(has_next: bool, cursors: list[str]) -> Json:
    return {"hasNextPage": has_next, "endCursor": cursors[-1] if cursors else None}


async def w1(pool: asyncpg.Pool, statements: Statements) -> Json:
    async with pool.acquire() as conn:
        users = await conn.fetch(USERS_SQL, USERS_PAGE + 1)
        page = users[:USERS_PAGE]
        subs = await conn.fetch(
            SUBMISSIONS_SQL, [u["id"] for u in page], SUBMISSIONS_PER_USER_PAGE + 1
        )
        by_owner: dict[UUID, list[Record]] = {u["id"]: [] for u in page}
        for s in subs:
            by_owner[s["owner_id"]].append(s)
        shown = [s for rows in by_owner.values() for s in rows[:SUBMISSIONS_PER_USER_PAGE]]
        children = await conn.fetch(
            CHILDREN_SQL, [s["id"] for s in shown], [s["model_id"] for s in shown]
        )
    statements.total += 3
    child = {c["sid"]: c for c in children}
    user_edges = []
    for u in page:
        rows = by_owner[u["id"]]
        edges = [_w1_submission_edge(s, child[s["id"]]) for s in rows[:SUBMISSIONS_PER_USER_PAGE]]
        cursors = [cursor("s", s["created_at"], s["id"]) for s in rows[:SUBMISSIONS_PER_USER_PAGE]]
        user_edges.append(
            {
                "cursor": cursor("u", u["created_at"], u["id"]),
                "node": {
                    "id": global_id("User", u["id"]),
                    "email": u["email"],
                    "name": u["name"],
                    "createdAt": u["created_at"].isoformat(),
                    "submissions": {
                        "edges": edges,
                        "pageInfo": _page_info(len(rows) > SUBMISSIONS_PER_USER_PAGE, cursors),
                    },
                },
            }
        )
    cursors = [cursor("u", u["created_at"], u["id"]) for u in page]
    return {
        "data": {
            "users": {
                "edges": user_edges,
                "pageInfo": _page_info(len(users) > USERS_PAGE, cursors),
            }
        }
    }


def _w1_submission_edge(s: Record, c: Record) -> Json:
    return {
        "node": {
            "id": global_id("Submission", s["id"]),
            "status": s["status"],
            "createdAt": s["created_at"].isoformat(),
            "model": {"id": global_id("Model", c["model_id"]), "name": c["name"]},
            "assets": [_asset(a) for a in c["assets"]],
            "results": [_w1_result(r) for r in c["results"]],
        },
    }


async def w2(pool: asyncpg.Pool, statements: Statements, variables: Mapping[str, Any]) -> Json:
    type_name, ident = parse_global_id(str(variables["id"]))
    if type_name != "Submission":
        raise ValueError("the baseline answers only the benchmark's submission ids")
    async with pool.acquire() as conn:
        s = await conn.fetchrow(SUBMISSION_SQL, ident)
        results = await conn.fetch(RESULTS_SQL, ident) if s is not None else []
    statements.total += 2 if s is not None else 1
    if s is None:
        return {"data": {"submission": None}}
    return {
        "data": {
            "submission": {
                "id": global_id("Submission", s["id"]),
                "status": s["status"],
                "input": s["input"],
                "attempts": s["attempts"],
                "createdAt": s["created_at"].isoformat(),
                "updatedAt": s["updated_at"].isoformat(),
                "owner": {
                    "id": global_id("User", s["owner_id"]),
                    "email": s["email"],
                    "name": s["owner_name"],
                },
                "model": {
                    "id": global_id("Model", s["model_id"]),
                    "name": s["model_name"],
                    "version": s["version"],
                },
                "results": [
                    {
                        "id": global_id("Result", r["id"]),
                        "prediction": r["prediction"],
                        "confidence": r["confidence"],
                        "modelVersion": r["model_version"],
                        "createdAt": r["created_at"].isoformat(),
                    }
                    for r in results
                ],
            }
        }
    }


Handler = Callable[[asyncpg.Pool, Statements, Mapping[str, Any]], Awaitable[Json]]


async def _w1_handler(pool: asyncpg.Pool, statements: Statements, _: Mapping[str, Any]) -> Json:
    return await w1(pool, statements)


HANDLERS: Mapping[str, Handler] = {W1_QUERY: _w1_handler, W2_QUERY: w2}


def create_app(database_url: str, pool_size: int = 10) -> Starlette:
    statements = Statements()
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            database_url, min_size=2, max_size=pool_size, init=_init_connection
        )
        state["pool"] = pool
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await pool.close()

    async def graphql(request: Request) -> Response:
        payload = orjson.loads(await request.body())
        handler = HANDLERS.get(payload.get("query", ""))
        if handler is None:
            return Response(b'{"errors":[{"message":"unknown document"}]}', 400)
        data = await handler(state["pool"], statements, payload.get("variables") or {})
        statements.requests += 1
        return Response(orjson.dumps(data), media_type="application/json")

    async def metrics(_: Request) -> Response:
        text = (
            f"assay_db_statements_total {float(statements.total)}\n"
            f"assay_graphql_requests_total {float(statements.requests)}\n"
        )
        return Response(text, media_type="text/plain")

    async def healthz(_: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    routes = [
        Route("/graphql", graphql, methods=["POST"]),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    app = create_app(args.database_url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
