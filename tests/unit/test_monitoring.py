"""Monitoring's pure parts: layouts, tallies, latency percentiles, drift."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from uuid import uuid4

from domain import tallies
from domain.drift import DriftStatus, feature_drift, ks, psi
from domain.models import Model
from domain.monitoring import (
    LATENCY_EDGES_MS,
    Axis,
    Observation,
    layout_of,
    merged,
    percentile_ms,
    profile_from,
)
from domain.tallies import tally

NOW = datetime(2026, 12, 5, 12, 30, 45, tzinfo=UTC)


def _model(**config: object) -> Model:
    return Model(
        id=uuid4(),
        name="m",
        version="1",
        description="",
        input_schema={
            "type": "object",
            "properties": {
                "x": {"type": "number", "minimum": 0, "maximum": 10},
                "y": {"type": "number"},
                "colour": {"enum": ["red", "blue"]},
                "note": {"type": "object"},
            },
        },
        output_schema={"type": "object", "properties": {"label": {"enum": ["a", "b"]}}},
        runtime="local",
        runtime_config=dict(config),
    )


def test_layout_comes_from_the_schema_when_no_profile_ships() -> None:
    layout = layout_of(_model())
    x, y, colour = layout.features
    assert x.edges == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert y.edges[0] == -1000.0  # no bounds: the logarithmic scale
    assert colour.categories == ("red", "blue")
    assert layout.output == Axis("prediction", categories=("a", "b"))
    assert layout.output_key == "label"


def test_numeric_bins_are_labelled_by_their_edges() -> None:
    assert Axis("x", edges=(1.0, 2.5)).labels() == ["< 1", "[1, 2.5)", ">= 2.5"]
    assert Axis("c", categories=("a",)).labels() == ["a", "other"]


def test_a_tally_counts_predictions_failures_bins_and_latency() -> None:
    layout = layout_of(_model())
    seen = [
        Observation({"x": 0.5, "colour": "red"}, {"label": "a"}, False, 3.0, 12.0),
        Observation({"x": 9.5, "colour": "green"}, {"label": "b"}, False, 3.0, 12.0),
        Observation({"x": 9.5}, None, True, 0.0, 40.0),
    ]
    counted = tally(uuid4(), layout, seen, NOW)
    assert counted.minute == NOW.replace(second=0, microsecond=0)
    assert (counted.predictions, counted.failures) == (2, 1)
    assert counted.output == (1, 1, 0)
    parts = layout.split(counted.features)
    assert parts["x"][0] == parts["x"][-1] == 1
    assert sum(parts["y"]) == 0  # missing values are not counted
    assert parts["colour"] == [1, 0, 1]  # "green" is other
    assert sum(counted.model_ms) == 2
    assert sum(counted.end_to_end_ms) == 3


def test_percentiles_come_from_the_latency_buckets_within_a_bucket_width() -> None:
    layout = layout_of(_model())
    seen = [Observation({}, {}, False, float(ms), float(ms)) for ms in range(1, 101)]
    counted = tally(uuid4(), layout, seen, NOW)
    p50, p99 = percentile_ms(counted.model_ms, 0.5), percentile_ms(counted.model_ms, 0.99)
    assert p50 is not None
    assert p99 is not None
    assert 50 / 1.25 <= p50 <= 50 * 1.25
    assert 99 / 1.25 <= p99 <= 100 * 1.25
    assert percentile_ms([0] * (len(LATENCY_EDGES_MS) + 1), 0.5) is None


def test_merged_tallies_add_up_and_make_a_reference() -> None:
    model = _model()
    layout = layout_of(model)
    one = tally(model.id, layout, [Observation({"x": 1}, {"label": "a"}, False, 1, 1)], NOW)
    total = merged(model.id, NOW, [one, one])
    assert total.predictions == 2
    profile = profile_from(layout, total)
    assert profile.source == "predictions"
    assert profile.output == (2, 0, 0)


def _counts(axis: Axis, values: list[float]) -> list[int]:
    counts = [0] * axis.size
    for v in values:
        at = axis.bin_of(v)
        assert at is not None
        counts[at] += 1
    return counts


def test_a_sample_of_the_reference_is_ok_and_a_shifted_one_drifts() -> None:
    rng = random.Random(7)
    axis = Axis("x", edges=tuple(float(e) for e in range(1, 10)))
    reference = _counts(axis, [rng.uniform(0, 10) for _ in range(5000)])
    same = _counts(axis, [rng.uniform(0, 10) for _ in range(1000)])
    shifted = _counts(axis, [rng.uniform(4, 14) for _ in range(1000)])
    labels = axis.labels()
    assert feature_drift("x", labels, same, reference, is_numeric=True).status is DriftStatus.OK
    drifted = feature_drift("x", labels, shifted, reference, is_numeric=True)
    assert drifted.status is DriftStatus.DRIFT
    assert drifted.ks is not None
    assert drifted.ks > 0.3
    assert psi(reference, reference) == 0.0
    assert ks(reference, reference) < 1e-9


def test_too_few_values_or_no_reference_is_insufficient_data() -> None:
    few = feature_drift("x", ["a", "b"], [3, 4], [50, 50], is_numeric=False)
    assert few.status is DriftStatus.INSUFFICIENT_DATA
    none = feature_drift("x", ["a", "b"], [300, 400], None, is_numeric=False)
    assert none.status is DriftStatus.INSUFFICIENT_DATA
    assert none.reference == ()


def _random_observation(rng: random.Random) -> Observation:
    anything: list[object] = [None, True, False, "red", "blue", "green", 3, -2.5, 1e9, {"a": 1}]
    values = {
        name: rng.choice([rng.uniform(-20, 20), rng.randint(-3, 12), *anything])
        for name in ("x", "y", "colour", "note")
        if rng.random() < 0.9
    }
    prediction = rng.choice([{"label": "a"}, {"label": "b"}, {"label": "c"}, {}, "a", None, 1])
    failed = rng.random() < 0.2
    return Observation(
        values if rng.random() < 0.95 else [1, 2],  # a careless input: not an object
        prediction,
        failed,
        rng.uniform(0, 60_000),
        rng.uniform(0, 90_000),
    )


def test_the_row_loop_and_numpys_columns_count_alike() -> None:
    layout = layout_of(_model())
    plan = tallies._plan_of(layout)
    rng = random.Random(27)
    for size in (1, 2, 7, 64, 300):
        seen = [_random_observation(rng) for _ in range(size)]
        rows = tallies._counted_row_by_row(plan, layout.output_key, seen)
        columns = tallies._counted_in_columns(plan, layout.output_key, seen)
        assert columns == rows, size
