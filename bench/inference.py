"""The inference benchmark's pure parts: inputs, each server's request and answer, the check.

Every server (Assay over GraphQL, MLServer over the V2 inference protocol, LitServe over its
own JSON) is sent the same iris rows, and every answer's class probabilities are compared with
the model's own `predict_proba` for that row, in the bench's process (`Oracle`): a wrong
answer fails the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from bench.load import ErrorAnswer
from bench.workloads import body

FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
MODEL_NAME = "iris-species"
TOLERANCE = 1e-6  # JSON round-trips a float64 exactly; this allows a float32 on the way

Row = tuple[float, float, float, float]
Probabilities = tuple[float, ...]
# The response body -> each row's probabilities, in the model's class order.
Reader = Callable[[bytes], list[Probabilities]]

# Typical flowers of the three species (the iris data set's class means, rounded).
_CENTRES: tuple[Row, ...] = ((5.0, 3.4, 1.5, 0.2), (5.9, 2.8, 4.3, 1.3), (6.6, 3.0, 5.6, 2.0))

RUN_INFERENCE = """mutation S($input: RunInferenceInput!) {
  runInference(input: $input) {
    submission { status }
    result { prediction }
  }
}"""
BATCH_INFERENCE = """mutation B1($input: BatchInferenceInput!) {
  batchInference(input: $input) { submissions { id } }
}"""


def input_rows(count: int) -> list[Row]:
    """`count` distinct flowers around the three species' centres, within the input schema's
    bounds, the same on every run."""
    rows = []
    for n in range(count):
        centre = _CENTRES[n % 3]
        step = (n // 3) % 8 - 3.5  # -3.5 .. 3.5
        rows.append(
            (
                round(centre[0] + step * 0.1, 2),
                round(centre[1] - step * 0.05, 2),
                round(max(0.1, centre[2] + step * 0.15), 2),
                round(max(0.1, centre[3] + step * 0.08), 2),
            )
        )
    return rows


def features(row: Row) -> dict[str, float]:
    return dict(zip(FEATURES, row, strict=True))


# ----------------------------------------------------------------------- the check


class Classifier(Protocol):
    classes_: Any

    def predict_proba(self, x: Any, /) -> Any: ...


class Oracle:
    """The model itself: what every server must answer, row by row."""

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.classes: tuple[str, ...] = tuple(str(c) for c in classifier.classes_)

    @classmethod
    def load(cls, path: Path) -> Oracle:
        import joblib  # type: ignore[import-untyped]  # joblib ships no type hints

        classifier: Classifier = joblib.load(path)
        return cls(classifier)

    def expected(self, rows: Sequence[Row]) -> list[Probabilities]:
        import numpy as np

        matrix = np.asarray(rows, dtype=np.float64)
        return [tuple(float(p) for p in line) for line in self.classifier.predict_proba(matrix)]


def compare(expected: Sequence[Probabilities], got: Sequence[Probabilities]) -> str | None:
    """What is wrong with an answer, or None when every row matches within TOLERANCE."""
    if len(got) != len(expected):
        return f"{len(got)} rows answered for {len(expected)}"
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if len(have) != len(want) or not all(
            math.isfinite(h) and abs(h - w) <= TOLERANCE for h, w in zip(have, want, strict=True)
        ):
            return f"row {i}: {list(have)} where predict_proba gives {list(want)}"
    return None


def checker(
    reader: Reader, expected: Sequence[Sequence[Probabilities]]
) -> Callable[[int, bytes], str | None]:
    """A load.Checker: the answer to body `index` must read as `expected[index]`."""

    def check(index: int, content: bytes) -> str | None:
        try:
            got = reader(content)
        except (ValueError, KeyError, TypeError, IndexError) as error:
            return f"unreadable answer ({type(error).__name__}: {error}): {content[:300]!r}"
        return compare(expected[index], got)

    return check


# ---------------------------------------------------------- each server's protocol


def assay_run_body(model_id: str, row: Row) -> bytes:
    return body(RUN_INFERENCE, "S", {"input": {"modelId": model_id, "input": features(row)}})


def assay_batch_body(model_id: str, rows: Sequence[Row]) -> bytes:
    inputs = [features(r) for r in rows]
    return body(BATCH_INFERENCE, "B1", {"input": {"modelId": model_id, "inputs": inputs}})


def assay_probabilities(prediction: Mapping[str, Any], classes: Sequence[str]) -> Probabilities:
    """A stored or answered Assay prediction's probabilities, in the model's class order."""
    probabilities = prediction["probabilities"]
    return tuple(float(probabilities[c]) for c in classes)


def assay_run_reader(classes: Sequence[str]) -> Reader:
    """runInference's answer: an error (ErrorAnswer) unless it SUCCEEDED, without errors."""

    def read(content: bytes) -> list[Probabilities]:
        document = orjson.loads(content)
        if document.get("errors"):
            raise ErrorAnswer(f"errors: {str(document['errors'])[:300]}")
        payload = document["data"]["runInference"]
        status = payload["submission"]["status"]
        if status != "SUCCEEDED" or payload["result"] is None:
            raise ErrorAnswer(f"the submission ended {status}")
        return [assay_probabilities(payload["result"]["prediction"], classes)]

    return read


def mlserver_body(rows: Sequence[Row]) -> bytes:
    """A V2 inference protocol request: one FP64 tensor of shape [n, 4], asking the sklearn
    runtime for predict_proba."""
    data = [x for row in rows for x in row]
    tensor = {"name": "input-0", "shape": [len(rows), len(FEATURES)], "datatype": "FP64",
              "data": data}  # fmt: skip
    return orjson.dumps({"inputs": [tensor], "outputs": [{"name": "predict_proba"}]})


def mlserver_reader(content: bytes) -> list[Probabilities]:
    """The predict_proba output of a V2 response: shape [n, classes], data row-major."""
    outputs = orjson.loads(content)["outputs"]
    output = next(o for o in outputs if o["name"] == "predict_proba")
    rows, width = output["shape"]
    data = _flat(output["data"])
    if len(data) != rows * width:
        raise ValueError(f"shape {output['shape']} with {len(data)} values")
    return [tuple(float(x) for x in data[i * width : (i + 1) * width]) for i in range(rows)]


def _flat(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [x for part in data for x in _flat(part)]
    if not isinstance(data, list):
        raise TypeError("tensor data is not a list")
    return data


def litserve_body(rows: Sequence[Row]) -> bytes:
    """bench/litserve_server.py's request: the rows, as lists of four numbers."""
    return orjson.dumps({"inputs": [list(r) for r in rows]})


def litserve_reader(content: bytes) -> list[Probabilities]:
    return [tuple(float(p) for p in line) for line in orjson.loads(content)["probabilities"]]


@dataclass(frozen=True)
class Wire:
    """How to ask one kind of server for one row's probabilities (S1-S3) and for many in one
    request (B1, where None: Assay's B1 is a batch run by its workers), and read its answer."""

    path: str
    single: Callable[[Row], bytes]
    reader: Reader
    many: Callable[[Sequence[Row]], bytes] | None = None


def mlserver_protocol() -> Wire:
    path = f"/v2/models/{MODEL_NAME}/infer"
    return Wire(path, lambda r: mlserver_body([r]), mlserver_reader, mlserver_body)


def litserve_protocol() -> Wire:
    return Wire("/predict", lambda r: litserve_body([r]), litserve_reader, litserve_body)


def assay_wire(model_id: str, classes: Sequence[str]) -> Wire:
    return Wire("/graphql", lambda r: assay_run_body(model_id, r), assay_run_reader(classes))
