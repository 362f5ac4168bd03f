"""The results table (markdown) and the JSON record of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

MIB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    """One timed HTTP run: a workload against one server at one connection count."""

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
    ratio_to_baseline: float | None = None


@dataclass
class Report:
    meta: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def with_ratios(self) -> list[Row]:
        """Rows with Assay's req/s divided by the baseline's, same workload and connections."""
        base = {(r.workload, r.connections): r.rps for r in self.rows if r.server == "baseline"}
        out = []
        for r in self.rows:
            b = base.get((r.workload, r.connections))
            ratio = r.rps / b if r.server != "baseline" and b else None
            out.append(Row(**{**asdict(r), "ratio_to_baseline": ratio}))
        return out


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


HEADER = (
    "| workload | server | conns | req/s | p50 ms | p95 ms | p99 ms | SQL/req "
    "| CPU ms/req | peak RSS MiB | vs baseline | errors | load gen CPU (cores) |"
)


def markdown_rows(rows: Sequence[Row]) -> list[str]:
    lines = [HEADER, "|" + "---|" * 13]
    for r in rows:
        ratio = f"{r.ratio_to_baseline:.2f}x" if r.ratio_to_baseline is not None else "-"
        lines.append(
            f"| {r.workload} | {r.server} | {r.connections} | {_num(r.rps)} | "
            f"{_num(r.p50_ms, 2)} | {_num(r.p95_ms, 2)} | {_num(r.p99_ms, 2)} | "
            f"{_num(r.sql_per_request, 2)} | {_num(r.cpu_ms_per_request, 2)} | "
            f"{_num(r.peak_rss_mib)} | {ratio} | {r.errors} | {r.client_cpu_cores:.2f} ({r.tool}) |"
        )
    return lines


def markdown(report: Report) -> str:
    lines = ["## Assay benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in report.meta.items()]
    lines += ["", *markdown_rows(report.with_ratios())]
    for name, values in report.extra.items():
        lines += ["", f"### {name}", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def to_json(report: Report) -> bytes:
    document: Mapping[str, Any] = {
        "meta": report.meta,
        "rows": [asdict(r) for r in report.with_ratios()],
        **report.extra,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def write_json(report: Report, directory: Path, stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    path.write_bytes(to_json(report))
    return path
