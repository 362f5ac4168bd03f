"""The inference benchmark's rows, arithmetic and tables: every round, and the best of them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

CALLERS = {"S1": 1, "S2": 8, "S3": 64}
WORKLOADS = ("S1", "S2", "S3", "B1")
TITLES = {
    "S1": "one caller, sequential predictions",
    "S2": "8 concurrent callers",
    "S3": "64 concurrent callers",
    "B1": "1,000 inputs in one request, until every result is there",
}


@dataclass(frozen=True)
class InferenceRow:
    """One server's turn at one workload in one round.

    `predictions` were sent in the measured run and all answered; `per_second` counts those
    answered within it. CPU: the server's process tree (Assay's API process with its
    in-process workers, and PostgreSQL's) from an idle moment before the measured run until
    it is idle again after it, per prediction sent. B1 has no percentiles: `seconds` is from
    sending until the last result is there."""

    workload: str
    server: str
    round: int
    callers: int
    predictions: int
    seconds: float
    per_second: float
    p50_ms: float | None
    p99_ms: float | None
    api_cpu_ms: float | None = None  # per prediction
    db_cpu_ms: float | None = None  # per prediction; None: not Assay, or PostgreSQL not ours
    peak_rss_mib: float | None = None
    db_peak_rss_mib: float | None = None
    client_cpu_cores: float | None = None
    load_average: float | None = None  # 1-minute, when the turn began
    accepted_seconds: float | None = None  # B1 on Assay: until batchInference answered
    errors: int = 0  # HTTP errors, timeouts, GraphQL errors, failed predictions

    @property
    def cpu_ms(self) -> float | None:
        """Server CPU per prediction, PostgreSQL included."""
        if self.api_cpu_ms is None:
            return None
        return self.api_cpu_ms + (self.db_cpu_ms or 0.0)


def per_prediction_ms(cpu_seconds: float, predictions: int) -> float | None:
    return cpu_seconds * 1000 / predictions if predictions > 0 else None


def throughput(answered: int, seconds: float) -> float:
    return answered / seconds if seconds > 0 else 0.0


def time_calls(call: Callable[[], object], repeat: int) -> float:
    """The median wall time of `repeat` calls, in milliseconds (the floor: predict_proba)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# ----------------------------------------------------------------------- tables


def best(rows: Sequence[InferenceRow], server: str, workload: str) -> InferenceRow | None:
    """The round a server did best at a workload: lowest p50 (S1), most predictions per
    second (S2, S3), shortest time (B1)."""
    mine = [r for r in rows if r.server == server and r.workload == workload]
    if not mine:
        return None
    if workload == "S1":
        return min(mine, key=lambda r: r.p50_ms if r.p50_ms is not None else float("inf"))
    if workload == "B1":
        return min(mine, key=lambda r: r.seconds)
    return max(mine, key=lambda r: r.per_second)


def _n(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _cpu(row: InferenceRow | None) -> str:
    if row is None or row.cpu_ms is None:
        return "-"
    if row.db_cpu_ms is None:
        return _n(row.cpu_ms, 2)
    return f"{_n(row.cpu_ms, 2)} ({_n(row.api_cpu_ms, 2)} API + {_n(row.db_cpu_ms, 2)} PostgreSQL)"


def _rss(row: InferenceRow | None) -> str:
    if row is None or row.peak_rss_mib is None:
        return "-"
    if row.db_peak_rss_mib is None:
        return _n(row.peak_rss_mib, 0)
    return f"{_n(row.peak_rss_mib, 0)} + {_n(row.db_peak_rss_mib, 0)} PostgreSQL"


def _errors(row: InferenceRow) -> str:
    return f" ({row.errors:,} errors)" if row.errors else ""


def _rate(row: InferenceRow | None) -> str:
    return "-" if row is None else _n(row.per_second) + _errors(row)


SUMMARY_HEADER = (
    "| server | S1 one caller p50 / p99 ms | S2 8 callers pred/s | S3 64 callers pred/s "
    "| B1 1,000 inputs s | CPU ms/pred at 64 | peak RSS MiB at 64 |"
)


def summary(rows: Sequence[InferenceRow], servers: Sequence[str]) -> list[str]:
    """One line per server, the best of its rounds (as the issue's table)."""
    lines = [SUMMARY_HEADER, "|" + "---|" * 7]
    for server in servers:
        s1, s2, s3, b1 = (best(rows, server, w) for w in WORKLOADS)
        lines.append(
            f"| {server} | "
            + (f"{_n(s1.p50_ms, 2)} / {_n(s1.p99_ms, 2)}{_errors(s1)}" if s1 else "-")
            + f" | {_rate(s2)} | {_rate(s3)} | "
            f"{_n(b1.seconds if b1 else None, 3)} | {_cpu(s3)} | {_rss(s3)} |"
        )
    return lines


ROUNDS_HEADER = (
    "| workload | server | round | callers | predictions | seconds | pred/s | p50 ms | p99 ms "
    "| CPU ms/pred | peak RSS MiB | errors | load gen CPU (cores) | load avg |"
)
NOTES = (
    "pred/s: answers within the measured run over its duration (S1: requests one after the "
    "other; S2, S3: concurrent callers for the set duration after a warm-up). CPU ms/pred: "
    "the server's user + system CPU (process tree; Assay's API process with its in-process "
    "workers, plus PostgreSQL's processes) over the measured run, until Assay is idle again, "
    "per prediction sent. Peak RSS: the process tree's; PostgreSQL's is its processes' RSS "
    "added up, so its shared buffers count once in each process that touched them. B1: from "
    "sending until every result is there (Assay: stored, counted in the database; peers: the "
    "answer), each server's first batch (its warm-up) not timed. Every answer of every "
    "server matched predict_proba (a wrong one fails the run)."
    " load avg: the machine's 1-minute load average when the turn began."
)


def every_round(rows: Sequence[InferenceRow]) -> list[str]:
    lines = [ROUNDS_HEADER, "|" + "---|" * 14]
    for r in rows:
        per_second = None if r.workload == "B1" else r.per_second
        lines.append(
            f"| {r.workload} | {r.server} | {r.round} | {r.callers} | {r.predictions:,} | "
            f"{_n(r.seconds, 3)} | {_n(per_second)} | {_n(r.p50_ms, 2)} | {_n(r.p99_ms, 2)} | "
            f"{_cpu(r)} | {_rss(r)} | {r.errors:,} | {_n(r.client_cpu_cores, 2)} | "
            f"{_n(r.load_average, 2)} |"
        )
    return lines


def floor_line(floor: Mapping[int, float]) -> str:
    parts = [f"{n:,} row{'s' if n > 1 else ''} {ms:.3f} ms" for n, ms in floor.items()]
    return "the model in-process (`predict_proba`, median): " + "; ".join(parts)
