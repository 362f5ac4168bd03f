"""Closed-loop HTTP/1.1 load: wrk when it is on PATH, else an asyncio client with keep-alive.

Both report the same `LoadResult`: requests completed in the measured window, latency
percentiles, errors, and the load generator's own CPU use (to show it was not the limit).
The warm-up is a run of its own. Both call `at_start` after it, just before the measured run,
and `at_end` just after that run, so the caller can wait for the server to finish the requests
left in flight and read its counters and CPU time around the measured run alone.

The asyncio client can also check every answer (`check`: the index of the body sent and the
response body; it returns what is wrong, or None) and stop after a number of requests
(`limit`: S1's sequential requests); wrk can do neither.
"""

from __future__ import annotations

import asyncio
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.procs import HOST

MAX_RESPONSE_HEAD = 64 * 1024
REQUEST_TIMEOUT = 30.0

Hook = Callable[[], None]
# (index of the body sent, the response's body) -> what is wrong with the answer, or None.
Checker = Callable[[int, bytes], str | None]
WRONG_EXAMPLES = 5


class ErrorAnswer(Exception):
    """Raised by a check for an answer that is an error (a GraphQL error, a failed
    prediction): counted with the errors, not as a wrong answer."""


@dataclass(frozen=True)
class LoadResult:
    tool: str
    connections: int
    duration: float
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    client_cpu_seconds: float
    sent: int = 0  # requests begun in the measured run, all answered (asyncio client only)
    wrong: int = 0  # answers `check` refused
    wrong_examples: tuple[str, ...] = ()
    error_examples: tuple[str, ...] = ()

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def client_cpu_share(self) -> float:
        """The load generator's CPU, in cores, over the measured window."""
        return self.client_cpu_seconds / self.duration if self.duration > 0 else 0.0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def request_bytes(
    port: int, path: str, body: bytes, token: str | None, accept_encoding: str | None = None
) -> bytes:
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if accept_encoding:
        head.append(f"Accept-Encoding: {accept_encoding}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_RESPONSE_HEAD:
        raise ValueError("response head too large")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("the load generator needs Content-Length responses")
    return status, await reader.readexactly(length)


class _Window:
    def __init__(
        self,
        warmup: float,
        duration: float,
        check: Checker | None = None,
        limit: int | None = None,
    ) -> None:
        now = time.perf_counter()
        self.start = now + warmup
        self.end = self.start + duration
        self.latencies: list[float] = []
        self.errors = 0
        self.next_body = 0
        self.check, self.limit = check, limit
        self.sent = 0
        self.wrong: list[str] = []
        self.failures: list[str] = []

    def fail(self, what: str) -> None:
        if len(self.failures) < WRONG_EXAMPLES:
            self.failures.append(what)

    def is_over(self, now: float) -> bool:
        return now >= self.end or (self.limit is not None and self.sent >= self.limit)

    def judge(self, index: int, status: int, content: bytes, counted: bool) -> None:
        """Check an answer (a 200 one: others are errors already)."""
        if self.check is None or status != 200:
            return
        try:
            problem = self.check(index, content)
        except ErrorAnswer as error:
            self.errors += counted
            self.fail(str(error))
            return
        if problem is not None:
            self.wrong.append(problem)


async def _connection(port: int, requests: Sequence[bytes], window: _Window) -> None:
    reader, writer = await asyncio.open_connection(HOST, port, limit=2**24)
    try:
        while True:
            began = time.perf_counter()
            if window.is_over(began):
                return
            index = window.next_body % len(requests)
            window.next_body += 1
            if window.start <= began:
                window.sent += 1
            writer.write(requests[index])
            try:
                status, content = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
            except TimeoutError:
                # As wrk does: an error; the answer may still come, so use a new connection.
                if window.start <= began:
                    window.errors += 1
                window.fail("timeout")
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port, limit=2**24)
                continue
            done = time.perf_counter()
            counted = window.start <= began and done <= window.end
            if counted:
                window.latencies.append(done - began)
                if status != 200:
                    window.errors += 1
            if status != 200:
                window.fail(f"HTTP {status}: {content[:300]!r}")
            window.judge(index, status, content, counted)
    finally:
        writer.close()


async def _asyncio_load(
    port: int,
    requests: Sequence[bytes],
    connections: int,
    warmup: float,
    duration: float,
    check: Checker | None = None,
    limit: int | None = None,
) -> _Window:
    window = _Window(warmup, duration, check, limit)
    await asyncio.gather(*(_connection(port, requests, window) for _ in range(connections)))
    return window


def asyncio_load(
    port: int,
    path: str,
    bodies: Sequence[bytes],
    token: str | None,
    connections: int,
    warmup: float,
    duration: float,
    at_start: Hook | None = None,
    at_end: Hook | None = None,
    *,
    check: Checker | None = None,
    limit: int | None = None,
    accept_encoding: str | None = None,
) -> LoadResult:
    """With `limit`, the measured run ends after that many requests (or `duration`), and its
    duration is the time it took. `accept_encoding` asks for compressed answers (the check
    then sees them compressed)."""
    requests = [request_bytes(port, path, b, token, accept_encoding) for b in bodies]
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        if warmup > 0:
            runner.run(_asyncio_load(port, requests, connections, 0.0, warmup, check))
        if at_start is not None:
            at_start()
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        measured = _asyncio_load(port, requests, connections, 0.0, duration, check, limit)
        window = runner.run(measured)
        wall = time.perf_counter() - wall_before
        if limit is not None:
            duration = wall
        cpu = (time.process_time() - cpu_before) * duration / wall  # share of the window
        if at_end is not None:
            at_end()
    latencies = sorted(window.latencies)
    return LoadResult(
        tool="asyncio",
        connections=connections,
        duration=duration,
        requests=len(latencies),
        errors=window.errors,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        client_cpu_seconds=cpu,
        sent=window.sent,
        wrong=len(window.wrong),
        wrong_examples=tuple(window.wrong[:WRONG_EXAMPLES]),
        error_examples=tuple(window.failures),
    )


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT %d %d %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def wrk_script(
    bodies: Sequence[bytes], token: str | None, accept_encoding: str | None = None
) -> str:
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    if token:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
    if accept_encoding:
        lines.append(f'wrk.headers["Accept-Encoding"] = {_lua_string(accept_encoding)}')
    lines.append("local bodies = {")
    lines.extend(f"  {_lua_string(b.decode())}," for b in bodies)
    lines.append("}")
    lines.append("local n, i = #bodies, 0")
    lines.append(
        "request = function()\n  i = i % n + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend"
    )
    return "\n".join(lines) + "\n" + LUA_DONE


def parse_wrk(output: str) -> tuple[int, float, int, float, float, float]:
    """(requests, seconds, errors, p50 ms, p95 ms, p99 ms) from the script's result line."""
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            v = [int(x) for x in line.split()[1:]]
            return v[0], v[1] / 1e6, sum(v[2:7]), v[7] / 1000, v[8] / 1000, v[9] / 1000
    raise RuntimeError(f"wrk printed no result line:\n{output[-2000:]}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wrk_load(
    port: int,
    path: str,
    bodies: Sequence[bytes],
    token: str | None,
    connections: int,
    warmup: float,
    duration: float,
    at_start: Hook | None = None,
    at_end: Hook | None = None,
    *,
    accept_encoding: str | None = None,
) -> LoadResult:
    wrk = shutil.which("wrk")
    assert wrk is not None
    with tempfile.TemporaryDirectory(prefix="assay-bench-wrk-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(wrk_script(bodies, token, accept_encoding))
        url = f"http://{HOST}:{port}{path}"

        def call(seconds: float) -> str:
            argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
            argv += ["--timeout", "30s", "-s", str(script), url]
            done = subprocess.run(
                argv, capture_output=True, timeout=seconds + 60, check=True, text=True
            )
            return done.stdout

        if warmup > 0:
            call(warmup)
        if at_start is not None:
            at_start()
        cpu_before = _children_cpu()
        output = call(duration)
        cpu = _children_cpu() - cpu_before
        if at_end is not None:
            at_end()
    requests, seconds, errors, p50, p95, p99 = parse_wrk(output)
    return LoadResult("wrk", connections, seconds, requests, errors, p50, p95, p99, cpu)


def drive(
    port: int,
    bodies: Sequence[bytes],
    token: str | None,
    connections: int,
    warmup: float,
    duration: float,
    tool: str = "auto",
    path: str = "/graphql",
    *,
    at_start: Hook | None = None,
    at_end: Hook | None = None,
    accept_encoding: str | None = None,
) -> LoadResult:
    """Load the server with `bodies` in turn over `connections` keep-alive connections,
    asking for compressed answers with `accept_encoding` (an Accept-Encoding value)."""
    use_wrk = tool == "wrk" or (tool == "auto" and shutil.which("wrk") is not None)
    if use_wrk:
        return wrk_load(
            port, path, bodies, token, connections, warmup, duration, at_start, at_end,
            accept_encoding=accept_encoding,
        )  # fmt: skip
    return asyncio_load(
        port, path, bodies, token, connections, warmup, duration, at_start, at_end,
        accept_encoding=accept_encoding,
    )  # fmt: skip


def dumps_result(result: LoadResult) -> bytes:
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_DATACLASS)
