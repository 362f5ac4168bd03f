"""The benchmark's pure parts: encodings equal Assay's, documents are valid, the report prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from graphql import build_schema, parse, validate

from bench import encoding, load, postgraphile, workloads
from bench.report import POSTGRAPHILE, Report, Row, markdown, markdown_rows, to_json
from domain.pagination import Keyset
from graph.ids import from_global_id, to_cursor, to_global_id

ROOT = Path(__file__).resolve().parents[2]
IDENT = UUID("0b9e4a3c-5d1f-4f0e-9a7b-2c8d6e1f3a45")


@pytest.mark.parametrize("type_name", ["User", "Asset", "Model", "Submission", "Result"])
def test_bench_global_ids_equal_assays(type_name: str) -> None:
    ours = encoding.global_id(type_name, IDENT)
    assert ours == to_global_id(type_name, IDENT)
    assert "=" not in ours
    assert encoding.parse_global_id(ours) == from_global_id(ours)


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: isoformat drops them
        datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_bench_cursors_equal_assays(created_at: datetime) -> None:
    assert encoding.cursor("s", created_at, IDENT) == to_cursor(
        Keyset(created_at, IDENT), "Submission"
    )
    assert encoding.cursor("u", created_at, IDENT) == to_cursor(Keyset(created_at, IDENT), "User")
    assert encoding.date_time(created_at) == created_at.isoformat()


@pytest.mark.parametrize("name", sorted(workloads.ALL_DOCUMENTS))
def test_workload_documents_are_valid_against_the_schema(name: str) -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())
    errors = validate(schema, parse(workloads.ALL_DOCUMENTS[name]))
    assert errors == []


def test_request_bodies_carry_the_exact_documents() -> None:
    [w1] = workloads.w1().bodies
    assert orjson.loads(w1) == {"query": workloads.W1_QUERY, "operationName": "W1", "variables": {}}
    w2 = workloads.w2(["a", "b"]).bodies
    assert [orjson.loads(b)["variables"] for b in w2] == [{"id": "a"}, {"id": "b"}]
    batch = orjson.loads(workloads.w5_body("m", 3))["variables"]["input"]
    assert batch["modelId"] == "m"
    assert len(batch["inputs"]) == 3


def _row(server: str, rps: float, connections: int = 8) -> Row:
    return Row(
        workload="W1",
        server=server,
        connections=connections,
        rps=rps,
        p50_ms=1.0,
        p95_ms=2.0,
        p99_ms=3.0,
        requests=int(rps * 10),
        errors=0,
        sql_per_request=3.0,
        cpu_ms_per_request=4.0,
        peak_rss_mib=50.0,
        client_cpu_cores=0.1,
        tool="wrk",
    )


def test_report_divides_assay_by_the_baseline_at_the_same_connections() -> None:
    report = Report(rows=[_row("assay", 50.0), _row("baseline", 200.0), _row("assay", 9.0, 32)])
    ratios = [r.ratio_to_baseline for r in report.with_ratios()]
    assert ratios == [0.25, None, None]


def test_report_prints_markdown_and_json() -> None:
    report = Report(meta={"cpus": 2}, rows=[_row("assay", 50.0), _row("baseline", 200.0)])
    report.extra["W5"] = {"completed_per_second": 123.456}
    lines = markdown_rows(report.with_ratios())
    assert lines[0].startswith("| workload | server | conns | req/s |")
    assert "| W1 | assay | 8 | 50.0 |" in lines[2]
    assert "0.25x" in lines[2]
    text = markdown(report)
    assert "- cpus: 2" in text
    assert "completed_per_second: 123.46" in text
    document = orjson.loads(to_json(report))
    assert document["rows"][0]["ratio_to_baseline"] == 0.25
    assert document["W5"]["completed_per_second"] == 123.456


def test_wrk_script_quotes_bodies_and_result_line_parses() -> None:
    script = load.wrk_script([b'{"q":"]]"}'], "tok")
    assert '[=[{"q":"]]"}]=]' in script
    assert 'wrk.headers["Authorization"] = "Bearer tok"' in script
    out = "Running...\nBENCH_RESULT 300 3000000 0 0 0 2 0 1500 2500 4000\n"
    assert load.parse_wrk(out) == (300, 3.0, 2, 1.5, 2.5, 4.0)


def test_the_load_asks_for_compressed_answers_only_when_told() -> None:
    plain = load.request_bytes(8000, "/graphql", b"{}", "tok")
    asking = load.request_bytes(8000, "/graphql", b"{}", "tok", "br, gzip")

    assert b"accept-encoding" not in plain.lower()
    assert b"\r\nAccept-Encoding: br, gzip\r\n" in asking
    assert asking.endswith(b"\r\n\r\n{}")
    assert "Accept-Encoding" not in load.wrk_script([b"{}"], None)
    assert 'wrk.headers["Accept-Encoding"] = [[gzip]]' in load.wrk_script([b"{}"], None, "gzip")


def test_percentile_picks_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 0.5) == 50.0
    assert load.percentile(values, 0.99) == 99.0
    assert load.percentile([], 0.5) == 0.0


def test_report_divides_assay_by_postgraphile_on_the_same_workload_and_connections() -> None:
    rows = [_row("assay", 50.0), _row(POSTGRAPHILE, 100.0), _row("baseline", 200.0)]
    shown = {r.server: r for r in Report(rows=rows).with_ratios()}
    assert shown["assay"].ratio_to_postgraphile == 0.5
    assert shown[POSTGRAPHILE].ratio_to_postgraphile is None
    assert shown[POSTGRAPHILE].ratio_to_baseline == 0.5
    assert "| 0.25x | 0.50x |" in markdown_rows(Report(rows=rows).with_ratios())[2]


def test_node_major_reads_the_version_and_is_zero_for_what_does_not_run(tmp_path: Path) -> None:
    old = tmp_path / "node"
    old.write_text("#!/bin/sh\necho v20.20.2\n")
    old.chmod(0o755)
    assert postgraphile.node_major(old) == 20
    assert postgraphile.node_major(tmp_path / "missing") == 0


def test_postgraphile_answers_are_counted_like_assays() -> None:
    theirs_submission: dict[str, Any] = {"node": {"resultsBySubmissionId": {"nodes": [{}, {}]}}}
    theirs_user: dict[str, Any] = {"node": {"submissionsByOwnerId": {"edges": [theirs_submission]}}}
    pg: dict[str, Any] = {"data": {"allUsers": {"edges": [theirs_user]}}}
    our_submission: dict[str, Any] = {"node": {"results": [{}, {}]}}
    our_user: dict[str, Any] = {"node": {"submissions": {"edges": [our_submission]}}}
    ours: dict[str, Any] = {"data": {"users": {"edges": [our_user]}}}
    assert postgraphile.counts(pg) == postgraphile.assay_counts(ours) == (1, 1, 2)
