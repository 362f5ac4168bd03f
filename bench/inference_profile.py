"""Where a runInference's CPU goes: cProfile over sequential calls, by library.

`python -m bench.inference_profile [--calls N] [--callers C] [--top K]`: an embedded
PostgreSQL in a temporary directory, the composition root's app (default settings, limits
raised), the default models, C signed-in callers at once (1: one after the other; 8: S2's
shape) sending bench/inference.py's RUN_INFERENCE through httpx's in-process ASGI transport:
a warm-up, N calls timed, then N calls under cProfile. Prints the CPU per call (this
process: the app and the client), the mean group the batcher formed (predict calls per
call), each library's share of it (own time, cProfile's tottime, a builtin's time counted to
its caller's library), the client's (httpx) shown apart, and with --top the K functions of
most own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.inference import FEATURES, RUN_INFERENCE
from persistence import migrate
from persistence.embedded import EmbeddedPostgres
from server.bootstrap import build_app, local_issuer, register_models
from server.settings import Settings
from telemetry import metrics

GROUPS = (
    ("strawberry", "Strawberry"),
    ("graphql", "graphql-core"),
    ("httpx", "httpx (the client)"),
    ("starlette", "Starlette"),
    ("sqlalchemy", "SQLAlchemy"),
    ("asyncpg", "asyncpg"),
    ("sklearn", "scikit-learn and NumPy"),
    ("numpy", "scikit-learn and NumPy"),
    ("asyncio", "asyncio"),
    ("/graph/", "Assay graph/"),
    ("/domain/", "Assay domain/"),
    ("/persistence/", "Assay persistence/"),
    ("/integrations/", "Assay integrations/"),
    ("/telemetry/", "Assay telemetry/"),
    ("/auth/", "Assay auth/"),
)


def group_of(filename: str) -> str:
    for marker, name in GROUPS:
        if marker in filename:
            return name
    if filename == "~":
        return "builtins"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    return f"stdlib {Path(filename).stem}"


async def _calls(app: Any, bearer: str, model_id: str, calls: int, callers: int) -> None:
    """`calls` calls, from `callers` concurrent callers (each one after the other)."""
    shares = [calls // callers + (i < calls % callers) for i in range(callers)]
    await asyncio.gather(*(_caller(app, bearer, model_id, n) for n in shares if n))


async def _caller(app: Any, bearer: str, model_id: str, calls: int) -> None:
    body = orjson.dumps(
        {
            "query": RUN_INFERENCE,
            "variables": {
                "input": {"modelId": model_id, "input": dict.fromkeys(FEATURES, 1.0)},
            },
        }
    )
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(calls):
            response = await client.post("/graphql", content=body, headers=headers)
            answer = response.json()
            if "errors" in answer:
                raise RuntimeError(answer)


def _groups() -> tuple[float, float]:
    """(predict calls, inputs) the batcher has run in this process so far."""
    count = total = 0.0
    for metric in metrics.INFERENCE_BATCH_SIZE.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return count, total


async def _profiled(
    settings: Settings,
    url: str,
    warmup: int,
    calls: int,
    callers: int,
    top: int,
    save: Path | None,
) -> None:
    app = build_app(settings, url)
    bearer = local_issuer(settings).issue(
        email="profile@example.com", name="profile", groups=[], subject="sub-profile"
    )
    async with app.router.lifespan_context(app):
        model_id = await _model_id(app, bearer)
        await _calls(app, bearer, model_id, warmup, callers)
        groups_before = _groups()
        started, wall = time.process_time(), time.perf_counter()
        await _calls(app, bearer, model_id, calls, callers)
        plain, wall = time.process_time() - started, time.perf_counter() - wall
        groups = _groups()
        runs, inputs = (groups[0] - groups_before[0]), (groups[1] - groups_before[1])
        profile = cProfile.Profile(time.process_time)  # CPU, not the waits for PostgreSQL
        started = time.process_time()
        profile.enable()
        await _calls(app, bearer, model_id, calls, callers)
        profile.disable()
        cpu = time.process_time() - started
    print(
        f"{callers} caller(s): {calls / wall:.0f} calls/s unprofiled; groups of "
        f"{inputs / runs if runs else 0:.2f} inputs on average ({runs:.0f} predict calls)"
    )
    if save is not None:
        profile.dump_stats(save)  # for pstats: callers, callees
    _report(profile, plain, cpu, calls, top)


async def _model_id(app: Any, bearer: str) -> str:
    query = "{ models { id name } }"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        response = await client.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {bearer}"}
        )
    for model in (response.json().get("data") or {}).get("models") or ():
        if model["name"] == "iris-species":
            return str(model["id"])
    raise RuntimeError(response.text)


def _report(profile: cProfile.Profile, plain: float, cpu: float, calls: int, top: int) -> None:
    stats: Any = getattr(pstats.Stats(profile), "stats")  # noqa: B009 - untyped; {(file, line, name): (cc, nc, tt, ct, callers)}
    shares: Counter[str] = Counter()
    for (filename, _, _), (_, _, own, _, callers) in stats.items():
        if filename != "~":
            shares[group_of(filename)] += own
            continue
        # A builtin's time goes to whoever called it (json, regexes, the event loop's select).
        for (caller, _, _), (_, _, spent, _) in callers.items():
            shares[group_of(caller)] += spent
    total = sum(shares.values())
    print(f"{calls} calls, {plain / calls * 1000:.2f} ms CPU a call (client included)")
    print(f"under cProfile {cpu / calls * 1000:.2f} ms a call; the shares of that:")
    for name, own in shares.most_common(16):
        print(f"{own / total:6.1%}  {name}")
    if top:
        print(f"the {top} functions of most own time (us a call, own / with callees):")
        ranked = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
        for (filename, line, name), (_, _, own, cumulative, _) in ranked:
            where = f"{group_of(filename)}:{Path(filename).name}:{line}"
            print(f"{own / calls * 1e6:7.1f} {cumulative / calls * 1e6:8.1f}  {name} ({where})")


@contextlib.contextmanager
def unlimited_cluster(prefix: str, **overrides: Any) -> Iterator[tuple[Settings, str, int]]:
    """A throwaway embedded PostgreSQL, migrated, the default models registered, and settings
    whose per-caller limits refuse nothing: (settings, database URL, postmaster pid)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    postgres = EmbeddedPostgres(root / "pg")
    url = postgres.start()
    try:
        asyncio.run(migrate.upgrade_url(url))
        settings = Settings(
            data_dir=root / "data",
            rate_limit_burst=1e12,
            rate_limit_points_per_second=1e12,
            inference_burst=1e12,
            inference_rate_per_second=1e12,
            **overrides,
        )
        register_models(settings, url)
        pid = int((root / "pg" / "postgres" / "postmaster.pid").read_text().split()[0])
        yield settings, url, pid
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--callers", type=int, default=1, help="concurrent callers (1)")
    parser.add_argument("--top", type=int, default=0, help="list the K costliest functions")
    parser.add_argument("--save", type=Path, help="write the profile there (pstats' format)")
    args = parser.parse_args()
    if args.callers < 1:
        parser.error("--callers must be at least 1")
    with unlimited_cluster("assay-profile-", run_workers=False) as (settings, url, _):
        asyncio.run(
            _profiled(settings, url, args.warmup, args.calls, args.callers, args.top, args.save)
        )


if __name__ == "__main__":
    main()
