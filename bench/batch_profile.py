"""Where a 1,000-input batchInference's time and CPU go, in-process, from sending until stored.

`python -m bench.batch_profile [--rounds N] [--inputs N] [--profile] [--accept-only]`: an
embedded PostgreSQL in a temporary directory, the composition root's app with its in-process
workers (default settings, limits raised), one signed-in caller sending bench/inference.py's
B1 body through httpx's in-process ASGI transport, then polling (every 2 ms, its own
connection) until the batch's results are all stored. Per round: wall time until answered and
until stored, CPU of this process (the app, its workers and the client) and of PostgreSQL's
processes. The first round warms up and is not counted; medians of the rest are printed. With
--profile, one more round under cProfile, and its largest own times. With --accept-only, no
workers run (`run_workers=false`): each round is the request alone, from sending until
answered, so its CPU is the request's (the client's included) without the workers' beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time

import asyncpg
import httpx
import orjson

from bench import procs
from bench.inference import assay_batch_body, input_rows
from bench.inference_profile import _model_id, unlimited_cluster
from server.app import tune_collector
from server.bootstrap import build_app, local_issuer
from server.settings import Settings


async def _one(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: bytes,
    headers: dict[str, str],
    accept_only: bool = False,
) -> tuple[float, float]:
    started = time.perf_counter()
    response = await client.post("/graphql", content=body, headers=headers)
    answered = time.perf_counter() - started
    answer = orjson.loads(response.content)
    if "errors" in answer:
        raise RuntimeError(answer)
    ids = [s["id"] for s in answer["data"]["batchInference"]["submissions"]]
    if accept_only:
        return answered, answered
    batch = await db.fetchval("SELECT batch_id FROM submissions ORDER BY created_at DESC LIMIT 1")
    while True:
        stored = await db.fetchval(
            "SELECT count(*) FROM results r JOIN submissions s ON s.id = r.submission_id "
            "WHERE s.batch_id = $1",
            batch,
        )
        if stored == len(ids):
            return answered, time.perf_counter() - started
        await asyncio.sleep(0.002)


async def _rounds(
    settings: Settings,
    url: str,
    pg_pid: int,
    rounds: int,
    inputs: int,
    profile: bool,
    accept_only: bool,
) -> None:
    app = build_app(settings, url)
    tune_collector()  # as the served process does
    bearer = local_issuer(settings).issue(
        email="profile@example.com", name="profile", groups=[], subject="sub-profile"
    )
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    db = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    figures: list[tuple[float, float, float, float]] = []
    async with app.router.lifespan_context(app):
        model_id = await _model_id(app, bearer)
        body = assay_batch_body(model_id, input_rows(inputs))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for n in range(rounds + 1):
                await asyncio.sleep(0.5)  # the previous round's after-work settles
                cpu, pg = time.process_time(), procs.cpu_seconds(pg_pid)
                answered, stored = await _one(client, db, body, headers, accept_only)
                cpu, pg = time.process_time() - cpu, procs.cpu_seconds(pg_pid) - pg
                print(
                    f"round {n}: answered {answered * 1000:.0f} ms, stored {stored * 1000:.0f}"
                    f" ms, Python CPU {cpu * 1000:.0f} ms, PostgreSQL CPU {pg * 1000:.0f} ms"
                )
                if n:
                    figures.append((answered, stored, cpu, pg))
            if profile:
                await asyncio.sleep(0.5)
                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
                await _one(client, db, body, headers, accept_only)
                await asyncio.sleep(0.3)
                profiler.disable()
                stats = pstats.Stats(profiler)
                stats.sort_stats("tottime").print_stats(30)
                ours = r"/(domain|graph|persistence|server)/"
                stats.sort_stats("cumulative").print_stats(ours, 60)
    await db.close()
    medians = [statistics.median(column) * 1000 for column in zip(*figures, strict=True)]
    print(
        "median: answered {:.0f} ms, stored {:.0f} ms, Python CPU {:.0f} ms, "
        "PostgreSQL CPU {:.0f} ms".format(*medians)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--accept-only", action="store_true", help="no workers: the request alone")
    args = parser.parse_args()
    overrides = {"run_workers": False} if args.accept_only else {}
    with unlimited_cluster("assay-batch-profile-", **overrides) as (settings, url, pg_pid):
        asyncio.run(
            _rounds(settings, url, pg_pid, args.rounds, args.inputs, args.profile, args.accept_only)
        )


if __name__ == "__main__":
    main()
