"""The benchmark's window measurements: /metrics parsing, /proc CPU time, the table's columns."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from bench import load, measure, procs, run
from bench.report import COLUMNS, Report, Row, markdown, markdown_rows, ordered, percent, to_json

ASSAY_METRICS = """\
# HELP assay_graphql_requests_total GraphQL operations executed.
# TYPE assay_graphql_requests_total counter
assay_graphql_requests_total{operation="W1",outcome="ok",type="query"} 10.0
assay_graphql_requests_total{operation="W2",outcome="ok",type="query"} 5.0
# HELP assay_graphql_requests_created GraphQL operations executed.
# TYPE assay_graphql_requests_created gauge
assay_graphql_requests_created{operation="W1",outcome="ok",type="query"} 1.7e+09
# TYPE assay_graphql_errors_total counter
# TYPE assay_db_statements_total counter
assay_db_statements_total 70.0
# TYPE assay_graphql_execution_total counter
assay_graphql_execution_total{path="compiled",reason=""} 12.0
assay_graphql_execution_total{path="fallback",reason="disabled"} 3.0
"""


def test_parse_sums_by_name_and_labels_and_keeps_declared_empty_metrics() -> None:
    samples = measure.parse(ASSAY_METRICS)
    assert measure.total(samples, measure.REQUESTS) == 15.0
    assert measure.total(samples, measure.REQUESTS, operation="W2") == 5.0
    assert measure.total(samples, measure.EXECUTION, path="compiled") == 12.0
    assert measure.total(samples, measure.STATEMENTS) == 70.0
    # `_created` is a different metric, not part of the counter.
    assert "assay_graphql_requests_created" in samples
    assert samples[measure.ERRORS] == {}
    assert measure.total(samples, measure.ERRORS) == 0.0
    assert measure.total(samples, "absent_total") == 0.0


def test_parse_reads_escaped_label_values_and_timestamps() -> None:
    text = 'm_total{reason="a \\"quoted\\", b\\\\c",path="fallback"} 2 1700000000000\nplain 1.5e1\n'
    samples = measure.parse(text)
    assert samples["m_total"] == {(("path", "fallback"), ("reason", 'a "quoted", b\\c')): 2.0}
    assert measure.total(samples, "plain") == 15.0
    with pytest.raises(ValueError, match="bad label set"):
        measure.parse("m{oops} 1\n")


def _snapshot(at: float, cpu: float, text: str) -> measure.Snapshot:
    return measure.Snapshot(at=at, cpu_seconds=cpu, samples=measure.parse(text))


def test_window_subtracts_counters_and_cpu() -> None:
    before = _snapshot(
        10.0,
        2.0,
        'assay_graphql_requests_total{operation="W2"} 100\n'
        'assay_graphql_execution_total{path="compiled",reason=""} 90\n'
        'assay_graphql_execution_total{path="fallback",reason="directive"} 10\n',
    )
    after = _snapshot(
        13.0,
        3.5,
        'assay_graphql_requests_total{operation="W2"} 400\n'
        'assay_graphql_errors_total{code="INTERNAL"} 2\n'
        'assay_graphql_execution_total{path="compiled",reason=""} 388\n'
        'assay_graphql_execution_total{path="fallback",reason="directive"} 10\n'
        'assay_graphql_execution_total{path="fallback",reason="too_deep"} 2\n',
    )
    w = measure.window(before, after)
    assert (w.seconds, w.cpu_seconds, w.requests, w.graphql_errors) == (3.0, 1.5, 300, 2)
    assert (w.compiled, w.fallback) == (298, 2)
    assert w.fallback_reasons == {"too_deep": 2}  # reasons that did not grow are left out
    assert w.cpu_ms_per_request == pytest.approx(5.0)
    assert w.compiled_share == pytest.approx(298 / 300)


def test_window_without_the_execution_counter_or_requests() -> None:
    baseline = _snapshot(0.0, 1.0, "assay_graphql_requests_total 7.0\n")
    w = measure.window(baseline, _snapshot(1.0, 1.2, "assay_graphql_requests_total 7.0\n"))
    assert (w.compiled, w.fallback, w.compiled_share) == (None, None, None)
    assert w.cpu_ms_per_request is None  # no request completed: no per-request figure
    declared = _snapshot(0.0, 0.0, "# TYPE assay_graphql_execution_total counter\n")
    w = measure.window(declared, declared)
    assert (w.compiled, w.fallback, w.compiled_share) == (0, 0, None)


def test_statements_per_request_ignore_a_background_statement_in_one_count() -> None:
    assert measure.per_request([1, 2, 1, 1, 1]) == 1
    assert measure.per_request([3, 3, 4]) == 3


@pytest.mark.parametrize(
    ("compiled", "fallback", "share"),
    [(10, 0, 1.0), (0, 10, 0.0), (3, 1, 0.75), (0, 0, None), (None, None, None)],
)
def test_compiled_share(compiled: int | None, fallback: int | None, share: float | None) -> None:
    assert measure.compiled_share(compiled, fallback) == share


@pytest.mark.parametrize(
    ("share", "text"),
    [(None, "-"), (1.0, "100%"), (0.0, "0%"), (0.875, "87.5%"), (0.99999, "99.9%"), (1e-5, "0.1%")],
)
def test_percent_is_exact_only_at_the_ends(share: float | None, text: str) -> None:
    assert percent(share) == text


STAT = (
    "4242 (python3 (x) y) S 4200 4242 4242 0 -1 4194560 100 0 0 0 "
    "150 25 7 3 20 0 3 0 943735 3133440 5000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1"
)


def test_parse_stat_reads_cpu_ticks_rss_and_parent_past_an_odd_command_name() -> None:
    stat = procs.parse_stat(STAT)
    assert stat == procs.ProcStat(pid=4242, ppid=4200, cpu_ticks=150 + 25 + 7 + 3, rss_pages=5000)


def test_subtree_is_the_root_and_its_descendants() -> None:
    def stat(pid: int, ppid: int) -> procs.ProcStat:
        return procs.ProcStat(pid=pid, ppid=ppid, cpu_ticks=pid, rss_pages=1)

    stats = [stat(1, 0), stat(10, 1), stat(11, 10), stat(12, 11), stat(13, 10), stat(20, 1)]
    assert sorted(s.pid for s in procs.subtree(10, stats)) == [10, 11, 12, 13]
    assert procs.subtree(10, stats)[0].pid == 10
    assert [s.pid for s in procs.subtree(20, stats)] == [20]
    with pytest.raises(ProcessLookupError):
        procs.subtree(99, stats)


def test_cpu_seconds_and_rss_of_this_process() -> None:
    assert procs.cpu_seconds(os.getpid()) > 0
    assert procs.rss_bytes(os.getpid()) > 0


def _row(server: str, connections: int, rps: float, **extra: object) -> Row:
    fields: dict[str, object] = {
        "workload": "W1",
        "server": server,
        "connections": connections,
        "rps": rps,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "p99_ms": 3.0,
        "requests": 10,
        "errors": 0,
        "sql_per_request": 3.0,
        "cpu_ms_per_request": 4.0,
        "peak_rss_mib": 50.0,
        "client_cpu_cores": 0.1,
        "tool": "wrk",
        **extra,
    }
    return Row(**fields)  # type: ignore[arg-type]


def test_table_has_both_assay_paths_and_the_baseline_with_ratios() -> None:
    paths = {"compiled_operations": 40, "fallback_operations": 0}
    rows = [
        _row("assay (reference)", 8, 10.0, compiled_operations=0, fallback_operations=30),
        _row("assay (reference)", 32, 12.0, compiled_operations=0, fallback_operations=30),
        _row("baseline", 8, 200.0),
        _row("baseline", 32, 150.0),
        _row("assay (compiled)", 8, 100.0, **paths),
        _row("assay (compiled)", 32, 75.0, **paths),
    ]
    report = Report(meta={"cpus": 2}, rows=rows)
    shown = report.with_ratios()
    assert [(r.server, r.connections) for r in shown] == [
        ("assay (compiled)", 8),
        ("assay (reference)", 8),
        ("baseline", 8),
        ("assay (compiled)", 32),
        ("assay (reference)", 32),
        ("baseline", 32),
    ]
    assert [r.ratio_to_baseline for r in shown] == [0.5, 0.05, None, 0.5, 0.08, None]
    lines = markdown_rows(shown)
    assert lines[0].split(" | ")[10] == "compiled"
    assert lines[1] == "|" + "---|" * len(COLUMNS)
    assert lines[2].startswith("| W1 | assay (compiled) | 8 | 100.0 |")
    assert "| 4.00 | 50.0 | 100% | 0.50x |" in lines[2]
    assert "| 4.00 | 50.0 | 0% | 0.05x |" in lines[3]
    assert "| 4.00 | 50.0 | - | - |" in lines[4]
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines)
    assert "CPU ms/req: the server's user + system CPU time" in markdown(report)
    document = orjson.loads(to_json(report))
    assert [r["compiled_share"] for r in document["rows"][:3]] == [1.0, 0.0, None]
    assert document["rows"][0]["compiled_operations"] == 40
    assert document["rows"][0]["fallback_reasons"] == {}


def test_table_order_keeps_workloads_in_run_order_and_unknown_servers_before_baseline() -> None:
    rows = [
        _row("baseline", 8, 1.0),
        Row(**{**_row("assay (compiled)", 8, 1.0).__dict__, "workload": "W2"}),
        _row("other", 8, 1.0),
        _row("assay (compiled)", 8, 1.0),
    ]
    assert [(r.workload, r.server) for r in ordered(rows)] == [
        ("W1", "assay (compiled)"),
        ("W1", "other"),
        ("W1", "baseline"),
        ("W2", "assay (compiled)"),
    ]


def test_options_run_both_assay_servers_by_default() -> None:
    full = run.parse_options([])
    assert full.executors == ("reference", "compiled")  # the compiled one last: it runs W3-W5
    assert full.connections == (8, 32)
    assert (full.warmup, full.duration) == (2.0, 10.0)
    quick = run.parse_options(["--quick"])
    assert (quick.users, quick.connections, quick.warmup, quick.duration) == (200, (8,), 1.0, 3.0)
    assert run.parse_options(["--quick", "--connections", "8,32"]).connections == (8, 32)
    only = run.parse_options(["--executors", "Compiled"])
    assert only.executors == ("compiled",)
    assert run.ASSAY_VARIANTS["reference"][1] == {"ASSAY_COMPILED_EXECUTION": "false"}
    with pytest.raises(SystemExit):
        run.parse_options(["--executors", "fast"])


class _TinyServer:
    """A keep-alive HTTP/1.1 server in its own thread that answers `{}` and counts requests."""

    def __init__(self) -> None:
        self.served = 0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.served += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, procs.HOST, 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> _TinyServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_the_asyncio_client_marks_the_window_between_warm_up_and_measured_run() -> None:
    marks: list[tuple[str, int]] = []
    with _TinyServer() as server:
        result = load.drive(
            server.port, [b"{}"], "tok", 2, 0.05, 0.1, "asyncio",
            at_start=lambda: marks.append(("start", server.served)),
            at_end=lambda: marks.append(("end", server.served)),
        )  # fmt: skip
    assert [name for name, _ in marks] == ["start", "end"]
    (_, warmed), (_, done) = marks
    assert warmed > 0  # the warm-up ran before the window opened
    # Every request of the measured run was answered before the window closed.
    assert done - warmed >= result.requests > 0
    assert result.tool == "asyncio"
    assert result.errors == 0


def test_the_asyncio_client_stops_after_its_limit_and_counts_what_it_sent() -> None:
    with _TinyServer() as server:
        result = load.drive(server.port, [b"{}"], None, 1, 0.0, 0.1, "asyncio")
        assert result.sent > 0  # without a limit: as many as the duration allows
        served = server.served
        limited = load.asyncio_load(server.port, "/", [b"{}"], None, 1, 0.0, 30.0, limit=7)
        assert (limited.sent, limited.requests, server.served - served) == (7, 7, 7)
        assert limited.duration < 30.0  # the time the seven took, not the bound


def test_the_asyncio_client_counts_wrong_answers_and_error_answers_apart() -> None:
    seen: list[tuple[int, bytes]] = []

    def check(index: int, content: bytes) -> str | None:
        seen.append((index, content))
        if index == 2:
            raise load.ErrorAnswer("an error, not an answer")
        return None if index == 0 else f"body {index} answered {content!r}"

    with _TinyServer() as server:
        result = load.asyncio_load(
            server.port, "/", [b"a", b"b", b"c"], None, 1, 0.0, 30.0, check=check, limit=6
        )
    assert seen == [(0, b"{}"), (1, b"{}"), (2, b"{}")] * 2
    assert (result.wrong, result.errors) == (2, 2)
    assert result.wrong_examples == ("body 1 answered b'{}'",) * 2
    assert result.error_examples == ("an error, not an answer",) * 2


def test_a_process_group_is_stopped_whole_even_a_child_that_ignores_sigterm(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "child.pid"
    stubborn = (
        "import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    leader = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {stubborn!r}]); time.sleep(120)"
    )
    child = procs.start("group", [sys.executable, "-c", leader], {}, tmp_path, stops_group=True)
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the stubborn child never started"
        time.sleep(0.05)
    stubborn_pid = int(pid_file.read_text())
    child.stop()
    assert child.popen.poll() is not None
    assert not _alive(stubborn_pid)


def _alive(pid: int) -> bool:
    """Still running after a while: neither gone nor a zombie waiting to be reaped."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return False
        if state == "Z":
            return False
        time.sleep(0.05)
    return True
