"""Helpers for end-to-end tests that run the real `assay` command in subprocesses.

A `ServerProcess` is `assay serve` (or `assay worker`, `assay seed`, ...) with its own data
directory, a free port on 127.0.0.1 and its output captured to a file that failure messages
quote. Every wait is bounded; every process is killed at teardown whatever the test did.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import empty_tables

T = TypeVar("T")

ASSAY = Path(sys.executable).with_name("assay")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
HTTP_TIMEOUT = 30.0

# Settings that must not leak from the environment running the tests into a server under test.
_SCRUBBED_PREFIXES = ("ASSAY_",)
_SCRUBBED_NAMES = frozenset({"DATABASE_URL"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env(
    data_dir: Path,
    *,
    port: int | None = None,
    database_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of an `assay` subprocess: only the settings given here."""
    inherited = os.environ
    env = {
        name: value
        for name, value in inherited.items()
        if name not in _SCRUBBED_NAMES and not name.startswith(_SCRUBBED_PREFIXES)
    }
    env.setdefault("XDG_RUNTIME_DIR", "/tmp")
    env["ASSAY_DATA_DIR"] = str(data_dir)
    env["ASSAY_HOST"] = "127.0.0.1"
    env["ASSAY_LOG_FORMAT"] = "console"
    env["PYTHONUNBUFFERED"] = "1"
    if port is not None:
        env["ASSAY_PORT"] = str(port)
        env["ASSAY_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def run_assay(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one `assay` command to completion (bounded), capturing its output."""
    return subprocess.run(
        [str(ASSAY), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def token(
    data_dir: Path,
    email: str,
    groups: Sequence[str] = (),
    *,
    name: str = "",
    public_url: str | None = None,
) -> str:
    """A token from `assay token` signed with the key in `data_dir`.

    The local issuer's name is ASSAY_PUBLIC_URL when set, so pass the server's public URL.
    """
    args = ["token", "--email", email, "--name", name or email.split("@")[0]]
    for group in groups:
        args += ["--group", group]
    extra = {"ASSAY_PUBLIC_URL": public_url} if public_url else None
    done = run_assay(args, base_env(data_dir, extra=extra))
    assert done.returncode == 0, f"assay token failed ({done.returncode}):\n{done.stderr}"
    return done.stdout.strip()


def _headers(bearer: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {bearer}"} if bearer else {}


def _data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, f"HTTP {response.status_code}: {response.text[:2000]}"
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
    data: dict[str, Any] = body["data"]
    return data


def gql(
    base_url: str,
    query: str,
    variables: Mapping[str, Any] | None = None,
    token: str | None = None,
    *,
    timeout: float = HTTP_TIMEOUT,
) -> dict[str, Any]:
    """POST a GraphQL operation; return `data`, failing the test on HTTP or GraphQL errors."""
    response = httpx.post(
        f"{base_url}/graphql",
        json={"query": query, "variables": dict(variables or {})},
        headers=_headers(token),
        timeout=timeout,
    )
    return _data(response)


async def agql(
    base_url: str,
    query: str,
    variables: Mapping[str, Any] | None = None,
    token: str | None = None,
    *,
    http_timeout: float = HTTP_TIMEOUT,
) -> dict[str, Any]:
    """`gql` for async tests."""
    async with httpx.AsyncClient(timeout=http_timeout) as client:
        response = await client.post(
            f"{base_url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            headers=_headers(token),
        )
    return _data(response)


# ----------------------------------------------------------------------------- processes


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _proc_ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid ...; comm may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _is_postgres(pid: int) -> bool:
    cmdline = _proc_cmdline(pid)
    return bool(cmdline) and (
        Path(cmdline[0]).name == "postgres" or cmdline[0].startswith("postgres:")
    )


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text`."""
    return [pid for pid in _pids() if text in " ".join(_proc_cmdline(pid))]


def postmasters(pgdata: Path) -> list[int]:
    """PostgreSQL postmasters serving `pgdata`: `-D <pgdata>` with a non-postgres parent."""
    found = []
    for pid in _pids():
        cmdline = _proc_cmdline(pid)
        serves = any(
            arg == "-D" and value == str(pgdata) for arg, value in itertools.pairwise(cmdline)
        )
        ppid = _proc_ppid(pid)
        if serves and not (ppid is not None and _is_postgres(ppid)):
            found.append(pid)
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (zombies excluded: their cmdline is empty)."""
    members = []
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[3]) == pgid and _proc_cmdline(pid):
            members.append(pid)
    return members


def wait_until_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait (bounded) for processes to exit; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if _proc_cmdline(pid)]
    return alive


@dataclass
class AssayProcess:
    """One running `assay` subcommand with its output captured to `log_path`."""

    args: list[str]
    data_dir: Path
    env: dict[str, str]
    log_path: Path
    port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        assert self.port is not None, "not a server"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def start(self) -> AssayProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [str(ASSAY), *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one at teardown
            )
        finally:
            log.close()
        return self

    def output(self, tail: int = 8000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no output>"
        return text[-tail:]

    def describe(self) -> str:
        return f"`assay {' '.join(self.args)}` (log {self.log_path}):\n{self.output()}"

    def poll(self) -> int | None:
        assert self.process is not None
        return self.process.poll()

    def healthy_within(self, timeout: float) -> bool:
        """Whether GET /healthz answers 200 within `timeout`; fails if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                pytest.fail(f"exited with {code} before it was healthy: {self.describe()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until GET /healthz answers 200; fail with the output if it does not in time."""
        if not self.healthy_within(timeout):
            pytest.fail(f"not healthy after {timeout:.0f} s: {self.describe()}")

    def wait_for_output(self, text: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output(tail=1_000_000):
                return
            code = self.poll()
            if code is not None:
                pytest.fail(f"exited with {code} before logging {text!r}: {self.describe()}")
            time.sleep(0.1)
        pytest.fail(f"did not log {text!r} within {timeout:.0f} s: {self.describe()}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit code; fails the test if the process has not exited in time."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout:.0f} s: {self.describe()}")

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait (bounded) for the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group, then stop an embedded PostgreSQL left behind."""
        if self.process is not None:
            if self.process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            else:
                # uvicorn's worker processes share the group and may outlive their parent.
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
        for pid in postmasters(self.pgdata):  # only ever this process's own embedded database
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # fast shutdown
        wait_until_gone(postmasters(self.pgdata), timeout=15)


class Launcher:
    """Starts `assay` processes for one test and kills every one of them at teardown."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[AssayProcess] = []
        self._count = 0

    def new_data_dir(self, name: str = "data") -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def process(
        self,
        args: Sequence[str],
        *,
        data_dir: Path,
        database_url: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AssayProcess:
        self._count += 1
        log_path = self.root / f"{self._count:02d}-{args[0]}.log"
        proc = AssayProcess(
            args=list(args),
            data_dir=data_dir,
            env=base_env(data_dir, port=port, database_url=database_url, extra=env),
            log_path=log_path,
            port=port,
        )
        self.started.append(proc)
        return proc.start()

    def serve(
        self,
        *args: str,
        data_dir: Path,
        database_url: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        healthy: bool = True,
    ) -> AssayProcess:
        """`assay serve ARGS` on a free port (or `port`), waited for until healthy."""
        server = self.process(
            ["serve", *args],
            data_dir=data_dir,
            database_url=database_url,
            port=port or free_port(),
            env=env,
        )
        if healthy:
            server.wait_healthy()
        return server

    def worker(
        self,
        *args: str,
        data_dir: Path,
        database_url: str,
        env: Mapping[str, str] | None = None,
    ) -> AssayProcess:
        """`assay worker ARGS`, waited for until it logs that it started."""
        worker = self.process(
            ["worker", *args], data_dir=data_dir, database_url=database_url, env=env
        )
        worker.wait_for_output("worker started")
        return worker

    def kill_all(self) -> None:
        for proc in reversed(self.started):
            proc.kill()


@contextmanager
def _launcher(prefix: str) -> Iterator[Launcher]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    launcher = Launcher(root)
    try:
        yield launcher
    finally:
        launcher.kill_all()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    """Processes for one test, all killed when it ends."""
    with _launcher("assay-e2e-") as launcher:
        yield launcher


@pytest.fixture(scope="module")
def module_launcher() -> Iterator[Launcher]:
    """Processes shared by a module's tests, all killed when the module ends."""
    with _launcher("assay-e2e-mod-") as launcher:
        yield launcher


@pytest.fixture(scope="session")
def shared_models() -> Iterator[Path]:
    """One model directory for the session: the default models are trained once, not per server."""
    root = Path(tempfile.mkdtemp(prefix="assay-e2e-models-"))
    try:
        yield root / "models"
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def wait_for(
    check: Callable[[], Awaitable[T]],
    within: float,
    *,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Await `check()` until it returns something truthy (bounded); return that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        last = await check()
        if last:
            return last
        if loop.time() >= deadline:
            pytest.fail(f"{message} not reached within {within:.0f} s (last: {last!r})")
        await asyncio.sleep(interval)


async def truncate_all(engine: AsyncEngine) -> None:
    """Empty every table, as the `db` fixture does, for module-scoped fixtures."""
    await empty_tables(engine)


def model_id(base_url: str, bearer: str, name: str = "iris-species") -> str:
    models = gql(base_url, "{ models { id name } }", token=bearer)["models"]
    ids = [m["id"] for m in models if m["name"] == name]
    assert ids, f"no model {name!r} among {[m['name'] for m in models]}"
    found: str = ids[0]
    return found
