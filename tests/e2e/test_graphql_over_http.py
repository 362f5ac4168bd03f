"""The graphql-http audit (GraphQL over HTTP spec conformance) against a real `assay serve`.

Needs Node.js and npm: `npm ci --prefix tests/e2e` installs the pinned graphql-http once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Launcher

HERE = Path(__file__).resolve().parent
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="the GraphQL over HTTP audit needs Node.js and npm on the PATH (CI has them)",
)


@pytest.fixture(scope="module")
def audit_script() -> Path:
    """http_audit.mjs with its npm dependencies installed from package-lock.json."""
    assert NPM is not None
    if not (HERE / "node_modules" / "graphql-http").is_dir():
        done = subprocess.run(
            [NPM, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return HERE / "http_audit.mjs"


def run_audit(script: Path, url: str) -> list[dict[str, Any]]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(script), url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"audit failed to run:\n{done.stdout}\n{done.stderr}"
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_server_passes_every_must_and_should_audit(
    audit_script: Path, launcher: Launcher, postgres_url: str, shared_models: Path
) -> None:
    server = launcher.serve(
        "--no-workers",
        data_dir=launcher.new_data_dir(),
        database_url=postgres_url,
        env={"ASSAY_MODEL_DIR": str(shared_models)},
    )
    results = run_audit(audit_script, f"{server.base_url}/graphql")
    assert len(results) > 40, results
    failures = [
        r for r in results if r["status"] != "ok" and r["name"].startswith(("MUST", "SHOULD"))
    ]
    assert failures == [], "GraphQL over HTTP audit failures:\n" + json.dumps(failures, indent=2)
