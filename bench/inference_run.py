"""S1-S3 and B1: Assay's runInference and batchInference against peer model servers.

Assay runs `assay serve` on its default settings (in-process workers) with the per-caller
limits raised; each peer serves the model file Assay built (bench/peers.py). All are up at
once and take turns: for each workload, each round, each server, the first server rotating
from round to round, so that the machine's drift falls on all. Every answer is checked against
the model's own predict_proba: one wrong answer fails the run. Errors (an HTTP error, a timeout,
a GraphQL error, a failed prediction) are counted and shown with the turn's figures.

Assay's B1 is one `batchInference` of N inputs, timed from sending it until all N results are
stored, read from the database (a count of the batch's rows in `results`, polled every
B1_POLL_SECONDS on a connection of the bench's own, opened and its count prepared before the
clock starts, as the HTTP connection is); the stored predictions are then checked.
A peer's B1 is one request of N rows, timed until its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import load, procs
from bench.encoding import parse_global_id
from bench.inference import (
    Oracle,
    Probabilities,
    Wire,
    assay_batch_body,
    assay_probabilities,
    assay_wire,
    checker,
    compare,
    input_rows,
)
from bench.inference_report import (
    CALLERS,
    NOTES,
    InferenceRow,
    every_round,
    floor_line,
    per_prediction_ms,
    summary,
    throughput,
    time_calls,
)
from bench.report import MIB

ASSAY_NAME = "assay (runInference / batchInference)"
S_ROWS = 64  # distinct inputs the callers cycle through
B1_POLL_SECONDS = 0.005
_STORED_COUNT = "SELECT count(*) FROM results WHERE submission_id = ANY($1)"
B1_TIMEOUT = 300.0
SEQUENTIAL_BOUND = 600.0  # seconds: S1's requests end by then whatever their count
QUIET_TIMEOUT = 30.0

Log = Callable[[str], None]


@dataclass(frozen=True)
class InferenceOptions:
    workloads: tuple[str, ...]  # of S1, S2, S3, B1, in that order
    peers: tuple[str, ...]
    rounds: int
    sequential: int  # S1's requests
    batch_inputs: int  # B1's
    warmup: float
    duration: float


@dataclass
class Target:
    """A server taking turns: its name, where and how to ask it, the processes it costs."""

    name: str
    port: int
    wire: Wire
    token: str | None
    api_pid: int
    db_pid: int | None = None
    # Work it goes on doing after its answers (Assay: events, notifications), which the CPU
    # window waits for. A peer has none, and one (LitServe with batching) polls its queue
    # without ever going idle: its window closes with the last answer.
    has_work_after_answers: bool = False

    @property
    def pids(self) -> tuple[int, ...]:
        return (self.api_pid,) if self.db_pid is None else (self.api_pid, self.db_pid)


def postgres_pid(workdir: Path) -> int | None:
    """The embedded PostgreSQL's postmaster (its backends are its children); None when the
    bench uses DATABASE_URL's server, whose CPU is not ours to count."""
    if os.environ.get("DATABASE_URL"):
        return None
    pid_file = workdir / "db" / "postgres" / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu(pids: Sequence[int]) -> list[float]:
    return [procs.cpu_seconds(p) for p in pids]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The bench's own cyclic garbage collector off in a timed window, after a collection (as
    timeit does). A full collection of the bench's heap (~200,000 objects: 115-135 ms of its
    CPU) fell inside B1's first round, after Assay had answered, every run."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle(pids: Sequence[int], quiet: float = 0.5, timeout: float = QUIET_TIMEOUT) -> None:
    """Wait (bounded) until the processes are idle: the previous run's work is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = sum(cpu(pids))
        time.sleep(quiet)
        if sum(cpu(pids)) - before < 0.05 * quiet * len(pids):
            return


def groups_run(port: int) -> tuple[float, float] | None:
    """(predict calls, inputs) Assay's batcher has run so far, from its /metrics; None when
    it cannot be read."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return None
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith("assay_inference_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("assay_inference_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return count, total


def fail_on_wrong(target: Target, workload: str, result: load.LoadResult) -> None:
    if result.wrong:
        raise RuntimeError(
            f"{workload} {target.name}: {result.wrong} wrong answers (a failed run, not a "
            f"figure): {list(result.wrong_examples)}"
        )


def _mean_group(groups: Sequence[tuple[float, float] | None]) -> str:
    """ ", groups of N on average" over the measured run, when Assay's /metrics told."""
    if len(groups) != 2 or groups[0] is None or groups[1] is None:
        return ""
    runs, inputs = groups[1][0] - groups[0][0], groups[1][1] - groups[0][1]
    return f", groups of {inputs / runs:.2f} on average ({runs:.0f})" if runs else ""


class InferenceBench:
    def __init__(self, options: InferenceOptions, oracle: Oracle, model_id: str, log: Log):
        self.options, self.oracle, self.model_id, self.log = options, oracle, model_id, log
        self.rows: list[InferenceRow] = []
        self.s_rows = input_rows(S_ROWS)
        self.s_expected = oracle.expected(self.s_rows)
        self.b_rows = input_rows(options.batch_inputs)
        self.b_expected = oracle.expected(self.b_rows)

    def assay_target(self, port: int, token: str, api_pid: int, db_pid: int | None) -> Target:
        wire = assay_wire(self.model_id, self.oracle.classes)
        return Target(ASSAY_NAME, port, wire, token, api_pid, db_pid, has_work_after_answers=True)

    # ------------------------------------------------------------ one turn

    def sequential_or_concurrent(self, target: Target, workload: str, turn: int) -> InferenceRow:
        o, callers = self.options, CALLERS[workload]
        bodies = [target.wire.single(r) for r in self.s_rows]
        check = checker(target.wire.reader, [[e] for e in self.s_expected])
        marks: list[list[float]] = []
        groups: list[tuple[float, float] | None] = []

        def mark() -> None:
            if target.has_work_after_answers:
                settle(target.pids)
                groups.append(groups_run(target.port))
            marks.append(cpu(target.pids))

        sequential = workload == "S1"
        load_average = os.getloadavg()[0]
        with procs.RssSampler(target.api_pid) as rss, _db_rss(target.db_pid) as db_rss:
            result = load.asyncio_load(
                target.port, target.wire.path, bodies, target.token, callers, o.warmup,
                SEQUENTIAL_BOUND if sequential else o.duration, mark, mark, check=check,
                limit=o.sequential if sequential else None,
            )  # fmt: skip
        fail_on_wrong(target, workload, result)
        if result.errors:
            self.log(f"{workload} {target.name} round {turn}: {result.errors} errors, such as "
                     f"{list(result.error_examples)}")  # fmt: skip
        (api0, *db0), (api1, *db1) = marks
        row = InferenceRow(
            workload=workload, server=target.name, round=turn, callers=callers,
            predictions=result.sent, seconds=result.duration, per_second=result.rps,
            p50_ms=result.p50_ms, p99_ms=result.p99_ms,
            api_cpu_ms=per_prediction_ms(api1 - api0, result.sent),
            db_cpu_ms=per_prediction_ms(db1[0] - db0[0], result.sent) if db0 else None,
            peak_rss_mib=rss.peak / MIB,
            db_peak_rss_mib=db_rss.peak / MIB if db_rss is not None else None,
            client_cpu_cores=result.client_cpu_share, load_average=load_average,
            errors=result.errors,
        )  # fmt: skip
        self.log(
            f"{workload} {target.name} round {turn}: {row.per_second:,.1f} pred/s, p50 "
            f"{row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, CPU ms/pred {row.cpu_ms or 0:.2f}"
            + _mean_group(groups)
        )
        return row

    def peer_batch(self, target: Target, turn: int) -> InferenceRow:
        """B1 on a peer: all N rows in one request, timed until the checked answer."""
        assert target.wire.many is not None
        check = checker(target.wire.reader, [self.b_expected])
        load_average = os.getloadavg()[0]
        with collector_paused():
            result = load.asyncio_load(
                target.port, target.wire.path, [target.wire.many(self.b_rows)], None, 1, 0.0,
                B1_TIMEOUT, check=check, limit=1,
            )  # fmt: skip
        fail_on_wrong(target, "B1", result)
        if result.errors or result.requests != 1:
            raise RuntimeError(f"B1 {target.name}: no answer: {list(result.error_examples)}")
        return self._b1_row(target, turn, result.p50_ms / 1000, load_average)

    def assay_batch(self, target: Target, database_url: str, turn: int) -> InferenceRow:
        settle(target.pids)
        load_average = os.getloadavg()[0]
        accepted, stored, predictions = asyncio.run(self._assay_batch(target, database_url))
        problem = compare(self.b_expected, predictions)
        if problem is not None:
            raise RuntimeError(f"B1 {target.name}: a stored result is wrong: {problem}")
        return self._b1_row(target, turn, stored, load_average, accepted)

    async def _assay_batch(
        self, target: Target, database_url: str
    ) -> tuple[float, float, list[Probabilities]]:
        url = f"http://{procs.HOST}:{target.port}"
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {target.token}"}
        content = assay_batch_body(self.model_id, self.b_rows)
        conn = await asyncpg.connect(database_url)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=B1_TIMEOUT) as client:
                await client.get("/healthz")  # the connection is open before the clock starts
                # And the count is prepared on the bench's connection: preparing it on the
                # first poll cost ~10 ms of the measure (4-6 ms a poll after).
                await conn.fetchval(_STORED_COUNT, [])
                with collector_paused():
                    started = time.perf_counter()
                    response = await client.post("/graphql", content=content, headers=headers)
                    accepted = time.perf_counter() - started
                    document = orjson.loads(response.content)
                    if response.status_code != 200 or document.get("errors"):
                        raise RuntimeError(f"B1 batchInference failed: {response.text[:1000]}")
                    ids = [parse_global_id(s["id"])[1] for s in document["data"]
                           ["batchInference"]["submissions"]]  # fmt: skip
                    stored = await _until_stored(conn, ids, started) - started
            found = await conn.fetch(
                "SELECT submission_id, prediction FROM results WHERE submission_id = ANY($1)", ids
            )
        finally:
            await conn.close()
        by_id: dict[Any, Any] = {r["submission_id"]: r["prediction"] for r in found}
        classes = self.oracle.classes
        return accepted, stored, [assay_probabilities(orjson.loads(by_id[i]), classes) for i in ids]

    def _b1_row(
        self,
        target: Target,
        turn: int,
        seconds: float,
        load_average: float,
        accepted: float | None = None,
    ) -> InferenceRow:
        n = self.options.batch_inputs
        row = InferenceRow(
            workload="B1", server=target.name, round=turn, callers=1, predictions=n,
            seconds=seconds, per_second=throughput(n, seconds), p50_ms=None, p99_ms=None,
            load_average=load_average, accepted_seconds=accepted,
        )  # fmt: skip
        label = f"round {turn}" if turn else "warm-up (not counted)"
        self.log(f"B1 {target.name} {label}: {n} inputs in {seconds:.3f} s")
        return row

    # ------------------------------------------------------------ turns

    def run(self, targets: Sequence[Target], database_url: str) -> None:
        for workload in self.options.workloads:
            if workload == "B1" and self.options.warmup > 0:
                # As S1-S3 warm up before they are timed: a server's first batch of the
                # process pays its one-time work (Assay: its plans, statements prepared).
                for target in targets:
                    self.batch(target, database_url, 0)
            for turn in range(1, self.options.rounds + 1):
                shift = (turn - 1) % len(targets)
                for target in [*targets[shift:], *targets[:shift]]:
                    if workload == "B1":
                        row = self.batch(target, database_url, turn)
                    else:
                        row = self.sequential_or_concurrent(target, workload, turn)
                    self.rows.append(row)

    def batch(self, target: Target, database_url: str, turn: int) -> InferenceRow:
        """B1 on `target`: round `turn`, or its warm-up (0)."""
        if target.name == ASSAY_NAME:
            return self.assay_batch(target, database_url, turn)
        return self.peer_batch(target, turn)

    def floor(self) -> dict[int, float]:
        """The model in this process: predict_proba's median time for 1, 32 and 1,000 rows."""
        import numpy as np

        classifier = self.oracle.classifier
        out = {}
        for n, repeat in ((1, 500), (32, 500), (1000, 100)):
            matrix = np.asarray(input_rows(n), dtype=np.float64)
            out[n] = time_calls(partial(classifier.predict_proba, matrix), repeat)
        return out

    def tables(self, servers: Sequence[str], floor: dict[int, float]) -> str:
        lines = ["### Inference (best of the rounds)", "", *summary(self.rows, servers), ""]
        lines += [floor_line(floor), "", "### Inference, every round", ""]
        lines += [*every_round(self.rows), "", NOTES]
        return "\n".join(lines) + "\n"

    def record(self, floor: dict[int, float]) -> dict[str, object]:
        return {
            "rows": [{**asdict(r), "cpu_ms": r.cpu_ms} for r in self.rows],
            "floor_ms": floor,
            "b1_completion": "results counted in the database every "
            f"{B1_POLL_SECONDS * 1000:g} ms (Assay); the answer to one request (peers)",
        }


async def _until_stored(conn: asyncpg.Connection, ids: Sequence[Any], started: float) -> float:
    deadline = started + B1_TIMEOUT
    while time.perf_counter() < deadline:
        count = await conn.fetchval(_STORED_COUNT, ids)
        if count >= len(ids):
            return time.perf_counter()
        await asyncio.sleep(B1_POLL_SECONDS)
    raise RuntimeError(f"B1: not every result was stored within {B1_TIMEOUT} s")


def _db_rss(pid: int | None) -> contextlib.AbstractContextManager[procs.RssSampler | None]:
    """An RssSampler for PostgreSQL's processes, or a context giving None without them."""
    return procs.RssSampler(pid) if pid is not None else contextlib.nullcontext(None)
