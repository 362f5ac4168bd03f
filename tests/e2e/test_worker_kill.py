"""`assay worker` killed mid-batch, and stopped gracefully: no submission lost or run twice."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from graph.ids import parse_id
from tests.e2e.conftest import (
    AssayProcess,
    Launcher,
    agql,
    model_id,
    token,
    truncate_all,
    wait_for,
)

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 2  # short, so the second worker reclaims a dead worker's rows quickly
# Longer than any stall the test can cause (a SIGSTOP, a loaded CI machine): with a 2 s lease, the
# worker's other claim loop legitimately took over a batch whose lease ran out while frozen.
GRACEFUL_LEASE_SECONDS = 60
BATCH_SIZE = 20
SUBMISSIONS = 300
GRACE_SECONDS = 20  # BackgroundTasks' default grace before it cancels the work in hand

BATCH = """
mutation Batch($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id status } }
}
"""


@dataclass
class Queue:
    """A `serve --no-workers` server to queue submissions through, on the session database."""

    server: AssayProcess
    data_dir: Path
    database_url: str
    models: Path
    token: str
    iris: str


@pytest.fixture(scope="module")
async def queue(
    module_launcher: Launcher, postgres_url: str, shared_models: Path, engine: AsyncEngine
) -> Queue:
    await truncate_all(engine)
    data_dir = module_launcher.new_data_dir("queue")
    server = module_launcher.serve(
        "--no-workers",
        data_dir=data_dir,
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models)},
        healthy=False,
    )
    # While the server starts: the signing key is created atomically by whichever comes first.
    bearer = token(data_dir, "kim@example.com", public_url=server.base_url)
    server.wait_healthy()
    return Queue(
        server, data_dir, postgres_url, shared_models, bearer, model_id(server.base_url, bearer)
    )


def iris_input(rng: random.Random) -> dict[str, float]:
    return {
        "sepal_length_cm": round(rng.uniform(4.3, 7.9), 1),
        "sepal_width_cm": round(rng.uniform(2.0, 4.4), 1),
        "petal_length_cm": round(rng.uniform(1.0, 6.9), 1),
        "petal_width_cm": round(rng.uniform(0.1, 2.5), 1),
    }


async def enqueue(queue: Queue, count: int, seed: int) -> list[UUID]:
    rng = random.Random(seed)
    inputs = [iris_input(rng) for _ in range(count)]
    data = await agql(
        queue.server.base_url,
        BATCH,
        {"input": {"modelId": queue.iris, "inputs": inputs}},
        queue.token,
    )
    submissions = data["batchInference"]["submissions"]
    assert [s["status"] for s in submissions] == ["PENDING"] * count
    ids = [parse_id(s["id"], "Submission") for s in submissions]
    assert all(ident is not None for ident in ids)
    return [ident for ident in ids if ident is not None]


def start_worker(
    launcher: Launcher,
    queue: Queue,
    lease_seconds: float = LEASE_SECONDS,
    batch_size: int = BATCH_SIZE,
) -> AssayProcess:
    """`assay worker` on the same database, short leases, small chunks; not waited for."""
    return launcher.process(
        ["worker"],
        data_dir=queue.data_dir,
        database_url=queue.database_url,
        env={
            "ASSAY_MODEL_DIR": str(queue.models),
            "ASSAY_WORKER_LEASE_SECONDS": str(lease_seconds),
            "ASSAY_WORKER_BATCH_SIZE": str(batch_size),
        },
    )


@dataclass(frozen=True)
class Row:
    id: UUID
    status: str
    attempts: int
    lease_expires_at: object
    results: int


async def rows(engine: AsyncEngine, ids: list[UUID]) -> list[Row]:
    query = sa.text(
        """
        SELECT s.id, s.status, s.attempts, s.lease_expires_at,
               (SELECT count(*) FROM results r WHERE r.submission_id = s.id) AS results
        FROM submissions s WHERE s.id = ANY(:ids)
        """
    )
    async with engine.connect() as conn:
        found = (await conn.execute(query, {"ids": ids})).all()
    return [Row(*row) for row in found]


async def statuses(engine: AsyncEngine, ids: list[UUID]) -> Counter[str]:
    query = sa.text("SELECT status, count(*) FROM submissions WHERE id = ANY(:ids) GROUP BY status")
    async with engine.connect() as conn:
        found = (await conn.execute(query, {"ids": ids})).all()
    return Counter({str(status): int(count) for status, count in found})


async def settled(worker: AssayProcess) -> None:
    """Wait until the worker is really stopped and what it sent before stopping has run.

    kill() returns before the process stops, and a commit already written to its socket is
    still executed by PostgreSQL: counts read at once could show RUNNING rows that that
    commit finishes a moment later, leaving nothing in hand for the test."""
    for _ in range(200):
        if _is_stopped(worker.pid):
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.25)


def _is_stopped(pid: int) -> bool:
    """The state letter of /proc/<pid>/stat (after the command name in parentheses)."""
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state in {"T", "t"}


async def freeze_mid_batch(
    worker: AssayProcess, engine: AsyncEngine, ids: list[UUID], *, within: float = 60.0
) -> Counter[str]:
    """SIGSTOP the worker at a moment it holds a claim and has finished some submissions.

    Polls the database tightly; the process is frozen, the counts checked again, and the worker
    resumed to try again if the moment passed. Returns the counts while frozen.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        counts = await statuses(engine, ids)
        if counts["SUCCEEDED"] >= 1 and counts["RUNNING"] >= 1:
            worker.signal(signal.SIGSTOP)
            await settled(worker)
            frozen = await statuses(engine, ids)
            if frozen["RUNNING"] >= 1:
                return frozen
            worker.signal(signal.SIGCONT)
        if counts["SUCCEEDED"] == len(ids):
            pytest.fail(f"the worker finished every submission before it could be caught: {counts}")
        code = worker.poll()
        if code is not None:
            pytest.fail(f"worker exited with {code}: {worker.describe()}")
        await asyncio.sleep(0.005)
    pytest.fail(f"the worker never held a claim within {within:.0f} s: {worker.describe()}")


async def test_killed_worker_loses_and_duplicates_nothing(
    queue: Queue, launcher: Launcher, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await enqueue(queue, SUBMISSIONS, seed=1)
    assert (await statuses(engine, ids)) == Counter({"PENDING": SUBMISSIONS})

    first = start_worker(launcher, queue)
    frozen = await freeze_mid_batch(first, engine, ids)
    first.signal(signal.SIGKILL)  # the process alone, as the OOM killer would
    assert first.wait(timeout=10) == -signal.SIGKILL

    at_kill = await rows(engine, ids)
    held = {r.id for r in at_kill if r.status == "RUNNING"}
    assert all(r.lease_expires_at is not None for r in at_kill if r.status == "RUNNING")
    unfinished = [r for r in at_kill if r.status in ("PENDING", "RUNNING")]
    assert unfinished, f"nothing left for a second worker: {frozen}"
    assert held, "the killed worker held no claim"
    kill_counts = Counter(r.status for r in at_kill)

    second = start_worker(launcher, queue)
    done = await wait_for(
        lambda: _all_succeeded(engine, ids),
        within=90,
        interval=0.2,
        message=f"all {SUBMISSIONS} SUCCEEDED after the second worker started",
    )
    assert done

    after = await rows(engine, ids)
    assert len(after) == SUBMISSIONS
    assert {r.status for r in after} == {"SUCCEEDED"}
    async with engine.connect() as conn:
        duplicated = (
            await conn.execute(
                sa.text(
                    """
                    SELECT submission_id, count(*) FROM results
                    WHERE submission_id = ANY(:ids)
                    GROUP BY submission_id HAVING count(*) != 1
                    """
                ),
                {"ids": ids},
            )
        ).all()
    assert duplicated == []
    assert all(r.results == 1 for r in after), "a submission without a result"
    assert all(r.attempts >= 1 for r in after)
    retried = [r for r in after if r.attempts >= 2]
    assert {r.id for r in retried} >= held, "a submission held by the dead worker was not retried"

    with capsys.disabled():
        print(
            f"\n[worker kill] at kill: {dict(kill_counts)}; held by the dead worker: {len(held)};"
            f" after: {SUBMISSIONS} SUCCEEDED, {len(retried)} with attempts >= 2,"
            f" attempts histogram {dict(Counter(r.attempts for r in after))}"
        )

    started = time.monotonic()
    assert second.terminate(timeout=30) == 0, second.describe()
    assert time.monotonic() - started < 30


async def _all_succeeded(engine: AsyncEngine, ids: list[UUID]) -> bool:
    return (await statuses(engine, ids))["SUCCEEDED"] == len(ids)


async def test_sigterm_finishes_or_releases_the_work_in_hand(
    queue: Queue, launcher: Launcher, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await enqueue(queue, SUBMISSIONS, seed=2)
    worker = start_worker(launcher, queue, lease_seconds=GRACEFUL_LEASE_SECONDS)
    await freeze_mid_batch(worker, engine, ids)
    in_hand = {r.id for r in await rows(engine, ids) if r.status == "RUNNING"}
    assert in_hand

    started = time.monotonic()
    worker.signal(signal.SIGTERM)  # delivered when it resumes, with the claim in hand
    worker.signal(signal.SIGCONT)
    code = worker.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert code == 0, worker.describe()
    assert elapsed < GRACE_SECONDS + 5

    after = await rows(engine, ids)
    counts = Counter(r.status for r in after)
    assert counts["RUNNING"] == 0, f"rows left RUNNING after a graceful stop: {counts}"
    assert set(counts) <= {"SUCCEEDED", "PENDING"}, counts
    for row in after:
        if row.status == "SUCCEEDED":
            assert (row.attempts, row.results) == (1, 1), row
        else:  # never run, or released: the attempt is not counted
            assert (row.attempts, row.results, row.lease_expires_at) == (0, 0, None), row
    finished = {r.id for r in after if r.status == "SUCCEEDED"}
    with capsys.disabled():
        print(
            f"\n[graceful stop] exit {code} after {elapsed:.1f} s; in hand {len(in_hand)}, of"
            f" which {len(in_hand & finished)} finished and {len(in_hand - finished)} released;"
            f" final {dict(counts)}"
        )


# A backend of the worker whose open transaction has inserted results: a chunk being written.
WRITING_RESULTS = sa.text(
    """
    SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.relation = 'results'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted
      AND a.application_name = 'assay' AND a.pid <> pg_backend_pid()
    """
)


async def is_writing_results(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return bool((await conn.execute(WRITING_RESULTS)).scalar_one())


async def freeze_mid_write(
    worker: AssayProcess, engine: AsyncEngine, ids: list[UUID], *, within: float = 60.0
) -> None:
    """SIGSTOP the worker inside a chunk's write, after earlier chunks were committed: its
    transaction has inserted results and not committed, and still has not once frozen."""
    deadline = time.monotonic() + within
    checks = 0
    while time.monotonic() < deadline:
        if await is_writing_results(engine):
            worker.signal(signal.SIGSTOP)
            await settled(worker)
            if await is_writing_results(engine) and (await statuses(engine, ids))["SUCCEEDED"]:
                return
            worker.signal(signal.SIGCONT)
        checks += 1
        if checks % 50 == 0:
            counts = await statuses(engine, ids)
            if counts["SUCCEEDED"] == len(ids):
                pytest.fail(f"every chunk was written before one could be caught: {counts}")
            code = worker.poll()
            if code is not None:
                pytest.fail(f"worker exited with {code}: {worker.describe()}")
    pytest.fail(f"never caught the worker writing a chunk within {within:.0f} s")


async def test_a_worker_killed_while_writing_a_chunk_leaves_none_of_it(
    queue: Queue, launcher: Launcher, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await enqueue(queue, SUBMISSIONS, seed=3)
    first = start_worker(launcher, queue, batch_size=5)  # many chunks: many writes to catch
    await freeze_mid_write(first, engine, ids)
    first.signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    await wait_for(
        lambda: _not_writing(engine), within=10, interval=0.05, message="the write rolled back"
    )

    at_kill = await rows(engine, ids)
    kill_counts = Counter(r.status for r in at_kill)
    # The chunk's statements went together or not at all: every SUCCEEDED row has its one
    # result, and the rows of the chunk being written are still RUNNING, without results.
    assert all(r.results == (1 if r.status == "SUCCEEDED" else 0) for r in at_kill), kill_counts
    held = {r.id for r in at_kill if r.status == "RUNNING"}
    assert held, f"nothing held by the killed worker: {kill_counts}"
    assert kill_counts["SUCCEEDED"] >= 1, "the chunks written before the kill were lost"

    second = start_worker(launcher, queue)
    await wait_for(
        lambda: _all_succeeded(engine, ids),
        within=90,
        interval=0.2,
        message=f"all {SUBMISSIONS} SUCCEEDED after the second worker started",
    )
    after = await rows(engine, ids)
    assert all(r.results == 1 for r in after), "a submission without exactly one result"
    assert {r.id for r in after if r.attempts >= 2} >= held
    with capsys.disabled():
        print(f"\n[killed mid-write] at kill: {dict(kill_counts)}; then all {SUBMISSIONS} once")
    assert second.terminate(timeout=30) == 0, second.describe()


async def claimed_when_accepted(engine: AsyncEngine, ids: list[UUID]) -> bool:
    """Whether each submission's RUNNING event was written by the transaction that created
    it (now() is the transaction's start): claimed at accept, not by a later claim."""
    query = sa.text(
        """
        SELECT count(DISTINCT c.subject_id)
        FROM events c JOIN events r ON r.subject_id = c.subject_id AND r.created_at = c.created_at
        WHERE c.subject_id = ANY(:ids) AND c.type = 'SUBMISSION_CREATED'
          AND r.type = 'SUBMISSION_UPDATED' AND r.payload->>'status' = 'RUNNING'
        """
    )
    async with engine.connect() as conn:
        return int((await conn.execute(query, {"ids": ids})).scalar_one()) == len(ids)


async def _claimed_at_accept(accepting: Queue, engine: AsyncEngine) -> list[UUID]:
    """A batch's ids (the payload: as accepted, PENDING), sent until the server's claim loops
    idled when it arrived and it was claimed at accept. One sent before (a loop just started,
    or busy on a loaded machine) is stored for the queue; the loops run it, then idle."""
    for _ in range(5):
        await asyncio.sleep(0.5)  # its claim loops found nothing and idle
        ids = await enqueue(accepting, SUBMISSIONS, seed=4)
        if await claimed_when_accepted(engine, ids):
            return ids
        await wait_for(
            lambda: _all_succeeded(engine, ids),  # noqa: B023  # awaited within the turn
            within=90,
            interval=0.2,
            message="the batch stored for the queue SUCCEEDED",
        )
    pytest.fail("no batch was claimed at accept in five tries")


async def _not_writing(engine: AsyncEngine) -> bool:
    return not await is_writing_results(engine)


async def test_a_server_killed_with_a_batch_claimed_at_accept_loses_and_duplicates_nothing(
    queue: Queue, launcher: Launcher, engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    """`assay serve` with idle in-process workers stores an accepted batch already claimed
    (RUNNING under its lease) and runs it from memory; killed mid-batch, the lease hands what
    it held to another worker, and nothing is lost or run twice."""
    data_dir = launcher.new_data_dir("accepting")
    server = launcher.serve(
        data_dir=data_dir,
        database_url=queue.database_url,
        env={
            "ASSAY_MODEL_DIR": str(queue.models),
            "ASSAY_RUN_WORKERS": "true",
            "ASSAY_WORKER_LEASE_SECONDS": str(LEASE_SECONDS),
            "ASSAY_WORKER_BATCH_SIZE": "5",  # many chunks: a moment mid-batch to catch
            # Not run at accept (it would be stored finished in the accepting transaction):
            # this is the claimed batch's path, which a run past the wait takes too.
            "ASSAY_INFERENCE_BATCH_INLINE_MS": "0",
        },
        healthy=False,
    )
    bearer = token(data_dir, "lin@example.com", public_url=server.base_url)
    server.wait_healthy()
    accepting = Queue(
        server,
        data_dir,
        queue.database_url,
        queue.models,
        bearer,
        model_id(server.base_url, bearer),
    )
    ids = await _claimed_at_accept(accepting, engine)

    frozen = await freeze_mid_batch(server, engine, ids)
    server.signal(signal.SIGKILL)
    assert server.wait(timeout=10) == -signal.SIGKILL
    at_kill = await rows(engine, ids)
    held = {r.id for r in at_kill if r.status == "RUNNING"}
    assert held, f"the killed server held nothing: {frozen}"
    # With a 2 s lease on a loaded machine the server's own loops may have retaken some.
    assert all(r.lease_expires_at is not None for r in at_kill if r.id in held)

    second = start_worker(launcher, queue)
    await wait_for(
        lambda: _all_succeeded(engine, ids),
        within=90,
        interval=0.2,
        message=f"all {SUBMISSIONS} SUCCEEDED after the second worker started",
    )
    after = await rows(engine, ids)
    assert all(r.results == 1 for r in after), "a submission without exactly one result"
    assert {r.id for r in after if r.attempts >= 2} >= held, "a held one was not retried"
    with capsys.disabled():
        print(
            f"\n[killed after claim at accept] at kill: {dict(Counter(r.status for r in at_kill))};"
            f" then all {SUBMISSIONS} once"
        )
    assert second.terminate(timeout=30) == 0, second.describe()
