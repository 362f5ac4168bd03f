"""The inference benchmark's pure parts: each server's request and answer, the check against
predict_proba, the arithmetic and the tables, the peers' pinned settings, the options."""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from graphql import build_schema, parse, validate

from bench import inference, inference_report, inference_run, load, peers, run
from bench.inference import Oracle, Probabilities, Row
from bench.inference_report import InferenceRow, best, every_round, summary
from bench.report import Report, markdown, to_json
from integrations.models.defaults import IRIS_FEATURES, train_iris, write_model

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ("setosa", "versicolor", "virginica")


class _Classifier:
    """A stand-in model: probabilities that depend on each row, so rows cannot be swapped."""

    classes_ = np.array(CLASSES)

    def predict_proba(self, x: Any) -> Any:
        scores = np.exp(np.asarray(x, dtype=np.float64)[:, :3] / 3)
        return scores / scores.sum(axis=1, keepdims=True)


ORACLE = Oracle(_Classifier())
ROWS: list[Row] = inference.input_rows(5)
EXPECTED = ORACLE.expected(ROWS)


def _nudged(rows: list[Probabilities], i: int, by: float) -> list[Probabilities]:
    out = list(rows)
    out[i] = (out[i][0] + by, *out[i][1:])
    return out


def _mlserver_answer(rows: list[Probabilities]) -> bytes:
    data = [p for row in rows for p in row]
    output = {"name": "predict_proba", "shape": [len(rows), 3], "datatype": "FP64", "data": data}
    return orjson.dumps({"model_name": "iris-species", "outputs": [output]})


def _litserve_answer(rows: list[Probabilities]) -> bytes:
    return orjson.dumps({"probabilities": [list(r) for r in rows]})


def _assay_answer(row: Probabilities, status: str = "SUCCEEDED") -> bytes:
    probabilities = dict(zip(CLASSES, row, strict=True))
    result = {"prediction": {"species": "x", "probabilities": probabilities}}
    payload = {
        "submission": {"status": status},
        "result": result if status == "SUCCEEDED" else None,
    }
    return orjson.dumps({"data": {"runInference": payload}})


# ------------------------------------------------------------------- the check


@pytest.mark.parametrize(
    ("reader", "answer"),
    [(inference.mlserver_reader, _mlserver_answer), (inference.litserve_reader, _litserve_answer)],
)
def test_checker_accepts_the_models_answer_and_refuses_any_other(reader: Any, answer: Any) -> None:
    check = inference.checker(reader, [EXPECTED])
    assert check(0, answer(EXPECTED)) is None
    assert check(0, answer(_nudged(EXPECTED, 2, 1e-9))) is None  # within TOLERANCE
    assert "row 2" in str(check(0, answer(_nudged(EXPECTED, 2, 1e-3))))
    assert "row 0" in str(check(0, answer([EXPECTED[1], EXPECTED[0], *EXPECTED[2:]])))
    assert "4 rows answered for 5" in str(check(0, answer(EXPECTED[:4])))
    assert check(0, answer(_nudged(EXPECTED, 1, float("nan")))) is not None  # null in JSON
    assert "unreadable answer" in str(check(0, b'{"detail": "Internal Server Error"}'))


def test_checker_compares_each_answer_with_the_row_its_request_carried() -> None:
    check = inference.checker(inference.litserve_reader, [[e] for e in EXPECTED])
    assert check(3, _litserve_answer([EXPECTED[3]])) is None
    assert check(4, _litserve_answer([EXPECTED[3]])) is not None


def test_assay_answers_are_read_in_the_models_class_order_and_errors_are_not_answers() -> None:
    check = inference.checker(inference.assay_run_reader(ORACLE.classes), [[e] for e in EXPECTED])
    assert check(1, _assay_answer(EXPECTED[1])) is None
    assert check(1, _assay_answer(EXPECTED[0])) is not None
    with pytest.raises(load.ErrorAnswer, match="ended FAILED"):
        check(1, _assay_answer(EXPECTED[1], "FAILED"))
    refused = orjson.dumps({"data": None, "errors": [{"message": "database unavailable"}]})
    with pytest.raises(load.ErrorAnswer, match="database unavailable"):
        check(1, refused)


def test_the_oracle_is_the_model_files_own_predict_proba(tmp_path: Path) -> None:
    write_model(tmp_path, train_iris())
    oracle = Oracle.load(tmp_path / "iris-species" / "1.0.0" / "model.joblib")
    assert oracle.classes == CLASSES
    rows = inference.input_rows(30)
    expected = oracle.expected(rows)
    assert all(abs(sum(p) - 1) < 1e-9 for p in expected)
    # The inputs span the three species, as the checks need to tell answers apart.
    assert {int(np.argmax(p)) for p in expected} == {0, 1, 2}


def test_input_rows_are_distinct_and_within_the_models_input_schema() -> None:
    rows = inference.input_rows(1000)
    assert len(set(rows[: inference_report.CALLERS["S3"]])) == 24  # 3 centres x 8 steps
    assert inference.input_rows(7) == rows[:7]
    for row in rows:
        for value, feature in zip(row, IRIS_FEATURES, strict=True):
            assert feature.minimum < value <= feature.maximum
    assert tuple(f.name for f in IRIS_FEATURES) == inference.FEATURES


# -------------------------------------------------------- each server's request


def test_mlserver_requests_follow_the_v2_inference_protocol() -> None:
    body = orjson.loads(inference.mlserver_body(ROWS[:2]))
    assert body == {
        "inputs": [
            {"name": "input-0", "shape": [2, 4], "datatype": "FP64",
             "data": [*ROWS[0], *ROWS[1]]}
        ],
        "outputs": [{"name": "predict_proba"}],
    }  # fmt: skip
    wire = inference.mlserver_protocol()
    assert wire.path == "/v2/models/iris-species/infer"
    assert orjson.loads(wire.single(ROWS[0]))["inputs"][0]["shape"] == [1, 4]


def test_mlserver_answers_with_nested_tensor_data_are_read_too() -> None:
    nested = orjson.loads(_mlserver_answer(EXPECTED))
    nested["outputs"][0]["data"] = [list(r) for r in EXPECTED]
    assert inference.mlserver_reader(orjson.dumps(nested)) == EXPECTED
    nested["outputs"][0]["shape"] = [6, 3]
    with pytest.raises(ValueError, match="shape"):
        inference.mlserver_reader(orjson.dumps(nested))


def test_litserve_requests_carry_the_rows() -> None:
    body = orjson.loads(inference.litserve_body(ROWS[:2]))
    assert body == {"inputs": [list(ROWS[0]), list(ROWS[1])]}
    assert inference.litserve_protocol().path == "/predict"


def test_assay_requests_are_valid_against_the_schema_and_name_the_features() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())
    for document in (inference.RUN_INFERENCE, inference.BATCH_INFERENCE):
        assert validate(schema, parse(document)) == []
    single = orjson.loads(inference.assay_run_body("model-1", ROWS[0]))
    assert single["variables"] == {
        "input": {
            "modelId": "model-1",
            "input": dict(zip(inference.FEATURES, ROWS[0], strict=True)),
        }
    }
    batch = orjson.loads(inference.assay_batch_body("model-1", ROWS))["variables"]["input"]
    assert batch["modelId"] == "model-1"
    assert [tuple(i.values()) for i in batch["inputs"]] == ROWS


# ------------------------------------------------------------------- the peers


def test_peers_are_pinned_with_the_model_files_scikit_learn() -> None:
    mlserver = peers.requirements("mlserver", "1.9.1", "1.6.0")
    assert mlserver == ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0",
                        "scikit-learn==1.9.1", "joblib==1.6.0")  # fmt: skip
    assert peers.requirements("litserve", "1.5.0", "1.4.2") == (
        "litserve==0.2.19", "scikit-learn==1.5.0", "joblib==1.4.2",
    )  # fmt: skip
    assert peers.requirements("bentoml", "1.9.1", "1.6.0") == (
        "bentoml==1.4.40", "scikit-learn==1.9.1", "joblib==1.6.0",
    )  # fmt: skip
    with pytest.raises(ValueError, match="no such peer"):
        peers.requirements("triton", "1.9.1", "1.6.0")


def test_mlserver_settings_use_the_given_ports_and_batch_only_when_asked(tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    settings, plain = peers.mlserver_settings(peers.PEERS["mlserver"], model, (1, 2, 3))
    assert settings == {"host": "127.0.0.1", "http_port": 1, "grpc_port": 2, "metrics_port": 3}
    assert plain == {
        "name": "iris-species",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model), "version": "1.0.0"},
    }
    _, batching = peers.mlserver_settings(peers.PEERS["mlserver-batching"], model, (1, 2, 3))
    assert batching == {**plain, "max_batch_size": 32, "max_batch_time": 0.005}


def test_an_installed_peer_virtualenv_is_reused_without_installing(tmp_path: Path) -> None:
    wanted = peers.requirements("litserve", "1.9.1", peers.joblib_version())
    venv = tmp_path / "litserve-0.2.19-sklearn-1.9.1"
    venv.mkdir()
    (venv / peers.MARKER).write_text("\n".join(wanted) + "\n")
    assert peers.prepare("litserve", "1.9.1", cache=tmp_path) == venv


# ----------------------------------------------------------- arithmetic, tables


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (load.percentile(values, 0.5), load.percentile(values, 0.99)) == (50.0, 99.0)
    assert load.percentile([7.0], 0.99) == 7.0
    assert load.percentile([], 0.5) == 0.0


def test_throughput_and_cpu_per_prediction() -> None:
    assert inference_report.throughput(500, 10.0) == 50.0
    assert inference_report.throughput(5, 0.0) == 0.0
    assert inference_report.per_prediction_ms(1.5, 1000) == pytest.approx(1.5)
    assert inference_report.per_prediction_ms(1.5, 0) is None
    row = _row("S3", "a", 1, 10.0, api=6.9, db=4.3)
    assert row.cpu_ms == pytest.approx(11.2)
    assert _row("S3", "peer", 1, 10.0, api=1.7).cpu_ms == 1.7


def _row(workload: str, server: str, turn: int, value: float, **cpu: float) -> InferenceRow:
    is_b1, is_s1 = workload == "B1", workload == "S1"
    return InferenceRow(
        workload=workload, server=server, round=turn, callers=1, predictions=100,
        seconds=value if is_b1 else 10.0, per_second=0.0 if is_s1 or is_b1 else value,
        p50_ms=value if is_s1 else None, p99_ms=value * 2 if is_s1 else None,
        api_cpu_ms=cpu.get("api"), db_cpu_ms=cpu.get("db"),
    )  # fmt: skip


def test_best_of_the_rounds_is_lowest_latency_highest_rate_shortest_batch() -> None:
    rows = [
        *(_row("S1", "a", t, v) for t, v in ((1, 3.0), (2, 1.5), (3, 2.0))),
        *(_row("S2", "a", t, v) for t, v in ((1, 700.0), (2, 900.0), (3, 800.0))),
        *(_row("B1", "a", t, v) for t, v in ((1, 0.02), (2, 0.01), (3, 0.03))),
    ]
    s1, s2, b1 = (best(rows, "a", w) for w in ("S1", "S2", "B1"))
    assert (s1 and s1.round, s2 and s2.round, b1 and b1.round) == (2, 2, 2)
    assert best(rows, "a", "S3") is None
    assert best(rows, "other", "S1") is None


def test_tables_show_the_best_round_per_server_and_every_round() -> None:
    rows = [
        _row("S1", "assay", 1, 248.0, api=30.0, db=10.0),
        _row("S3", "assay", 1, 116.0, api=6.9, db=4.3),
        _row("S3", "assay", 2, 120.0, api=7.0, db=4.0),
        _row("B1", "assay", 1, 1.81),
        _row("S3", "peer", 1, 892.0, api=1.7),
    ]
    lines = summary(rows, ["assay", "peer"])
    assert lines[2] == (
        "| assay | 248.00 / 496.00 | - | 120.0 | 1.810 | 11.00 (7.00 API + 4.00 PostgreSQL) | - |"
    )
    assert lines[3] == "| peer | - | - | 892.0 | - | 1.70 | - |"
    with_errors = [*rows, replace(_row("S2", "assay", 1, 37.0), errors=13)]
    assert "| 37.0 (13 errors) |" in summary(with_errors, ["assay"])[2]
    rounds = every_round(rows)
    assert len(rounds) == 2 + len(rows)
    assert "| B1 | assay | 1 | 1 | 100 | 1.810 | - | - | - |" in rounds[5]
    floor = inference_report.floor_line({1: 0.22, 32: 0.2249, 1000: 0.31})
    assert floor.endswith("1 row 0.220 ms; 32 rows 0.225 ms; 1,000 rows 0.310 ms")


def test_the_report_prints_inference_tables_and_writes_their_records() -> None:
    report = Report(tables={"Inference": "### Inference\n\n| a |\n"},
                    records={"Inference (S1-S3, B1)": {"rows": [1]}})  # fmt: skip
    text = markdown(report)
    assert "### Inference\n\n| a |" in text
    assert "| workload | server | conns" not in text  # no W rows, no empty W table
    assert orjson.loads(to_json(report))["Inference (S1-S3, B1)"] == {"rows": [1]}


# ------------------------------------------------------------------- options


def test_options_run_the_inference_workloads_and_peers_by_default() -> None:
    full = run.parse_options([])
    assert {"S1", "S2", "S3", "B1", "W1", "W7"} <= full.workloads
    assert (full.peers, full.rounds, full.sequential) == (peers.DEFAULT_PEERS, 3, 200)
    quick = run.parse_options(["--quick", "--only", "S1,B1"])
    assert (quick.workloads, quick.rounds, quick.sequential) == (frozenset({"S1", "B1"}), 1, 50)
    chosen = run.parse_options(["--peers", "LitServe, mlserver,litserve", "--rounds", "5"])
    assert (chosen.peers, chosen.rounds) == (("litserve", "mlserver"), 5)
    assert run.parse_options(["--no-peers"]).peers == ()
    assert run.parse_options(["--peers", "none"]).peers == ()
    with pytest.raises(SystemExit):
        run.parse_options(["--peers", "triton"])


def test_options_ask_for_compressed_answers_only_when_told() -> None:
    assert run.parse_options([]).accept_encoding is None
    assert run.parse_options(["--accept-encoding", "br, gzip"]).accept_encoding == "br, gzip"


def test_the_collector_is_paused_in_a_timed_window_and_restored_after() -> None:
    assert gc.isenabled()
    with inference_run.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with inference_run.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


class _Turns(inference_run.InferenceBench):
    """Records the B1 turns run() asks for instead of sending them."""

    def __init__(self, warmup: float) -> None:
        options = inference_run.InferenceOptions(("B1",), (), 2, 10, 5, warmup, 1.0)
        super().__init__(options, ORACLE, "model", lambda _: None)
        self.turns: list[tuple[str, int]] = []

    def batch(self, target: inference_run.Target, database_url: str, turn: int) -> InferenceRow:
        self.turns.append((target.name, turn))
        return _row("B1", target.name, turn, 0.1)


@pytest.mark.parametrize(("warmup", "first"), [(2.0, [("assay", 0), ("peer", 0)]), (0.0, [])])
def test_b1_warms_each_server_up_once_and_times_only_the_rounds(
    warmup: float, first: list[tuple[str, int]]
) -> None:
    wire = inference.litserve_protocol()
    targets = [
        inference_run.Target("assay", 1, wire, None, 1),
        inference_run.Target("peer", 2, wire, None, 2),
    ]
    bench = _Turns(warmup)
    bench.run(targets, "postgresql://unused")
    assert bench.turns == [*first, ("assay", 1), ("peer", 1), ("peer", 2), ("assay", 2)]
    assert [(r.server, r.round) for r in bench.rows] == bench.turns[len(first) :]
