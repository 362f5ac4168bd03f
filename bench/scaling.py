"""`python -m bench.scaling`: how Assay scales with processes on one PostgreSQL.

W2 (point lookups) and S2/S3 (runInference from 8 and 64 concurrent callers) against
`assay serve --workers N`, and the queue's inferences per second drained by N `assay worker`
processes, for N = 1, 2, 4; the same seed and options as
`python -m bench` (`--quick` for a short run). Each figure is one run on whatever machine
runs it: say how many cores it has next to the figures (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
import httpx

from bench import load, procs, workloads
from bench.load import LoadResult
from bench.run import Bench, database, log, parse_options

PROCESSES = (1, 2, 4)
QUEUED = 2000  # inferences queued per worker count, as batches of BATCH
BATCH = 500
RUN = """mutation S($input: RunInferenceInput!) {
  runInference(input: $input) { result { prediction } }
}"""
CALLERS = {"S2": 8, "S3": 64}  # as bench/inference_report.py's
# Claims small enough that 4 workers all get work from 2,000 submissions.
WORKER_SETTINGS = {"ASSAY_WORKER_MAX_CLAIM": "100", "ASSAY_WORKER_BATCH_SIZE": "100"}


@dataclass(frozen=True)
class Figure:
    what: str
    processes: int
    per_second: float
    p99_ms: float | None = None
    cpu_ms: float | None = None  # CPU of every server process, per request


def table(figures: Sequence[Figure], cpus: int | None) -> str:
    """The figures as a Markdown table, with the machine's core count above it."""
    lines = [
        f"{cpus} CPU cores on this machine.",
        "",
        "| workload | processes | per second | p99 ms | server CPU ms/req |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        p99 = "-" if f.p99_ms is None else f"{f.p99_ms:.1f}"
        cpu = "-" if f.cpu_ms is None else f"{f.cpu_ms:.2f}"
        lines.append(f"| {f.what} | {f.processes} | {f.per_second:,.1f} | {p99} | {cpu} |")
    return "\n".join(lines)


def run_bodies(model_id: str) -> list[bytes]:
    return [
        workloads.body(RUN, "S", workloads.create_submission_variables(model_id, n))
        for n in range(64)
    ]


def timed(
    child: procs.Child, port: int, what: str, processes: int, load_run: Callable[..., LoadResult]
) -> Figure:
    """One timed run; the CPU of the server's whole process tree over it, per request."""
    cpu: list[float] = []

    def mark() -> None:
        cpu.append(procs.cpu_seconds(child.pid))

    result = load_run(at_start=mark, at_end=mark)
    if result.errors:
        raise RuntimeError(f"{what} with {processes} processes: {result.errors} errors, such "
                           f"as {list(result.error_examples)}")  # fmt: skip
    cpu_ms = (cpu[1] - cpu[0]) * 1000 / result.requests if result.requests else None
    figure = Figure(what, processes, result.rps, result.p99_ms, cpu_ms)
    log(f"{what} with {processes} server process(es): {figure.per_second:,.1f}")
    return figure


def serve_with_processes(bench: Bench, processes: int) -> list[Figure]:
    """W2, then S2 and S3, on `assay serve --workers N` (its queue workers off)."""
    o, port = bench.options, procs.free_port()
    argv = [str(procs.ASSAY), "serve", "--no-workers", "--workers", str(processes)]
    child = procs.start(
        f"assay-serve-x{processes}", [*argv, "--port", str(port)], bench.env, bench.workdir
    )
    w2 = workloads.w2(bench.submission_ids).bodies
    runs = run_bodies(bench.iris_id)
    try:
        procs.wait_http(child, f"http://{procs.HOST}:{port}/healthz")
        figures = [
            timed(child, port, "W2 req/s", processes, partial(
                load.drive, port, w2, bench.tokens["admin"], o.connections[-1], o.warmup,
                o.duration, o.tool,
            ))
        ]  # fmt: skip
        for name, callers in CALLERS.items():
            figures.append(
                timed(child, port, f"{name} predictions/s", processes, partial(
                    load.asyncio_load, port, "/graphql", runs, bench.tokens["inference"],
                    callers, o.warmup, o.duration,
                ))
            )  # fmt: skip
    finally:
        child.stop()
    return figures


def wait_idle(children: Sequence[procs.Child], timeout: float = 120.0) -> None:
    """Until the workers have started (loaded their models) and sit idle: under 20% of a
    core each (an idle worker polls; starting, one takes a whole core)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(procs.cpu_seconds(c.pid) for c in children)
        time.sleep(0.5)
        if sum(procs.cpu_seconds(c.pid) for c in children) - before < 0.1 * len(children):
            return


async def drained_per_second(url: str, since: float) -> tuple[int, float]:
    """(submissions queued after `since`, finished per second from first created to last
    finished), once none of them is PENDING or RUNNING."""
    conn = await asyncpg.connect(url)
    try:
        query = """SELECT count(*) FILTER (WHERE status IN ('PENDING', 'RUNNING')),
                          count(*),
                          extract(epoch FROM max(updated_at) - min(created_at))::float8
                   FROM submissions WHERE created_at > to_timestamp($1)"""
        for _ in range(1200):
            row = await conn.fetchrow(query, since)
            assert row is not None  # an aggregate always answers one row
            open_, total, seconds = row
            if total and not open_:
                return int(total), int(total) / max(float(seconds), 1e-9)
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    raise RuntimeError("the queue did not drain within 5 minutes")


def queue_with_workers(bench: Bench, server_port: int, processes: int) -> Figure:
    env = {**bench.env, **WORKER_SETTINGS}
    workers = [
        procs.start(f"assay-worker-{processes}-{i}", [str(procs.ASSAY), "worker"], env,
                    bench.workdir)
        for i in range(processes)
    ]  # fmt: skip
    try:
        wait_idle(workers)
        since = time.time()
        body = workloads.w5_body(bench.iris_id, BATCH)
        for _ in range(QUEUED // BATCH):
            response = httpx.post(
                f"http://{procs.HOST}:{server_port}/graphql", content=body, timeout=120,
                headers={"Authorization": f"Bearer {bench.tokens['batch']}",
                         "Content-Type": "application/json"},
            )  # fmt: skip
            if response.status_code != 200 or b'"errors"' in response.content:
                raise RuntimeError(f"batchInference: {response.text[:2000]}")
        total, per_second = asyncio.run(drained_per_second(bench.url, since))
    finally:
        for worker in workers:
            worker.stop()
    log(f"queue with {processes} worker(s): {total} inferences, {per_second:,.1f}/s")
    return Figure("queue inferences/s", processes, per_second)


def measure_all(bench: Bench) -> list[Figure]:
    served = [f for n in PROCESSES for f in serve_with_processes(bench, n)]
    kinds = list(dict.fromkeys(f.what for f in served))
    figures = sorted(served, key=lambda f: (kinds.index(f.what), f.processes))
    port = procs.free_port()
    argv = [str(procs.ASSAY), "serve", "--no-workers", "--port", str(port)]
    server = procs.start("assay-serve-queue", argv, bench.env, bench.workdir)
    try:
        procs.wait_http(server, f"http://{procs.HOST}:{port}/healthz")
        figures += [queue_with_workers(bench, port, n) for n in PROCESSES]
    finally:
        server.stop()
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options([*(argv if argv is not None else sys.argv[1:]), "--only", "W2"])
    workdir = Path(tempfile.mkdtemp(prefix="assay-scaling-"))
    try:
        with database(workdir) as url:
            try:
                bench = Bench(options, workdir, url)
                bench.prepare()
                figures = measure_all(bench)
            finally:
                procs.stop_all()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(figures, os.cpu_count()))


if __name__ == "__main__":
    main()
