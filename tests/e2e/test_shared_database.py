"""One embedded PostgreSQL shared by the `assay` commands of a data directory.

Only the process that started it stops it; `assay serve` starts it again if it dies.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    AssayProcess,
    Launcher,
    base_env,
    gql,
    postmasters,
    run_assay,
    token,
    wait_until_gone,
)

pytestmark = pytest.mark.e2e

VIEWER = "{ viewer { email } }"


def serve_embedded(launcher: Launcher, models: Path) -> tuple[AssayProcess, Path, str]:
    data_dir = launcher.new_data_dir("embedded")
    server = launcher.serve("--no-workers", data_dir=data_dir, env={"ASSAY_MODEL_DIR": str(models)})
    bearer = token(data_dir, "ada@example.com", public_url=server.base_url)
    assert gql(server.base_url, VIEWER, token=bearer)["viewer"]["email"] == "ada@example.com"
    return server, data_dir, bearer


def test_seed_beside_serve_leaves_the_servers_database_running(
    launcher: Launcher, shared_models: Path
) -> None:
    server, data_dir, bearer = serve_embedded(launcher, shared_models)
    (postmaster,) = postmasters(data_dir / "postgres")

    env = base_env(data_dir, extra={"ASSAY_MODEL_DIR": str(shared_models)})
    seeded = run_assay(["seed", "--users", "2", "--submissions-per-user", "1"], env, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    assert "assay: signed in 2 users" in seeded.stderr  # progress, on stderr
    assert "assay: created 2 submissions for 2/2 users" in seeded.stderr
    migrated = run_assay(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr

    assert postmasters(data_dir / "postgres") == [postmaster], "a command stopped the database"
    assert gql(server.base_url, VIEWER, token=bearer, timeout=5)["viewer"]
    assert server.poll() is None


def test_serve_says_where_graphiql_is_and_how_to_get_a_token(
    launcher: Launcher, shared_models: Path
) -> None:
    server, _, _ = serve_embedded(launcher, shared_models)
    output = server.output()
    assert f"GraphiQL: {server.base_url}/graphql (signed in as demo@example.com)" in output
    assert "assay token --email" in output


def test_serve_starts_its_database_again_when_it_dies(
    launcher: Launcher, shared_models: Path
) -> None:
    server, data_dir, bearer = serve_embedded(launcher, shared_models)
    (postmaster,) = postmasters(data_dir / "postgres")

    os.kill(postmaster, signal.SIGKILL)
    assert wait_until_gone([postmaster], timeout=10) == []

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        restarted = postmasters(data_dir / "postgres")
        if restarted and restarted != [postmaster]:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the database was not started again: {server.describe()}")
    deadline = time.monotonic() + 15
    while True:
        try:
            assert gql(server.base_url, VIEWER, token=bearer, timeout=5)["viewer"]
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert server.poll() is None
