"""`python -m bench`: seed, start Assay and the baseline, check equal output, time W1-W8;
then S1-S3 and B1, Assay's inference against peer model servers (bench/inference_run.py).

W1 and W2 run on two Assay servers, one after the other on the same database: with
compiled execution (the default settings) and with the reference executor
(ASSAY_COMPILED_EXECUTION=false); W3-W7 on the last one started (the compiled one).
PostGraphile 5 (bench/postgraphile.py) answers W1 and W2 on the same database, timed in turns
with the last Assay server so that the machine's drift falls on both; it is skipped, with the
reason, where Node.js 22+ cannot be found or installed (--no-postgraphile skips it anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import orjson

from bench import (
    fair_queue,
    fanout,
    inference_report,
    load,
    measure,
    monitoring,
    peers,
    postgraphile,
    procs,
    sockets,
    storms,
    workloads,
)
from bench.compile import compile_times
from bench.encoding import global_id
from bench.inference import MODEL_NAME, Oracle
from bench.inference_run import InferenceBench, InferenceOptions, Target, postgres_pid
from bench.report import MIB, Report, Row, markdown, write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HTTP_TIMEOUT = 60.0
W2_IDS = 1000

# The Assay servers, in the order they run (the last one also runs W3-W5): a name for the
# table and the settings that make it.
ASSAY_VARIANTS: Mapping[str, tuple[str, Mapping[str, str]]] = {
    "reference": ("assay (reference)", {"ASSAY_COMPILED_EXECUTION": "false"}),
    "compiled": ("assay (compiled)", {}),
}


FAIR_QUEUE_BACKLOGS = ("queue1", "queue2", "queue3", "queue4")
SEEDED_WORKLOADS = frozenset({"W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "M1"})
INFERENCE_WORKLOADS = inference_report.WORKLOADS

BENCH_LIMITS = {
    "ASSAY_MAX_QUERY_COST": "1000000",
    "ASSAY_RATE_LIMIT_POINTS_PER_SECOND": "1000000000",
    "ASSAY_RATE_LIMIT_BURST": "1000000000",
    "ASSAY_INFERENCE_RATE_PER_SECOND": "1000000000",
    "ASSAY_INFERENCE_BURST": "1000000000",
}


@dataclass(frozen=True)
class Options:
    users: int
    submissions_per_user: int
    warmup: float
    duration: float
    first_warmup: float  # each server's first turn at a read workload (JIT, caches, heap)
    connections: tuple[int, ...]
    tool: str
    subscribers: int
    fanout_events: int
    batch_size: int
    idle_sockets: int
    storms: int
    workloads: frozenset[str]
    keep: bool
    executors: tuple[str, ...] = tuple(ASSAY_VARIANTS)
    postgraphile: bool = True
    peers: tuple[str, ...] = peers.DEFAULT_PEERS
    rounds: int = 3
    sequential: int = 200
    accept_encoding: str | None = None  # W1-W2's Accept-Encoding: None asks for no compression


def parse_options(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    p.add_argument("--users", type=int, help="seeded users (1000; --quick 200)")
    p.add_argument("--submissions-per-user", type=int, default=10)
    p.add_argument("--warmup", type=float, help="seconds before each timed run (2; --quick 1)")
    p.add_argument("--duration", type=float, help="seconds of each timed run (10; --quick 3)")
    p.add_argument(
        "--first-warmup",
        type=float,
        help="seconds of warm-up before each server's first timed run of a workload "
        "(10; --quick 5): PostGraphile's W2 costs a third more CPU per request in its "
        "first seconds (V8 still compiling), which a 1-2 s warm-up put in the timed window",
    )
    p.add_argument("--connections", help="comma-separated (8,32; --quick 8)")
    p.add_argument("--tool", choices=["auto", "wrk", "asyncio"], default="auto")
    p.add_argument("--subscribers", type=int, default=200)
    p.add_argument("--fanout-events", type=int, help="W4 submissions (30; --quick 5)")
    p.add_argument("--batch-size", type=int, default=1000, help="W5 and B1 inputs")
    p.add_argument("--idle-sockets", type=int, help="W7 signed-in sockets (10000; --quick 1000)")
    p.add_argument("--storms", type=int, help="W8 subscription storms (5; --quick 2)")
    p.add_argument(
        "--only",
        default=",".join([*sorted(SEEDED_WORKLOADS), *INFERENCE_WORKLOADS]),
        help="workloads to run (W1-W8, M1, S1-S3, B1)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--no-postgraphile", action="store_true", help="no PostGraphile 5 rows")
    p.add_argument(
        "--peers",
        default=",".join(peers.DEFAULT_PEERS),
        help=f"model servers timed against Assay in S1-S3 and B1, of {', '.join(peers.PEERS)}",
    )
    p.add_argument("--no-peers", action="store_true", help="S1-S3 and B1 on Assay alone")
    p.add_argument("--rounds", type=int, help="turns of each server at S1-S3, B1 (3; --quick 1)")
    p.add_argument("--sequential", type=int, help="S1's requests (200; --quick 50)")
    p.add_argument(
        "--accept-encoding",
        help="the HTTP load's Accept-Encoding, e.g. 'br, gzip' (default: none, uncompressed)",
    )
    p.add_argument(
        "--executors",
        default=",".join(ASSAY_VARIANTS),
        help="Assay servers for W1-W2: compiled (default settings) and/or reference "
        "(ASSAY_COMPILED_EXECUTION=false); W3-W5 use the compiled one if listed",
    )
    a = p.parse_args(argv)
    quick = bool(a.quick)
    executors = [e.strip().lower() for e in a.executors.split(",") if e.strip()]
    if not executors or any(e not in ASSAY_VARIANTS for e in executors):
        p.error(f"--executors takes a comma-separated subset of {', '.join(ASSAY_VARIANTS)}")
    connections = a.connections or ("8" if quick else "8,32")
    chosen_peers = [] if a.no_peers else [x.strip().lower() for x in a.peers.split(",")]
    chosen_peers = [x for x in chosen_peers if x and x != "none"]
    if any(x not in peers.PEERS for x in chosen_peers):
        p.error(f"--peers takes a comma-separated subset of {', '.join(peers.PEERS)}")
    options = Options(
        users=a.users or (200 if quick else 1000),
        submissions_per_user=a.submissions_per_user,
        warmup=a.warmup if a.warmup is not None else (1.0 if quick else 2.0),
        duration=a.duration if a.duration is not None else (3.0 if quick else 10.0),
        first_warmup=a.first_warmup if a.first_warmup is not None else (5.0 if quick else 10.0),
        connections=tuple(int(c) for c in connections.split(",")),
        tool=a.tool,
        subscribers=a.subscribers,
        fanout_events=a.fanout_events or (5 if quick else 30),
        batch_size=a.batch_size,
        idle_sockets=a.idle_sockets or (1000 if quick else 10_000),
        storms=a.storms or (2 if quick else 5),
        workloads=frozenset(w.strip().upper() for w in a.only.split(",")),
        keep=bool(a.keep),
        executors=tuple(v for v in ASSAY_VARIANTS if v in executors),
        postgraphile=not a.no_postgraphile,
        peers=tuple(dict.fromkeys(chosen_peers)),
        rounds=a.rounds or (1 if quick else 3),
        sequential=a.sequential or (50 if quick else 200),
        accept_encoding=a.accept_encoding or None,
    )
    if options.users < workloads.USERS_PAGE:
        p.error(f"--users must be at least {workloads.USERS_PAGE}")
    return options


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def database(workdir: Path) -> Iterator[str]:
    """DATABASE_URL when set (it gets the seed data added), else an embedded PostgreSQL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from persistence.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(workdir / "db")
    try:
        yield embedded.start()
    finally:
        embedded.stop()


def scrape(port: int) -> dict[str, dict[measure.Labels, float]]:
    """Every sample of GET /metrics, by name and labels."""
    response = httpx.get(f"http://{procs.HOST}:{port}/metrics", timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return measure.parse(response.text)


def metric(port: int, name: str) -> float:
    """The sum of a Prometheus metric's samples (all labels) from GET /metrics."""
    return measure.total(scrape(port), name)


def settle(server: Server, quiet: float = 0.5, timeout: float = 120.0) -> None:
    """Wait (bounded) until the server is idle: requests of a previous run have finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = procs.cpu_seconds(server.child.pid)
        time.sleep(quiet)
        if procs.cpu_seconds(server.child.pid) - before < 0.05 * quiet:
            return


class Server:
    """A started HTTP server: its process, port and (for Assay) the tokens it accepts."""

    def __init__(self, name: str, child: procs.Child, port: int) -> None:
        self.name, self.child, self.port = name, child, port

    def snapshot(self) -> measure.Snapshot:
        samples = scrape(self.port)
        return measure.Snapshot(time.perf_counter(), procs.cpu_seconds(self.child.pid), samples)

    def post(self, body: bytes, token: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = f"http://{procs.HOST}:{self.port}/graphql"
        return httpx.post(url, content=body, headers=headers, timeout=HTTP_TIMEOUT)

    def sent_bytes(self, body: bytes, token: str | None, accept_encoding: str) -> tuple[str, int]:
        """The Content-Encoding of the answer and its size as sent, asking for `accept_encoding`."""
        headers = {"Content-Type": "application/json", "Accept-Encoding": accept_encoding}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = f"http://{procs.HOST}:{self.port}/graphql"
        with httpx.stream("POST", url, content=body, headers=headers, timeout=HTTP_TIMEOUT) as r:
            size = sum(len(part) for part in r.iter_raw())
            return r.headers.get("content-encoding", "identity"), size

    def graphql(self, body: bytes, token: str | None) -> dict[str, Any]:
        response = self.post(body, token)
        data: dict[str, Any] = response.json()
        if response.status_code != 200 or data.get("errors"):
            raise RuntimeError(f"{self.name}: HTTP {response.status_code}: {response.text[:2000]}")
        return data


class Bench:
    def __init__(self, options: Options, workdir: Path, url: str) -> None:
        self.options, self.workdir, self.url = options, workdir, url
        self.env = procs.clean_env(
            {
                "DATABASE_URL": url,
                "ASSAY_DATA_DIR": str(workdir / "data"),
                "ASSAY_LOG_LEVEL": "WARNING",
                "ASSAY_LOG_FORMAT": "json",
                # W4 opens 200 sockets as one user, W7 10,000; the default allows 20 per user
                # and 50 unauthenticated at once per address (all of these come from one).
                "ASSAY_MAX_CONNECTIONS_PER_USER": str(
                    max(20, options.subscribers + 10, options.idle_sockets + 10)
                ),
                "ASSAY_MAX_UNAUTHENTICATED_WEBSOCKETS_PER_ADDRESS": "100000",
                "ASSAY_MAX_WEBSOCKETS": str(max(10_000, options.idle_sockets + 1_000)),
                "ASSAY_HTTP_LIMIT_CONCURRENCY": str(max(12_000, options.idle_sockets + 2_000)),
                # One caller drives all the load: per-caller limits would measure themselves.
                # W1 weighs 25,400 points under the default cost model (limit 10,000).
                **BENCH_LIMITS,
            }
        )
        self.report = Report()
        self.sql: dict[tuple[str, str], float] = {}
        self.warmed: set[tuple[str, str]] = set()  # (server, workload) past the first warm-up
        self.tokens: dict[str, str] = {}
        self.iris_id = ""
        self.iris_uuid = ""
        self.submission_ids: list[str] = []
        self.submission_uuids: list[str] = []

    # ------------------------------------------------------------------ set-up

    def assay(self, *args: str, timeout: float = 600) -> str:
        return procs.run([str(procs.ASSAY), *args], self.env, timeout)

    def prepare(self) -> None:
        o = self.options
        log("migrating")
        self.assay("migrate", timeout=120)
        # S1-S3 and B1 make their own data: a seed of one registers the models.
        users, per_user = (o.users, o.submissions_per_user) if self.runs_seeded() else (1, 1)
        log(f"seeding {users} users x {per_user} submissions (with results)")
        self.report.meta["seed"] = f"{users} users x {per_user} submissions x 1 result"
        started = time.perf_counter()
        self.assay("seed", "--users", str(users), "--submissions-per-user", str(per_user))
        self.report.meta["seed_seconds"] = round(time.perf_counter() - started, 1)
        log(f"seeded in {self.report.meta['seed_seconds']} s")
        self.tokens = self.issue_tokens()
        asyncio.run(self._read_ids())

    def issue_tokens(self) -> dict[str, str]:
        """`assay token` for each role, run side by side (each start-up takes seconds)."""
        roles = {"admin": ["--group", "admin"], "writer": [], "fanout": [], "batch": []}
        roles |= {role: [] for role in (*FAIR_QUEUE_BACKLOGS, "prompt")}  # W6
        roles["inference"] = []  # S1-S3, B1
        roles["storm"] = []  # W8
        children = {
            role: subprocess.Popen(
                [str(procs.ASSAY), "token", "--email", f"bench-{role}@example.com",
                 "--name", f"Bench {role}", *groups, "--expires-in", "14400"],
                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            for role, groups in roles.items()
        }  # fmt: skip
        tokens = {}
        for role, child in children.items():
            out, err = child.communicate(timeout=120)
            if child.returncode != 0:
                raise RuntimeError(f"assay token failed: {err.decode()[-2000:]}")
            tokens[role] = out.decode().strip()
        return tokens

    async def _read_ids(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            iris = await conn.fetchval(
                "SELECT id FROM models WHERE name = 'iris-species' AND is_active "
                "ORDER BY created_at DESC LIMIT 1"
            )
            rows = await conn.fetch(
                "SELECT id FROM submissions ORDER BY created_at, id LIMIT $1", W2_IDS
            )
        finally:
            await conn.close()
        if iris is None or not rows:
            raise RuntimeError("the seed left no iris-species model or no submissions")
        self.iris_id = global_id("Model", iris)
        self.iris_uuid = str(iris)
        self.submission_ids = [global_id("Submission", r["id"]) for r in rows]
        self.submission_uuids = [str(r["id"]) for r in rows]

    def start_assay(self, variant: str) -> Server:
        name, settings = ASSAY_VARIANTS[variant]
        log(f"starting {name}")
        port = procs.free_port()
        argv = [str(procs.ASSAY), "serve", "--no-workers", "--port", str(port)]
        env = {**self.env, **settings}
        child = procs.start(f"assay-serve-{variant}", argv, env, self.workdir)
        procs.wait_http(child, f"http://{procs.HOST}:{port}/healthz")
        return Server(name, child, port)

    def start_baseline(self) -> Server:
        port = procs.free_port()
        argv = [sys.executable, "-m", "bench.baseline", "--port", str(port)]
        child = procs.start("baseline", [*argv, "--database-url", self.url], self.env, self.workdir)
        procs.wait_http(child, f"http://{procs.HOST}:{port}/healthz")
        return Server("baseline", child, port)

    def start_postgraphile(self) -> Server | None:
        """PostGraphile 5 on the seeded database, or None (logged and reported) where it
        cannot run here."""
        try:
            installation = postgraphile.prepare()
        except postgraphile.Unavailable as why:
            log(f"PostGraphile skipped: {why}")
            self.report.meta["postgraphile"] = f"skipped: {why}"
            return None
        log(f"starting PostGraphile {postgraphile.VERSION} ({installation.node})")
        port = procs.free_port()
        child = procs.start("postgraphile", installation.argv(port, self.url), self.env,
                            self.workdir)  # fmt: skip
        procs.wait_http(child, f"http://{procs.HOST}:{port}/healthz")
        server = Server(postgraphile.NAME, child, port)
        self.report.meta["postgraphile"] = (
            f"postgraphile@{postgraphile.VERSION} (amber preset), Node "
            f"{postgraphile.node_major(installation.node)}, same database, no authentication"
        )
        return server

    def verify_postgraphile(self, pg: Server, assay: Server) -> None:
        """PostGraphile answers W1 with as many users, submissions and results as Assay, and
        a sample of W2 without errors, or the run stops."""
        token = self.tokens["admin"]
        theirs = postgraphile.counts(pg.graphql(postgraphile.w1().bodies[0], token))
        ours = postgraphile.assay_counts(assay.graphql(workloads.w1().bodies[0], token))
        if theirs != ours:
            raise RuntimeError(f"W1 (users, submissions, results): PostGraphile {theirs}, "
                               f"Assay {ours}")  # fmt: skip
        for body in postgraphile.w2(self.submission_uuids[:3]).bodies:
            if pg.graphql(body, token)["data"]["submissionByRowId"] is None:
                raise RuntimeError("PostGraphile found no submission for a W2 id")
        log(f"PostGraphile: W1 holds the same (users, submissions, results) {ours} as Assay's")

    # ------------------------------------------------------------ correctness

    def verify(self, assay: Server, baseline: Server) -> None:
        """Both servers answer W1 and a sample of W2 with the same bytes, or the run stops."""
        token = self.tokens["admin"]
        cases = list(workloads.w1().bodies)
        ids = self.submission_ids
        sample = sorted({0, 1, len(ids) // 2, len(ids) - 1})
        cases += [workloads.w2([ids[i]]).bodies[0] for i in sample]
        before = assay.snapshot()
        w1_bytes = 0
        for body in cases:
            ours, theirs = assay.post(body, token), baseline.post(body, token)
            w1_bytes = w1_bytes or len(ours.content)
            if ours.content == theirs.content and ours.status_code == 200:
                continue
            if b'"errors"' in ours.content or ours.status_code != 200:
                raise RuntimeError(f"Assay answered with errors: {ours.text[:2000]}")
            a, b = _canonical(ours.content), _canonical(theirs.content)
            if a != b:
                diff = difflib.unified_diff(
                    a.splitlines(), b.splitlines(), "assay", "baseline", lineterm="", n=2
                )
                raise RuntimeError("outputs differ:\n" + "\n".join(list(diff)[:80]))
            log("same JSON, different byte order (accepted after sorting keys)")
        paths = measure.window(before, assay.snapshot())
        self.report.meta["w1_response_bytes"] = w1_bytes
        sent = [assay.sent_bytes(cases[0], token, coding) for coding in ("gzip", "br")]
        self.report.meta["w1_response_bytes_sent"] = ", ".join(f"{c} {n:,}" for c, n in sent)
        checked = f"W1 + W2 x{len(sample)} identical to the baseline; " + _paths(paths)
        self.report.meta[f"verified {assay.name}"] = checked
        log(f"{assay.name}: outputs identical (W1 {w1_bytes:,} bytes, W2 x{len(sample)}), "
            f"{_paths(paths)}")  # fmt: skip

    # ------------------------------------------------------------- HTTP load

    def timed(
        self, server: Server, workload: workloads.Workload, token: str | None, connections: int
    ) -> Row:
        o = self.options
        settle(server)
        marks: list[measure.Snapshot] = []
        first = (server.name, workload.name) not in self.warmed
        self.warmed.add((server.name, workload.name))
        warmup = max(o.warmup, o.first_warmup) if first else o.warmup

        def mark() -> None:
            # Before the measured run: the warm-up's requests are done. After it: so are the
            # ones it left in flight (wrk does not wait for them), and they are counted.
            settle(server)
            marks.append(server.snapshot())

        with procs.RssSampler(server.child.pid) as rss:
            result = load.drive(
                server.port, workload.bodies, token, connections, warmup, o.duration, o.tool,
                at_start=mark, at_end=mark, accept_encoding=o.accept_encoding,
            )  # fmt: skip
        if len(marks) != 2:
            raise RuntimeError(f"the load generator marked {len(marks)} window edges, not 2")
        # The server's CPU and counters over the measured run and the requests it started.
        window = measure.window(marks[0], marks[1])
        row = Row(
            workload=workload.name,
            server=server.name,
            connections=connections,
            rps=result.rps,
            p50_ms=result.p50_ms,
            p95_ms=result.p95_ms,
            p99_ms=result.p99_ms,
            requests=result.requests,
            errors=result.errors + window.graphql_errors,
            sql_per_request=self.sql_per_request(server, workload, token),
            cpu_ms_per_request=window.cpu_ms_per_request,
            peak_rss_mib=rss.peak / MIB,
            client_cpu_cores=result.client_cpu_share,
            tool=result.tool,
            server_requests=window.requests,
            server_cpu_seconds=window.cpu_seconds,
            compiled_operations=window.compiled,
            fallback_operations=window.fallback,
            fallback_reasons=window.fallback_reasons,
        )
        cpu = row.cpu_ms_per_request
        log(
            f"{workload.name} {server.name} c={connections}: {row.rps:,.1f} req/s, "
            f"p99 {row.p99_ms:.1f} ms, SQL/req {row.sql_per_request:.2f}, "
            f"CPU ms/req {'-' if cpu is None else f'{cpu:.2f}'}, {_paths(window)}"
        )
        if row.errors:
            log(
                f"{workload.name} {server.name} c={connections}: {result.errors} failed "
                f"requests {list(result.error_examples)}, {window.graphql_errors} answers "
                "with GraphQL errors (the server's count)"
            )
        return row

    def sql_per_request(
        self, server: Server, workload: workloads.Workload, token: str | None, samples: int = 5
    ) -> float:
        """Statements per request, from requests sent one at a time on an idle server after
        one unmeasured request (so the caller's sign-in is cached, as it is under load: the
        sign-in read returns once per cache lifetime, 30 s, per caller), each counted alone;
        measured once per server and workload. The counter is the process's: see
        measure.per_request for why each is counted alone."""
        key = (server.name, workload.name)
        if key in self.sql:
            return self.sql[key]
        settle(server)
        bodies = list(workload.bodies)
        server.post(bodies[0], token)
        counted: list[float] = []
        for i in range(samples):
            before = metric(server.port, "assay_db_statements_total")
            server.post(bodies[i % len(bodies)], token)
            counted.append(metric(server.port, "assay_db_statements_total") - before)
        self.sql[key] = measure.per_request(counted)
        return self.sql[key]
        settle(server)
        server.post(workload.bodies[0], token)
        before = metric(server.port, "assay_db_statements_total")
        for body in list(workload.bodies)[:samples]:
            server.post(body, token)
        taken = min(samples, len(workload.bodies))
        self.sql[key] = (metric(server.port, "assay_db_statements_total") - before) / taken
        return self.sql[key]

    # ----------------------------------------------------------------- W3-W5

    def batch_inference(self, assay: Server) -> None:
        """W5: batchInference of N inputs, run by `assay worker`; completions per second."""
        o, token = self.options, self.tokens["batch"]
        worker = procs.start("assay-worker", [str(procs.ASSAY), "worker"], self.env, self.workdir)
        try:
            probe = workloads.body(
                workloads.W3_MUTATION, "W3", workloads.create_submission_variables(self.iris_id)
            )
            assay.graphql(probe, token)
            self._wait_succeeded(assay, token, 1, worker, timeout=120)
            cpu = procs.cpu_seconds(worker.pid)
            # One prompt resultCreated reader: it must receive every result of the batch.
            with sockets.ResultReader(assay.port, token) as reader:
                started = time.perf_counter()
                assay.graphql(workloads.w5_body(self.iris_id, o.batch_size), token)
                accepted = time.perf_counter()
                finished = self._wait_succeeded(assay, token, 1 + o.batch_size, worker, timeout=600)
                cpu = procs.cpu_seconds(worker.pid) - cpu
                reader.wait_for(o.batch_size, timeout=60)
        finally:
            worker.stop()
        elapsed = finished - accepted
        self.report.extra["W5 batch inference (assay worker, iris-species)"] = {
            "inputs": o.batch_size,
            "batch_mutation_seconds": accepted - started,
            "seconds_from_accept_to_all_succeeded": elapsed,
            "completed_per_second": o.batch_size / elapsed if elapsed > 0 else 0.0,
            "worker_cpu_seconds": cpu,
            "result_subscriber_received": reader.received,
            "result_subscriber_close_code": reader.close_code,
        }
        log(f"W5: {o.batch_size} inferences in {elapsed:.1f} s after the mutation")
        log(f"W5: the resultCreated reader received {reader.received} of {o.batch_size}")

    def fair_queue(self, assay: Server) -> None:
        """W6: 4 callers queue 2,000 each, then another caller's runInference is timed."""
        worker = procs.start("assay-worker", [str(procs.ASSAY), "worker"], self.env, self.workdir)
        try:
            result = asyncio.run(
                fair_queue.fair_queue(
                    assay.port,
                    self.iris_id,
                    [self.tokens[role] for role in FAIR_QUEUE_BACKLOGS],
                    self.tokens["prompt"],
                )
            )
        finally:
            worker.stop()
        section = asdict(result)
        section["worker"] = "one `assay worker` process, default batch size and concurrency"
        self.report.extra["W6 fair queue (4 x 2,000 queued, another caller's runInference)"] = (
            section
        )
        log(f"W6: runInference p95 {result.p95_ms:.0f} ms with {result.queued} queued")

    def monitoring_reads(self, assay: Server) -> None:
        """M1: Model.stats and Model.drift over a day of 1,000,000 predictions (rollups)."""
        model_uuid = UUID(self.iris_uuid)
        end = monitoring.now()
        rows = asyncio.run(monitoring.seed(self.url, model_uuid, 1_000_000, end))
        result = monitoring.time_reads(
            assay.port, self.tokens["admin"], self.iris_id, end - timedelta(days=1), rows,
            1_000_000,
        )  # fmt: skip
        self.report.extra["M1 model monitoring (stats + drift, a day of 1,000,000)"] = asdict(
            result
        )
        log(
            f"M1: stats + drift over {result.rows} rollup rows ({result.predictions} "
            f"predictions): p50 {result.p50_ms} ms, p95 {result.p95_ms} ms "
            f"(target {result.target_ms:g} ms)"
        )

    def _wait_succeeded(
        self, assay: Server, token: str, count: int, worker: procs.Child, timeout: float
    ) -> float:
        """The perf_counter() at which the viewer's SUCCEEDED count reached `count`."""
        poll = workloads.body(workloads.W5_POLL, "W5Poll")
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if worker.popen.poll() is not None:
                raise RuntimeError(f"assay worker exited:\n{worker.tail()}")
            data = assay.graphql(poll, token)
            if data["data"]["submissions"]["totalCount"] >= count:
                return time.perf_counter()
            time.sleep(0.1)
        raise RuntimeError(f"{count} submissions did not succeed within {timeout}s")

    def fan_out(self, assay: Server) -> None:
        o, token = self.options, self.tokens["fanout"]
        before = metric(assay.port, "assay_db_statements_total")
        cpu = procs.cpu_seconds(assay.child.pid)
        create_body = workloads.body(
            workloads.W3_MUTATION, "W3", workloads.create_submission_variables(self.iris_id)
        )

        async def create() -> tuple[str, datetime]:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                response = await client.post(
                    f"http://{procs.HOST}:{assay.port}/graphql",
                    content=create_body,
                    headers={
                        "Content-Type": "application/json",
                        "Authorization": f"Bearer {token}",
                    },
                )
            node = response.json()["data"]["createSubmission"]["submission"]
            return str(node["id"]), datetime.fromisoformat(node["createdAt"])

        async def subscribed() -> int:
            return int(await asyncio.to_thread(metric, assay.port, "assay_open_subscriptions"))

        with procs.RssSampler(assay.child.pid) as rss:
            result = asyncio.run(
                fanout.fanout(assay.port, token, create, o.subscribers, o.fanout_events, subscribed)
            )
        statements = metric(assay.port, "assay_db_statements_total") - before
        cpu = procs.cpu_seconds(assay.child.pid) - cpu
        section = asdict(result)
        section["latency_from"] = "the submission's createdAt (set just before its INSERT)"
        section["sql_per_event_incl_mutation_and_connects"] = statements / max(1, result.events)
        section["server_cpu_seconds"] = cpu
        section["peak_rss_mib"] = rss.peak / MIB
        self.report.extra["W4 fan-out (graphql-transport-ws, one user)"] = section
        log(f"W4: p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, missing {result.missing}")

    def idle_sockets(self, assay: Server) -> None:
        """W7: server RSS with N signed-in, idle WebSockets (one user, no subscriptions)."""
        count, token = self.options.idle_sockets, self.tokens["fanout"]
        settle(assay)
        before = procs.rss_bytes(assay.child.pid)

        async def hold() -> tuple[int, int]:
            opened = await sockets.open_idle(assay.port, token, count)
            await asyncio.sleep(2)  # let the server settle with all of them open
            held = procs.rss_bytes(assay.child.pid)
            await sockets.close_all(opened)
            return len(opened), held

        opened, held = asyncio.run(hold())
        self.report.extra["W7 idle signed-in WebSockets"] = {
            "sockets": opened,
            "rss_before_mib": before / MIB,
            "rss_with_sockets_mib": held / MIB,
            "kib_per_socket": (held - before) / 1024 / max(1, opened),
        }
        log(f"W7: {opened} idle sockets, RSS {before / MIB:.0f} -> {held / MIB:.0f} MiB")

    def subscription_storms(self, assay: Server) -> None:
        """W8: RSS after each storm of heavy subscription messages, every socket closed."""
        o = self.options
        # The server runs --no-workers: an `assay worker` beside it runs the storms' batches.
        worker = procs.start("assay-worker", [str(procs.ASSAY), "worker"], self.env, self.workdir)
        try:
            result = storms.storms(
                assay.port,
                self.tokens["storm"],
                self.iris_id,
                count=o.storms,
                inputs=150,
                rss_mib=lambda: procs.rss_bytes(assay.child.pid) / MIB,
                settle=lambda: settle(assay),
            )
        finally:
            worker.stop()
        self.report.extra["W8 subscription storms (2 heavy sockets, 150-input batch)"] = {
            "storms": result.storms,
            "messages": result.messages,
            "rss_mib_before_and_after_each": [round(r, 1) for r in result.rss_mib],
        }
        sizes = " -> ".join(f"{r:.0f}" for r in result.rss_mib)
        log(f"W8: {result.storms} storms, {result.messages} messages, RSS {sizes} MiB")

    # ------------------------------------------------------------------- all

    def time_reads(
        self,
        server: Server,
        reads: Sequence[workloads.Workload],
        rival: tuple[Server, Mapping[str, workloads.Workload]] | None = None,
    ) -> None:
        """Each read at each connection count; with a rival (PostGraphile and its own
        documents by workload name), the rival's turn right after each of the server's."""
        token = self.tokens["admin"]
        for workload in reads:
            for c in self.options.connections:
                self.report.rows.append(self.timed(server, workload, token, c))
                if rival is not None and workload.name in rival[1]:
                    self.report.rows.append(self.timed(rival[0], rival[1][workload.name], token, c))

    def runs_seeded(self) -> bool:
        return bool(self.options.workloads & SEEDED_WORKLOADS)

    def run(self) -> None:
        self.prepare()
        if self.runs_seeded():
            self.run_seeded()
        if self.options.workloads & set(INFERENCE_WORKLOADS):
            self.run_inference()

    def run_seeded(self) -> None:
        """W1-W8 on the seeded data."""
        o = self.options
        reads = [
            w for w in (workloads.w1(), workloads.w2(self.submission_ids)) if w.name in o.workloads
        ]
        # One Assay server at a time, on the same data; without W1-W2 only the last one runs.
        variants = list(o.executors) if reads else list(o.executors[-1:])
        baseline = self.start_baseline()
        pg = self.start_postgraphile() if reads and o.postgraphile else None
        rival = None
        if pg is not None:
            rival = (pg, {"W1": postgraphile.w1(), "W2": postgraphile.w2(self.submission_uuids)})
        assay: Server | None = None
        for variant in variants:
            if assay is not None:
                assay.child.stop()
            assay = self.start_assay(variant)
            self.verify(assay, baseline)
            last = variant == variants[-1]
            if pg is not None and last:
                self.verify_postgraphile(pg, assay)
            self.time_reads(assay, reads, rival if last else None)
            settle(assay)  # requests the load generator left behind, before the next runs
            if variant == variants[0]:
                self.time_reads(baseline, reads)
        baseline.child.stop()
        if pg is not None:
            pg.child.stop()
        assert assay is not None
        if "W5" in o.workloads:
            self.batch_inference(assay)
        if "W6" in o.workloads:
            self.fair_queue(assay)
        if "W3" in o.workloads:
            w3 = workloads.w3(self.iris_id)
            for c in o.connections:
                self.report.rows.append(self.timed(assay, w3, self.tokens["writer"], c))
        if "W4" in o.workloads:
            self.fan_out(assay)
        if "W7" in o.workloads:
            self.idle_sockets(assay)
        if "W8" in o.workloads:
            self.subscription_storms(assay)
        if "M1" in o.workloads:
            self.monitoring_reads(assay)
        assay.child.stop()

    # ------------------------------------------------------------ S1-S3, B1

    def start_assay_with_workers(self) -> Server:
        """`assay serve` as it comes: default settings, in-process workers (limits raised)."""
        log("starting assay serve (default settings, in-process workers)")
        port = procs.free_port()
        argv = [str(procs.ASSAY), "serve", "--port", str(port)]
        child = procs.start("assay-serve-inference", argv, self.env, self.workdir)
        procs.wait_http(child, f"http://{procs.HOST}:{port}/healthz")
        return Server("assay", child, port)

    def model_file(self) -> tuple[Path, str]:
        """The iris-species model.joblib Assay built on first run, and the scikit-learn
        version that wrote it (from its manifest)."""
        manifests = sorted((self.workdir / "data" / "models" / MODEL_NAME).glob("*/model.json"))
        if not manifests:
            raise RuntimeError(f"no {MODEL_NAME} model under {self.workdir / 'data' / 'models'}")
        manifest = orjson.loads(manifests[-1].read_bytes())
        config = manifest["runtime_config"]
        return manifests[-1].parent / str(config["artifact"]), str(config["sklearn_version"])

    def run_inference(self) -> None:
        o = self.options
        model, sklearn_version = self.model_file()
        chosen = tuple(w for w in INFERENCE_WORKLOADS if w in o.workloads)
        options = InferenceOptions(
            chosen, o.peers, o.rounds, o.sequential, o.batch_size, o.warmup, o.duration
        )
        bench = InferenceBench(options, Oracle.load(model), self.iris_id, log)
        floor = bench.floor()
        assay = self.start_assay_with_workers()
        db_pid = postgres_pid(self.workdir)
        targets = [bench.assay_target(assay.port, self.tokens["inference"], assay.child.pid,
                                      db_pid)]  # fmt: skip
        for key in o.peers:
            peer = peers.PEERS[key]
            try:
                venv = peers.prepare(peer.kind, sklearn_version)
            except peers.Unavailable as why:
                log(f"{peer.name} skipped: {why}")
                self.report.meta[peer.name] = f"skipped: {why}"
                continue
            log(f"starting {peer.name} ({venv})")
            child, port, wire = peers.start(peer, venv, model, self.workdir)
            targets.append(Target(peer.name, port, wire, None, child.pid))
        self.report.meta["inference"] = (
            f"{MODEL_NAME} ({model.name}, scikit-learn {sklearn_version}); assay serve on its "
            f"default settings with the per-caller limits raised; {o.rounds} rounds; S1 "
            f"{o.sequential} sequential; S2, S3 warm-up {o.warmup}s then {o.duration}s; B1 "
            f"{o.batch_size} inputs"
            + (", after one untimed batch per server" if o.warmup > 0 else "")
            + "; PostgreSQL CPU "
            + ("counted" if db_pid is not None else "not counted (DATABASE_URL)")
        )
        bench.run(targets, self.url)
        self.report.tables["Inference"] = bench.tables([t.name for t in targets], floor)
        self.report.records["Inference (S1-S3, B1)"] = bench.record(floor)


def _paths(window: measure.Window) -> str:
    """The execution paths of the query operations in a window, for the log."""
    if window.compiled is None or window.fallback is None:
        return "no execution-path counter"
    reasons = ", ".join(f"{k or 'no reason'} {v}" for k, v in window.fallback_reasons.items())
    share = measure.compiled_share(window.compiled, window.fallback)
    return (
        f"execution paths: compiled {window.compiled}, fallback {window.fallback}"
        + (f" ({reasons})" if reasons else "")
        + (f", {share:.1%} compiled" if share is not None else "")
    )


def _canonical(content: bytes) -> str:
    return orjson.dumps(
        orjson.loads(content), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    ).decode()


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="assay-bench-"))
    bench: Bench | None = None
    try:
        with database(workdir) as url:
            try:
                bench = Bench(options, workdir, url)
                bench.report.meta.update(_meta(options, stamp))
                bench.run()
            finally:
                procs.stop_all()
    except Exception as error:
        log(f"FAILED: {error}")
        log(f"logs kept in {workdir}")
        raise SystemExit(1) from error
    assert bench is not None
    bench.report.extra["Compile times (in-process, best of 5, fresh plan cache)"] = compile_times()
    bench.report.meta["total_seconds"] = round(time.perf_counter() - started, 1)
    path = write_json(bench.report, RESULTS_DIR, stamp)
    print(markdown(bench.report))
    log(f"wrote {path}")
    if not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)


def _meta(options: Options, stamp: str) -> dict[str, object]:
    return {
        "started": stamp,
        "cpus": os.cpu_count(),
        "seed": f"{options.users} users x {options.submissions_per_user} submissions x 1 result",
        "load": f"{'wrk' if _uses_wrk(options.tool) else 'asyncio'}, warm-up {options.warmup}s "
        f"({options.first_warmup}s before a server's first run of a workload), "
        f"then {options.duration}s",
        "assay servers": "; ".join(
            f"{ASSAY_VARIANTS[v][0]}: "
            + (" ".join(f"{k}={x}" for k, x in ASSAY_VARIANTS[v][1].items()) or "default settings")
            for v in options.executors
        ),
        "w2_ids": W2_IDS,
        "accept_encoding": options.accept_encoding or "none (uncompressed answers)",
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _uses_wrk(tool: str) -> bool:
    return tool == "wrk" or (tool == "auto" and shutil.which("wrk") is not None)
