"""The results table (markdown) and the JSON record of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.measure import compiled_share

MIB = 1024 * 1024
BASELINE = "baseline"
POSTGRAPHILE = "postgraphile 5"
# Table order within a workload and connection count; other servers follow, baseline last.
SERVER_ORDER = ("assay (compiled)", "assay (reference)")


@dataclass(frozen=True)
class Row:
    """One timed HTTP run: a workload against one server at one connection count.

    `cpu_ms_per_request` is the server's CPU time (user + system, process tree) from the end
    of the warm-up until it is idle after the measured run, divided by `server_requests`, the
    requests it completed meanwhile;
    `compiled_operations` / `fallback_operations` are the execution-path counter's growth
    over the same window (None for a server without the counter)."""

    workload: str
    server: str
    connections: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    errors: int
    sql_per_request: float | None
    cpu_ms_per_request: float | None
    peak_rss_mib: float | None
    client_cpu_cores: float
    tool: str
    server_requests: int | None = None
    server_cpu_seconds: float | None = None
    compiled_operations: int | None = None
    fallback_operations: int | None = None
    fallback_reasons: Mapping[str, int] = field(default_factory=dict)
    ratio_to_baseline: float | None = None
    ratio_to_postgraphile: float | None = None

    @property
    def compiled_share(self) -> float | None:
        return compiled_share(self.compiled_operations, self.fallback_operations)


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # markdown sections, printed as they are
    records: dict[str, Any] = field(default_factory=dict)  # written to the JSON only

    def with_ratios(self) -> list[Row]:
        """Rows with Assay's req/s divided by the baseline's and by PostGraphile's, same
        workload and connections, in table order: by workload, then connections, then server
        (baseline last)."""
        base = {(r.workload, r.connections): r.rps for r in self.rows if r.server == BASELINE}
        pg = {(r.workload, r.connections): r.rps for r in self.rows if r.server == POSTGRAPHILE}
        out = []
        for r in ordered(self.rows):
            b, p = base.get((r.workload, r.connections)), pg.get((r.workload, r.connections))
            is_assay = r.server not in (BASELINE, POSTGRAPHILE)
            ratios = {
                "ratio_to_baseline": r.rps / b if r.server != BASELINE and b else None,
                "ratio_to_postgraphile": r.rps / p if is_assay and p else None,
            }
            out.append(Row(**{**asdict(r), **ratios}))
        return out


def ordered(rows: Sequence[Row]) -> list[Row]:
    """Workloads in the order they first ran; within one, by connections, then server."""
    workloads: dict[str, int] = {}
    servers: dict[str, int] = {name: i for i, name in enumerate(SERVER_ORDER)}
    for r in rows:
        workloads.setdefault(r.workload, len(workloads))
        servers.setdefault(r.server, len(servers))
    servers[BASELINE] = len(servers)
    return sorted(rows, key=lambda r: (workloads[r.workload], r.connections, servers[r.server]))


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def percent(share: float | None) -> str:
    """100% and 0% only when exact: one fallback in a thousand shows as 99.9%."""
    if share is None:
        return "-"
    if share in (0.0, 1.0):
        return f"{share:.0%}"
    return f"{min(max(share, 0.001), 0.999):.1%}"


COLUMNS = (
    "workload", "server", "conns", "req/s", "p50 ms", "p95 ms", "p99 ms", "SQL/req",
    "CPU ms/req", "peak RSS MiB", "compiled", "vs baseline", "vs PostGraphile", "errors",
    "load gen CPU (cores)",
)  # fmt: skip
HEADER = "| " + " | ".join(COLUMNS) + " |"
NOTES = (
    "CPU ms/req: the server's user + system CPU time (with its child processes) from the "
    "end of the warm-up (server idle) until it is idle again after the measured run, divided "
    "by the requests it completed meanwhile (those wrk left in flight included). "
    "compiled: the share of query operations the server ran on its compiled execution path "
    "in that window (assay_graphql_execution_total; - when none was counted). "
    "SQL/req: statements per request, the median of five requests sent one at a time. "
    "vs baseline, vs PostGraphile: req/s divided by that server's at the same connections "
    "(PostGraphile runs on the same database, timed in turns with Assay's last server)."
)


def markdown_rows(rows: Sequence[Row]) -> list[str]:
    lines = [HEADER, "|" + "---|" * len(COLUMNS)]
    for r in rows:
        ratio = f"{r.ratio_to_baseline:.2f}x" if r.ratio_to_baseline is not None else "-"
        to_pg = f"{r.ratio_to_postgraphile:.2f}x" if r.ratio_to_postgraphile is not None else "-"
        lines.append(
            f"| {r.workload} | {r.server} | {r.connections} | {_num(r.rps)} | "
            f"{_num(r.p50_ms, 2)} | {_num(r.p95_ms, 2)} | {_num(r.p99_ms, 2)} | "
            f"{_num(r.sql_per_request, 2)} | {_num(r.cpu_ms_per_request, 2)} | "
            f"{_num(r.peak_rss_mib)} | {percent(r.compiled_share)} | {ratio} | {to_pg} | "
            f"{r.errors} | "
            f"{r.client_cpu_cores:.2f} ({r.tool}) |"
        )
    return lines


def markdown(report: Report) -> str:
    lines = ["## Assay benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in report.meta.items()]
    if report.rows:
        lines += ["", *markdown_rows(report.with_ratios()), "", NOTES]
    for name, values in report.extra.items():
        lines += ["", f"### {name}", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in values.items()]
    for table in report.tables.values():
        lines += ["", table.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def to_json(report: Report) -> bytes:
    document: Mapping[str, Any] = {
        "meta": report.meta,
        "rows": [{**asdict(r), "compiled_share": r.compiled_share} for r in report.with_ratios()],
        **report.extra,
        **report.records,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def write_json(report: Report, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    path.write_bytes(to_json(report))
    return path
