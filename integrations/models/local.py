"""Runs scikit-learn models from the model directory, one batch per call: in a thread pool,
or on the event loop for a model measured to answer faster than the hop to a thread."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypedDict

import joblib  # type: ignore[import-untyped]  # joblib ships no type hints
import numpy as np
from numpy.typing import NDArray

from domain.models import JSONValue, Model, ModelFailure
from domain.submissions import Alternative, Prediction

ARTIFACT_FILE = "model.joblib"
MANIFEST_FILE = "model.json"
TASKS = ("classification", "regression")
# Calls of a model measured before it may run on the event loop, and kept for judging.
RECENT_CALLS = 16


class LocalRuntimeConfig(TypedDict):
    """The runtime_config keys a local model's manifest must carry."""

    artifact: str
    task: str
    features: list[str]
    output_key: str


class Estimator(Protocol):
    def predict(self, x: NDArray[np.float64], /) -> NDArray[np.generic]: ...


class Classifier(Estimator, Protocol):
    classes_: NDArray[np.generic]

    def predict_proba(self, x: NDArray[np.float64], /) -> NDArray[np.float64]: ...


@dataclass(frozen=True, slots=True)
class _Spec:
    artifact: str
    task: str
    features: tuple[str, ...]
    output_key: str

    @classmethod
    def of(cls, model: Model) -> _Spec:
        config = model.runtime_config
        try:
            spec = cls(
                artifact=str(config["artifact"]),
                task=str(config["task"]),
                features=tuple(str(name) for name in config["features"]),
                output_key=str(config["output_key"]),
            )
        except (KeyError, TypeError) as error:
            raise _failure(model, f"runtime_config lacks {error}") from error
        if spec.task not in TASKS or not isinstance(config["features"], list) or not spec.features:
            raise _failure(model, "runtime_config has an unknown task or no features")
        return spec


class LocalModelRuntime:
    """A ModelRuntime for `runtime == "local"` models stored under `directory`."""

    def __init__(
        self, directory: Path, max_workers: int = 2, *, inline_seconds: float = 0.0
    ) -> None:
        """`inline_seconds`: a model whose last RECENT_CALLS calls each took less runs on
        the event loop (for batches no larger than those), else in the pool; 0: always
        in the pool. A thread hop and the GIL handed back and forth cost more than a
        sub-millisecond model, and the loop is held no longer than such a call."""
        self._directory = directory.resolve()
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="local-model")
        self._estimators: dict[tuple[str, str], Estimator] = {}
        self._load_lock = threading.Lock()
        self._inline_seconds = inline_seconds
        # (seconds, rows) of each model's recent calls.
        self._recent: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        if not inputs:
            return []
        if self.runs_inline(model, len(inputs)):
            return self._predict(model, list(inputs))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._predict, model, list(inputs))

    async def load(self, model: Model) -> None:
        """Load the model's artifact now (in the pool), so its first prediction does not:
        unpickling a scikit-learn model imports scikit-learn and takes ~1.3 s here. Raises
        ModelFailure as a prediction would (unreadable, not this task's model)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._estimator, model, _Spec.of(model))

    def runs_inline(self, model: Model, rows: int) -> bool:
        """Whether a call of `rows` inputs runs on the event loop (see __init__)."""
        recent = self._recent.get((model.name, model.version))
        calls = tuple(recent) if recent is not None else ()  # one step: threads append
        if len(calls) < RECENT_CALLS:
            return False
        return all(s < self._inline_seconds for s, _ in calls) and rows <= max(n for _, n in calls)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _predict(self, model: Model, inputs: list[JSONValue]) -> list[Prediction]:
        spec = _Spec.of(model)
        estimator = self._estimator(model, spec)
        started = time.perf_counter()
        matrix = _matrix(model, spec.features, inputs)
        # _matrix let only finite numbers in: scikit-learn's own check of every value again
        # was ~10% of a small call (on the loop or a pool thread: the setting is per thread).
        # Imported here, where a model runs, not at start-up: a process that serves no
        # prediction never loads scikit-learn (~70 MB).
        from sklearn import config_context  # type: ignore[import-untyped]  # no type hints

        with config_context(assume_finite=True):
            if spec.task == "classification":
                outputs = _classify(model, estimator, matrix, spec.output_key)
            else:
                outputs = _regress(estimator, matrix, spec.output_key)
        elapsed = time.perf_counter() - started
        self._measured(model, elapsed, len(inputs))
        per_input = max(0, round(elapsed * 1000 / len(inputs)))
        return [
            Prediction(prediction, confidence, alternatives, per_input)
            for prediction, confidence, alternatives in outputs
        ]

    def _measured(self, model: Model, seconds: float, rows: int) -> None:
        key = (model.name, model.version)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent.setdefault(key, deque(maxlen=RECENT_CALLS))
        recent.append((seconds, rows))  # deque.append is atomic: pool threads call this

    def _estimator(self, model: Model, spec: _Spec) -> Estimator:
        key = (model.name, model.version)
        with self._load_lock:
            if key not in self._estimators:
                self._estimators[key] = self._load(model, spec)
            return self._estimators[key]

    def _load(self, model: Model, spec: _Spec) -> Estimator:
        path = (self._directory / model.name / model.version / spec.artifact).resolve()
        if not path.is_relative_to(self._directory):
            raise _failure(model, "artifact path leaves the model directory")
        try:
            estimator: object = joblib.load(path)
        except Exception as error:  # a corrupt pickle can raise almost anything
            raise _failure(model, f"artifact {spec.artifact} is unreadable") from error
        needed = ("predict", "predict_proba") if spec.task == "classification" else ("predict",)
        if not all(callable(getattr(estimator, name, None)) for name in needed):
            raise _failure(model, f"artifact {spec.artifact} is not a {spec.task} model")
        return estimator  # type: ignore[return-value]  # checked structurally just above


_Output = tuple[JSONValue, float | None, tuple[Alternative, ...]]


def _classify(
    model: Model, estimator: Estimator, matrix: NDArray[np.float64], output_key: str
) -> list[_Output]:
    """Each row's label, its probability and every label ranked (ties in the classes' order).
    Ranked by numpy for all rows at once; a row costs only the objects it is answered with."""
    classifier: Classifier = estimator  # type: ignore[assignment]  # checked when loaded
    labels = [_plain(label) for label in classifier.classes_]
    keys = [str(label) for label in labels]
    probabilities = classifier.predict_proba(matrix)
    rankings: list[list[int]] = np.argsort(-probabilities, axis=1, kind="stable").tolist()
    outputs: list[_Output] = []
    for row, ranking in zip(probabilities.tolist(), rankings, strict=True):
        top = ranking[0]
        prediction = {output_key: labels[top], "probabilities": dict(zip(keys, row, strict=True))}
        alternatives = tuple([Alternative(labels[i], row[i]) for i in ranking])
        outputs.append((prediction, row[top], alternatives))
    return outputs


def _regress(estimator: Estimator, matrix: NDArray[np.float64], output_key: str) -> list[_Output]:
    values = estimator.predict(matrix).astype(np.float64).tolist()
    return [({output_key: value}, None, ()) for value in values]


def _matrix(
    model: Model, features: tuple[str, ...], inputs: list[JSONValue]
) -> NDArray[np.float64]:
    rows = [
        [_number(model, index, item, name) for name in features]
        for index, item in enumerate(inputs)
    ]
    return np.array(rows, dtype=np.float64)


def _number(model: Model, index: int, item: JSONValue, name: str) -> float:
    value = item.get(name) if isinstance(item, dict) else None
    # bool is an int subclass, but true/false is never a measurement.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _failure(model, f"input {index}: {name!r} must be a finite number")
    return float(value)


def _plain(value: object) -> JSONValue:
    """numpy scalars (class labels) as plain JSON values."""
    return value.item() if isinstance(value, np.generic) else value


def _failure(model: Model, reason: str) -> ModelFailure:
    return ModelFailure(f"model {model.name} {model.version}: {reason}", is_transient=False)
