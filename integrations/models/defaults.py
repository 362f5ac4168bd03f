"""Trains the default scikit-learn models on bundled data sets and writes them into a directory.

Artifacts are written with joblib (pickle): the model directory is operator-controlled, so loading
them is as trusted as loading the server's own code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib  # type: ignore[import-untyped]  # joblib ships no type hints
import numpy as np
import sklearn  # type: ignore[import-untyped]  # scikit-learn ships no type hints
from numpy.typing import NDArray
from sklearn.datasets import load_diabetes, load_iris  # type: ignore[import-untyped]  # untyped
from sklearn.linear_model import LogisticRegression, Ridge  # type: ignore[import-untyped]  # untyped
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]  # untyped
from sklearn.pipeline import Pipeline, make_pipeline  # type: ignore[import-untyped]  # untyped
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]  # untyped

from domain.models import JSONValue, ModelDefinition
from domain.monitoring import PREDICTION, PROFILE_KEY, Axis
from integrations.models.local import ARTIFACT_FILE, MANIFEST_FILE, LocalRuntimeConfig

VERSION = "1.0.0"
SEED = 0
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    description: str
    minimum: float
    maximum: float


IRIS_FEATURES = (
    Feature("sepal_length_cm", "Sepal length in centimetres", 0, 15),
    Feature("sepal_width_cm", "Sepal width in centimetres", 0, 10),
    Feature("petal_length_cm", "Petal length in centimetres", 0, 15),
    Feature("petal_width_cm", "Petal width in centimetres", 0, 5),
)
IRIS_SPECIES = ("setosa", "versicolor", "virginica")

# Raw (unscaled) clinical units, in the column order of load_diabetes(scaled=False).
DIABETES_FEATURES = (
    Feature("age", "Age in years", 0, 120),
    Feature("sex", "Sex, coded 1 or 2", 1, 2),
    Feature("bmi", "Body mass index in kg/m2", 10, 80),
    Feature("bp", "Average blood pressure in mmHg", 30, 250),
    Feature("s1", "Total serum cholesterol (tc) in mg/dL", 50, 500),
    Feature("s2", "Low-density lipoproteins (ldl) in mg/dL", 0, 400),
    Feature("s3", "High-density lipoproteins (hdl) in mg/dL", 0, 200),
    Feature("s4", "Total cholesterol / HDL (tch)", 0, 20),
    Feature("s5", "Log of serum triglycerides level (ltg)", 0, 10),
    Feature("s6", "Blood sugar level (glu) in mg/dL", 0, 500),
)


@dataclass(frozen=True, slots=True)
class TrainedModel:
    definition: ModelDefinition
    estimator: object


def build_defaults(target: Path) -> None:
    """Train every default model and write `<target>/<name>/<version>/` for each."""
    for trained in (train_iris(), train_diabetes()):
        write_model(target, trained)


def write_model(target: Path, trained: TrainedModel) -> None:
    folder = target / trained.definition.name / trained.definition.version
    folder.mkdir(parents=True)
    joblib.dump(trained.estimator, folder / ARTIFACT_FILE)
    manifest = json.dumps(asdict(trained.definition), indent=2, sort_keys=True)
    (folder / MANIFEST_FILE).write_text(manifest + "\n", encoding="utf-8")


def train_iris() -> TrainedModel:
    data = load_iris()
    labels = data.target_names[data.target]
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, labels, test_size=0.25, random_state=SEED, stratify=labels
    )
    estimator: Pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    estimator.fit(x_train, y_train)
    accuracy = round(float(estimator.score(x_test, y_test)), 4)
    definition = ModelDefinition(
        name="iris-species",
        version=VERSION,
        description=(
            "Iris species from flower measurements (logistic regression on the iris data set; "
            f"held-out accuracy {accuracy})."
        ),
        input_schema=input_schema(IRIS_FEATURES),
        output_schema=_iris_output_schema(),
        runtime="local",
        runtime_config={
            **_config(
                "classification", IRIS_FEATURES, "species", {"accuracy": accuracy}, len(y_test)
            ),
            PROFILE_KEY: reference_profile(
                IRIS_FEATURES, x_train, Axis(PREDICTION, categories=IRIS_SPECIES), y_train
            ),
        },
    )
    return TrainedModel(definition, estimator)


def train_diabetes() -> TrainedModel:
    data = load_diabetes(scaled=False)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=SEED
    )
    estimator: Pipeline = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    estimator.fit(x_train, y_train)
    r2 = round(float(estimator.score(x_test, y_test)), 4)
    definition = ModelDefinition(
        name="diabetes-progression",
        version=VERSION,
        description=(
            "Disease progression one year after baseline from ten clinical measurements "
            f"(ridge regression on the diabetes data set; held-out R^2 {r2})."
        ),
        input_schema=input_schema(DIABETES_FEATURES),
        output_schema=_object_schema(
            {"progression": {"type": "number", "description": "Quantitative progression score"}}
        ),
        runtime="local",
        runtime_config={
            **_config("regression", DIABETES_FEATURES, "progression", {"r2": r2}, len(y_test)),
            PROFILE_KEY: reference_profile(
                DIABETES_FEATURES,
                x_train,
                Axis(PREDICTION, edges=_decile_edges(y_train)),
                estimator.predict(x_train),
            ),
        },
    )
    return TrainedModel(definition, estimator)


def input_schema(features: Sequence[Feature]) -> dict[str, JSONValue]:
    return _object_schema(
        {
            feature.name: {
                "type": "number",
                "minimum": feature.minimum,
                "maximum": feature.maximum,
                "description": feature.description,
            }
            for feature in features
        }
    )


def _iris_output_schema() -> dict[str, JSONValue]:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    probabilities = {
        "type": "object",
        "properties": dict.fromkeys(IRIS_SPECIES, probability),
        "required": list(IRIS_SPECIES),
        "additionalProperties": False,
    }
    return _object_schema({"species": {"enum": list(IRIS_SPECIES)}, "probabilities": probabilities})


def _object_schema(properties: dict[str, JSONValue]) -> dict[str, JSONValue]:
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _config(
    task: str,
    features: Sequence[Feature],
    output_key: str,
    metrics: dict[str, float],
    test_size: int,
) -> dict[str, JSONValue]:
    config: LocalRuntimeConfig = {
        "artifact": ARTIFACT_FILE,
        "task": task,
        "features": [feature.name for feature in features],
        "output_key": output_key,
    }
    # Pickled estimators only load reliably under the scikit-learn version that wrote them.
    extra = {
        "metrics": {**metrics, "test_samples": test_size},
        "sklearn_version": sklearn.__version__,
    }
    return {**config, **extra}


def reference_profile(
    features: Sequence[Feature],
    x_train: NDArray[np.float64],
    output: Axis,
    outputs: NDArray[np.generic],
) -> dict[str, JSONValue]:
    """The model's reference for monitoring (domain/monitoring.py): each input feature's
    training deciles as bin edges with the training rows' counts in them, and the output's
    counts (the model's answers on the training rows, in class shares or value bins)."""
    axes = [Axis(f.name, edges=_decile_edges(x_train[:, i])) for i, f in enumerate(features)]
    return {
        "features": {axis.name: _part(axis, x_train[:, i].tolist()) for i, axis in enumerate(axes)},
        "output": _part(output, outputs.tolist()),
    }


def _decile_edges(values: NDArray[np.generic]) -> tuple[float, ...]:
    quantiles = np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0.1, 0.9, 9))
    return tuple(sorted({round(float(q), 6) for q in quantiles}))


def _part(axis: Axis, values: list[JSONValue]) -> dict[str, JSONValue]:
    counts = [0] * axis.size
    for value in values:
        at = axis.bin_of(value)
        if at is not None:
            counts[at] += 1
    shape: dict[str, JSONValue] = (
        {"edges": list(axis.edges)} if axis.is_numeric else {"categories": list(axis.categories)}
    )
    return {**shape, "counts": counts}
