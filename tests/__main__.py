"""`python -m tests`: every check that gates a landing, in order, stopping at the first failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGES = ["graph", "domain", "persistence", "auth", "integrations", "server", "telemetry"]

CHECKS: list[tuple[str, list[str]]] = [
    ("ruff check", [str(BIN / "ruff"), "check", "."]),
    ("ruff format", [str(BIN / "ruff"), "format", "--check", "."]),
    ("mypy", [str(BIN / "mypy"), "--strict", *PACKAGES, "tests", "bench", "infra"]),
    ("import layers", [str(BIN / "lint-imports")]),
    ("schema.graphql is current", [sys.executable, "-m", "server.cli", "schema", "--check"]),
    ("pytest", [sys.executable, "-m", "pytest", *sys.argv[1:]]),
]


def main() -> int:
    env = {**os.environ, "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", "/tmp")}
    for name, command in CHECKS:
        print(f"==> {name}: {' '.join(command)}", flush=True)
        code = subprocess.call(command, cwd=ROOT, env=env)
        if code != 0:
            print(f"==> {name} failed (exit {code})", flush=True)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
