"""BentoML serving Assay's iris-species model file, run by BentoML's own virtualenv.

`bentoml serve bentoml_service:Iris --host 127.0.0.1 --port PORT` from this file's directory,
with ASSAY_BENCH_MODEL naming the model file. It imports nothing of the bench or of Assay.
The API is LitServe's (bench/litserve_server.py): POST /predict with
`{"inputs": [[4 numbers], ...]}`, answered with `{"probabilities": [[one per class], ...]}`.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml  # type: ignore[import-not-found]  # only in the peer's virtualenv
import joblib  # type: ignore[import-untyped]  # only in the peer's virtualenv
import numpy as np


@bentoml.service
class Iris:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["ASSAY_BENCH_MODEL"])

    @bentoml.api  # type: ignore[untyped-decorator]  # BentoML is untyped here
    def predict(self, inputs: list[list[float]]) -> dict[str, Any]:
        matrix = np.asarray(inputs, dtype=np.float64)
        return {"probabilities": self.model.predict_proba(matrix).tolist()}
