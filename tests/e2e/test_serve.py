"""`assay serve` on its embedded PostgreSQL: first start, SIGTERM, restart, --workers, settings."""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from server.cli import main
from tests.e2e.conftest import (
    START_TIMEOUT,
    AssayProcess,
    Launcher,
    base_env,
    gql,
    group_members,
    postmasters,
    processes_mentioning,
    run_assay,
    token,
    wait_until_gone,
)

pytestmark = pytest.mark.e2e

VIEWER = "{ viewer { id email name groups } }"
# What uvicorn's supervisor logs when it kills a worker that missed its health ping.
WORKER_DIED = re.compile(r"Child process \[\d+\] died")


@dataclass
class FirstStart:
    server: AssayProcess
    data_dir: Path
    token: str
    viewer: dict[str, object]


@pytest.fixture(scope="module")
def data_dir(module_launcher: Launcher) -> Path:
    return module_launcher.new_data_dir("embedded")


@pytest.fixture(scope="module")
def first_start(module_launcher: Launcher, data_dir: Path) -> FirstStart:
    """A server's first start on an empty data directory (no DATABASE_URL), and Ada's token."""
    server = module_launcher.serve(data_dir=data_dir, healthy=False)
    # While the server starts: the signing key is created atomically by whichever comes first.
    bearer = token(data_dir, "ada@example.com", ["admin"], name="Ada", public_url=server.base_url)
    server.wait_healthy()
    viewer = gql(server.base_url, VIEWER, token=bearer)["viewer"]
    return FirstStart(server, data_dir, bearer, viewer)


def test_first_start_serves_the_api(first_start: FirstStart) -> None:
    base = first_start.server.base_url
    viewer = first_start.viewer
    assert viewer["email"] == "ada@example.com"
    assert viewer["name"] == "Ada"
    assert viewer["groups"] == ["admin"]
    assert isinstance(viewer["id"], str)
    assert viewer["id"]

    with httpx.Client(base_url=base, timeout=10) as client:
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.headers.get("x-request-id")

        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"

        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "assay_db_statements_total" in metrics.text
        assert "assay_graphql_requests_total" in metrics.text

        jwks = client.get("/.well-known/jwks.json")
        assert jwks.status_code == 200
        keys = jwks.json()["keys"]
        assert len(keys) == 1
        assert keys[0]["kty"] == "RSA"

        graphiql = client.get("/graphql", headers={"Accept": "text/html"})
        assert graphiql.status_code == 200
        assert graphiql.headers["content-type"].startswith("text/html")
        assert "graphiql" in graphiql.text.lower()

        echoed = client.get("/healthz", headers={"X-Request-ID": "e2e-request-42"})
        assert echoed.headers["x-request-id"] == "e2e-request-42"


def test_sigterm_stops_the_server_and_its_postgres(first_start: FirstStart) -> None:
    server = first_start.server
    if server.poll() is not None:
        pytest.skip("the first server already stopped")
    assert len(postmasters(server.pgdata)) == 1, "the embedded PostgreSQL should be running"

    started = time.monotonic()
    code = server.terminate(timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 30
    assert code in (0, 128 + signal.SIGTERM, -signal.SIGTERM), server.describe()

    leftover = wait_until_gone(processes_mentioning(str(server.pgdata)), timeout=5)
    assert leftover == [], f"PostgreSQL still running after the server exited: {leftover}"
    assert "stopping embedded PostgreSQL" in server.output(tail=1_000_000)


def test_restart_keeps_the_data_and_the_signing_key(
    module_launcher: Launcher, first_start: FirstStart
) -> None:
    first = first_start.server
    if first.poll() is None:  # run on its own: stop the first server here
        first.terminate()
    # The same port, so the same public URL: the local issuer is named after it.
    server = module_launcher.serve(data_dir=first_start.data_dir, port=first.port)
    try:
        again = gql(server.base_url, VIEWER, token=first_start.token)["viewer"]
        assert again["id"] == first_start.viewer["id"]
        assert again == first_start.viewer
    finally:
        server.terminate()
    assert wait_until_gone(processes_mentioning(str(server.pgdata)), timeout=5) == []


def test_two_worker_processes_share_one_postgres(
    module_launcher: Launcher,
    data_dir: Path,
    first_start: FirstStart,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if first_start.server.poll() is None:
        first_start.server.terminate()
    # The first server's port: its public URL names the issuer of Ada's token.
    server = module_launcher.serve(
        "--workers", "2", data_dir=data_dir, port=first_start.server.port, healthy=False
    )
    if not server.healthy_within(START_TIMEOUT):
        respawns = len(WORKER_DIED.findall(server.output(tail=1_000_000)))
        assert len(postmasters(server.pgdata)) == 1, "respawned workers started a PostgreSQL"
        assert not respawns, f"uvicorn respawned slow-starting workers {respawns} times"
        pytest.fail(f"not healthy after {START_TIMEOUT:.0f} s: {server.describe()}")
    # Several requests, so that both uvicorn processes are likely to answer some.
    for _ in range(6):
        viewer = gql(server.base_url, VIEWER, token=first_start.token)["viewer"]
        assert viewer["id"] == first_start.viewer["id"]
    assert httpx.get(f"{server.base_url}/readyz", timeout=10).status_code == 200

    running = postmasters(server.pgdata)
    assert len(running) == 1, f"expected one postmaster for {server.pgdata}, got {running}"

    started = time.monotonic()
    server.terminate(timeout=30)
    assert time.monotonic() - started < 30
    leftover = wait_until_gone(processes_mentioning(str(server.pgdata)), timeout=5)
    assert leftover == [], f"PostgreSQL still running after the server exited: {leftover}"
    left = wait_until_gone(group_members(server.pid), timeout=5)
    assert left == [], f"uvicorn worker processes left behind: {left}"

    # uvicorn kills a worker that does not answer its 5 s health ping; a worker still importing
    # the server (scikit-learn included) on a busy machine can be killed and replaced.
    restarted = len(WORKER_DIED.findall(server.output(tail=1_000_000)))
    if restarted:
        with capsys.disabled():
            print(f"\n[--workers 2] uvicorn replaced {restarted} worker(s) during startup")


def test_malformed_setting_is_named_and_fails_the_start(tmp_path: Path) -> None:
    env = base_env(tmp_path, extra={"ASSAY_PORT": "abc"})
    done = run_assay(["serve"], env)
    assert done.returncode != 0
    assert "ASSAY_PORT" in done.stderr, done.stderr
    assert not (tmp_path / "postgres").exists(), "no database should start on bad settings"


def test_help_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    # In-process: the console script's own entry point, without seconds of imports per command.
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: assay")
    for command in ("serve", "worker", "migrate", "token", "seed"):
        assert command in out
    for command in ("serve", "worker", "migrate", "token", "seed"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0, command
        assert f"usage: assay {command}" in capsys.readouterr().out


SLOW_WORKER_START = """
import sys, time
if "--multiprocessing-fork" in sys.argv:  # uvicorn's spawned worker processes only
    time.sleep(6)
"""


def test_slow_starting_worker_processes_are_not_killed(
    launcher: Launcher, postgres_url: str, shared_models: Path, tmp_path: Path
) -> None:
    """A machine where a worker process needs 6 s more to start, made deterministic."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_WORKER_START)
    server = launcher.serve(
        "--workers",
        "2",
        data_dir=launcher.new_data_dir("slow"),
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models), "PYTHONPATH": str(tmp_path)},
        healthy=False,
    )
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        assert not WORKER_DIED.search(server.output(tail=1_000_000)), server.describe()
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    else:
        pytest.fail(f"not healthy within 45 s: {server.describe()}")
    assert not WORKER_DIED.search(server.output(tail=1_000_000)), server.describe()
