"""Command-line tools that the tests run from virtualenvs of their own.

checkov pins boto3 and packaging exactly (see tests/lock.py), so it lives in
`<project venv>/tools/checkov`, installed from constraints-checkov.txt without
dependency resolution. It is built on first use and again only when the lock changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from tests.lock import CHECKOV_LOCK


def tool_home(name: str) -> Path:
    """Where a tool's virtualenv lives: inside the running (project) virtualenv."""
    in_venv = sys.prefix != sys.base_prefix
    base = Path(sys.prefix) if in_venv else Path.home() / ".cache" / "assay"
    return base / "tools" / name


def checkov() -> Path:
    """The checkov executable of the locked tool virtualenv, installing it if needed."""
    home = tool_home("checkov")
    stamp = home / "lock.sha256"
    digest = hashlib.sha256(CHECKOV_LOCK.read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == digest):
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        pip = str(home / "bin" / "pip")
        lock = str(CHECKOV_LOCK)
        subprocess.run([pip, "install", "-qq", "--no-deps", "-r", lock], check=True)
        subprocess.run([pip, "check"], check=True)
        stamp.write_text(digest)
    return home / "bin" / "checkov"
