"""The local runtime on the default scikit-learn models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import jsonschema
import numpy as np
import pytest
from numpy.typing import NDArray

from domain.models import JSONValue, Model, ModelDefinition, ModelFailure
from domain.monitoring import layout_of, shipped_profile
from integrations.models.directory import ModelDirectory
from integrations.models.local import RECENT_CALLS, LocalModelRuntime, _classify

IRIS_KEYS = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")
# Textbook samples: rows 1, 51 and 101 of Fisher's iris data.
SETOSA = dict(zip(IRIS_KEYS, (5.1, 3.5, 1.4, 0.2), strict=True))
VERSICOLOR = dict(zip(IRIS_KEYS, (7.0, 3.2, 4.7, 1.4), strict=True))
VIRGINICA = dict(zip(IRIS_KEYS, (6.3, 3.3, 6.0, 2.5), strict=True))
PATIENT = {"age": 50, "sex": 1, "bmi": 26.0, "bp": 94.0, "s1": 189, "s2": 115.0}
PATIENT |= {"s3": 50.0, "s4": 4.0, "s5": 4.6, "s6": 91}


def _model(definition: ModelDefinition) -> Model:
    return Model(
        id=uuid4(),
        name=definition.name,
        version=definition.version,
        description=definition.description,
        input_schema=definition.input_schema,
        output_schema=definition.output_schema,
        runtime=definition.runtime,
        runtime_config=definition.runtime_config,
    )


def _model_named(name: str) -> Model:
    return Model(uuid4(), name, "1", "", {}, {}, "local")


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def models(directory: Path) -> dict[str, Model]:
    return {d.name: _model(d) for d in ModelDirectory(directory).definitions()}


@pytest.fixture(scope="module")
def runtime(directory: Path) -> Iterator[LocalModelRuntime]:
    runtime = LocalModelRuntime(directory)
    yield runtime
    runtime.close()


@pytest.fixture
def iris(models: dict[str, Model]) -> Model:
    return models["iris-species"]


@pytest.fixture
def diabetes(models: dict[str, Model]) -> Model:
    return models["diabetes-progression"]


async def test_classifies_textbook_samples(runtime: LocalModelRuntime, iris: Model) -> None:
    predictions = await runtime.predict(iris, [SETOSA, VERSICOLOR, VIRGINICA])

    species = [p.prediction["species"] for p in predictions]
    assert species == ["setosa", "versicolor", "virginica"]


async def test_classifier_output_is_schema_valid_and_ranked(
    runtime: LocalModelRuntime, iris: Model
) -> None:
    [prediction] = await runtime.predict(iris, [SETOSA])

    jsonschema.validate(prediction.prediction, iris.output_schema)
    assert prediction.confidence is not None
    assert 0 < prediction.confidence <= 1
    confidences = [a.confidence for a in prediction.alternatives]
    assert confidences == sorted(confidences, reverse=True)
    assert confidences[0] == prediction.confidence
    assert sum(confidences) == pytest.approx(1)
    assert prediction.alternatives[0].value == "setosa"
    assert {a.value for a in prediction.alternatives} == {"setosa", "versicolor", "virginica"}
    assert prediction.processing_time_ms >= 0


async def test_regressor_returns_a_number_without_confidence(
    runtime: LocalModelRuntime, diabetes: Model
) -> None:
    [prediction] = await runtime.predict(diabetes, [PATIENT])

    jsonschema.validate(prediction.prediction, diabetes.output_schema)
    assert isinstance(prediction.prediction["progression"], float)
    assert prediction.confidence is None
    assert prediction.alternatives == ()


async def test_regressor_learned_that_bmi_matters(
    runtime: LocalModelRuntime, diabetes: Model
) -> None:
    lean, heavy = await runtime.predict(
        diabetes, [PATIENT | {"bmi": 20.0}, PATIENT | {"bmi": 40.0}]
    )

    assert heavy.prediction["progression"] > lean.prediction["progression"] + 50


async def test_a_large_batch_keeps_input_order(runtime: LocalModelRuntime, iris: Model) -> None:
    samples = [SETOSA, VERSICOLOR, VIRGINICA]
    inputs: list[JSONValue] = [samples[i % 3] for i in range(1000)]

    predictions = await runtime.predict(iris, inputs)

    assert len(predictions) == 1000
    expected = ["setosa", "versicolor", "virginica"]
    assert [p.prediction["species"] for p in predictions] == [expected[i % 3] for i in range(1000)]


async def test_an_empty_batch_predicts_nothing(runtime: LocalModelRuntime, iris: Model) -> None:
    assert await runtime.predict(iris, []) == []


@pytest.mark.parametrize(
    "bad_input",
    [
        {k: v for k, v in SETOSA.items() if k != "petal_width_cm"},
        SETOSA | {"petal_width_cm": "wide"},
        SETOSA | {"petal_width_cm": True},
        SETOSA | {"petal_width_cm": float("nan")},
        [5.1, 3.5, 1.4, 0.2],
    ],
)
async def test_a_bad_input_fails_for_good(
    runtime: LocalModelRuntime, iris: Model, bad_input: JSONValue
) -> None:
    with pytest.raises(
        ModelFailure, match=r"input 1: 'petal_width_cm' must be a finite number|input 1: 'sepal"
    ) as raised:
        await runtime.predict(iris, [SETOSA, bad_input])
    assert raised.value.is_transient is False


async def test_an_unreadable_artifact_fails_for_good(tmp_path: Path, iris: Model) -> None:
    artifact = tmp_path / iris.name / iris.version / "model.joblib"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(b"not a pickle")
    runtime = LocalModelRuntime(tmp_path)
    try:
        with pytest.raises(ModelFailure, match="unreadable") as raised:
            await runtime.predict(iris, [SETOSA])
    finally:
        runtime.close()
    assert raised.value.is_transient is False


async def test_a_missing_artifact_fails_for_good(tmp_path: Path, iris: Model) -> None:
    runtime = LocalModelRuntime(tmp_path)
    try:
        with pytest.raises(ModelFailure, match="unreadable") as raised:
            await runtime.predict(iris, [SETOSA])
    finally:
        runtime.close()
    assert raised.value.is_transient is False


async def test_artifacts_are_loaded_once_and_cached(tmp_path: Path, iris: Model) -> None:
    ModelDirectory(tmp_path).definitions()
    runtime = LocalModelRuntime(tmp_path)
    try:
        [first] = await runtime.predict(iris, [SETOSA])
        (tmp_path / iris.name / iris.version / "model.joblib").unlink()
        [second] = await runtime.predict(iris, [SETOSA])
    finally:
        runtime.close()
    assert second.prediction == first.prediction


@pytest.mark.parametrize("name", ["iris-species", "diabetes-progression"])
def test_each_default_model_ships_a_reference_profile_that_fits_its_layout(
    models: dict[str, Model], name: str
) -> None:
    model = models[name]
    layout = layout_of(model)
    profile = shipped_profile(model, layout)
    assert profile is not None
    assert profile.source == "training"
    assert [axis.name for axis in layout.features] == model.runtime_config["features"]
    # Decile bins: every feature's training rows spread over them, none holding most.
    for axis in layout.features:
        counts = profile.features[axis.name]
        assert sum(counts) == profile.size
        assert max(counts) < profile.size / 2 or len(set(counts)) < 4
    assert sum(profile.output) == profile.size > 100


async def test_a_model_measured_fast_runs_on_the_event_loop_for_batches_no_larger(
    directory: Path, iris: Model
) -> None:
    # A budget no call can exceed: what is judged is the rule, not this machine's speed.
    runtime = LocalModelRuntime(directory, inline_seconds=3600.0)
    for _ in range(RECENT_CALLS - 1):
        await runtime.predict(iris, [SETOSA, SETOSA])
    pooled = await runtime.predict(iris, [SETOSA])
    runtime.close()  # the pool takes nothing more: what still answers ran on the loop

    assert runtime.runs_inline(iris, 2)
    assert not runtime.runs_inline(iris, 3)  # larger than any batch measured
    [inline] = await runtime.predict(iris, [SETOSA])
    assert (inline.prediction, inline.alternatives) == (
        pooled[0].prediction,
        pooled[0].alternatives,
    )
    with pytest.raises(RuntimeError):
        await runtime.predict(iris, [SETOSA, SETOSA, SETOSA])


async def test_without_an_inline_budget_every_call_goes_to_the_pool(
    directory: Path, iris: Model
) -> None:
    runtime = LocalModelRuntime(directory)
    try:
        for _ in range(RECENT_CALLS + 1):
            await runtime.predict(iris, [SETOSA])
        assert not runtime.runs_inline(iris, 1)
    finally:
        runtime.close()


class _Tied:
    """A classifier whose answers tie, in an order of classes that is not alphabetical."""

    classes_ = np.array(["c", "a", "b"])

    def predict(self, x: NDArray[np.float64], /) -> NDArray[np.generic]:
        return np.array(["c"] * len(x))

    def predict_proba(self, x: NDArray[np.float64], /) -> NDArray[np.float64]:
        rows = [[0.25, 0.5, 0.25], [0.4, 0.2, 0.4], [1 / 3, 1 / 3, 1 / 3], [0.1, 0.3, 0.6]]
        return np.array(rows[: len(x)])


def test_every_row_ranks_its_labels_by_probability_with_ties_in_the_classes_order() -> None:
    outputs = _classify(_model_named("tied"), _Tied(), np.zeros((4, 1)), "label")
    ranked = [[(a.value, a.confidence) for a in alternatives] for _, _, alternatives in outputs]
    assert ranked == [
        [("a", 0.5), ("c", 0.25), ("b", 0.25)],
        [("c", 0.4), ("b", 0.4), ("a", 0.2)],
        [("c", 1 / 3), ("a", 1 / 3), ("b", 1 / 3)],
        [("b", 0.6), ("a", 0.3), ("c", 0.1)],
    ]
    assert [(prediction, top) for prediction, top, _ in outputs][1] == (
        {"label": "c", "probabilities": {"c": 0.4, "a": 0.2, "b": 0.4}},
        0.4,
    )
