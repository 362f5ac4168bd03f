"""One embedded PostgreSQL shared by the `assay` commands of a data directory.

Only the process that started it stops it; `assay serve` starts it again if it dies.
One server for the module (a start costs seconds); the test that kills its database runs last.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Served:
    server: AssayProcess
    data_dir: Path
    bearer: str


@pytest.fixture(scope="module")
def served(module_launcher: Launcher, shared_models: Path) -> Served:
    """`assay serve` on the embedded PostgreSQL of its own data directory."""
    data_dir = module_launcher.new_data_dir("embedded")
    env = {"ASSAY_MODEL_DIR": str(shared_models)}
    server = module_launcher.serve("--no-workers", data_dir=data_dir, env=env)
    bearer = token(data_dir, "ada@example.com", public_url=server.base_url)
    assert gql(server.base_url, VIEWER, token=bearer)["viewer"]["email"] == "ada@example.com"
    return Served(server, data_dir, bearer)


def test_seed_beside_serve_leaves_the_servers_database_running(
    served: Served, shared_models: Path
) -> None:
    server, data_dir, bearer = served.server, served.data_dir, served.bearer
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


def test_serve_says_where_graphiql_is_and_how_to_get_a_token(served: Served) -> None:
    server = served.server
    output = server.output()
    assert f"GraphiQL: {server.base_url}/graphql (signed in as demo@example.com)" in output
    assert "assay token --email" in output


def test_serve_starts_its_database_again_when_it_dies(served: Served) -> None:
    server, data_dir, bearer = served.server, served.data_dir, served.bearer
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
