"""Monitoring's use cases on fakes: the proof streams (reference OK, shifted DRIFT; an
accuracy drop raises one alert and its recovery clears it), feedback rules, windows."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from sklearn.datasets import load_iris  # type: ignore[import-untyped]  # untyped
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]  # untyped

from domain.drift import DriftStatus
from domain.errors import Forbidden, InvalidInput, NotFound
from domain.events import EventType
from domain.model_alerts import AlertKind, AlertPolicy, AlertState
from domain.models import Model, ModelFailure
from domain.principal import Principal
from domain.services.feedback import submit_feedback
from domain.services.model_alerts import (
    AlertSettings,
    check_alerts,
    maintain,
    set_alert_policy,
)
from domain.services.model_health import model_health
from domain.services.monitoring import (
    MonitoringPolicy,
    model_drift,
    model_quality,
    model_stats,
    stats_series,
    window_of,
)
from domain.services.recording import record_statistics
from domain.submissions import Prediction, Result, Submission, SubmissionStatus
from domain.users import User
from integrations.models.defaults import SEED, TrainedModel, train_iris
from telemetry import metrics
from tests.unit.fakes import FakeClock, FakeData, FakeUnitOfWork, QueueRow

POLICY = MonitoringPolicy(retention=timedelta(days=2), reference_size=50)
FEATURES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")


def _principal(user_id: uuid.UUID | None = None, *, is_admin: bool = False) -> Principal:
    ident = user_id or uuid.uuid4()
    return Principal(ident, f"sub-{ident}", (), is_admin=is_admin)


ADMIN = _principal(is_admin=True)


@pytest.fixture(scope="module")
def trained() -> TrainedModel:
    return train_iris()


def _registered(trained: TrainedModel, data: FakeData) -> Model:
    d = trained.definition
    model = Model(
        uuid.uuid4(),
        d.name,
        d.version,
        d.description,
        d.input_schema,
        d.output_schema,
        d.runtime,
        d.runtime_config,
    )
    data.models[model.id] = model
    return model


def _submission(model: Model, clock: FakeClock, inputs: dict[str, float]) -> Submission:
    now = clock()
    return Submission(
        uuid.uuid4(), uuid.uuid4(), model.id, inputs, SubmissionStatus.SUCCEEDED, None, 1, None,
        now, now,
    )  # fmt: skip


async def _stream(
    trained: TrainedModel,
    data: FakeData,
    model: Model,
    clock: FakeClock,
    rows: list[list[float]],
) -> None:
    """Predict `rows` with the real estimator and record them as one chunk."""
    predicted = trained.estimator.predict(rows)  # type: ignore[attr-defined]  # sklearn
    written = [
        (
            _submission(model, clock, dict(zip(FEATURES, row, strict=True))),
            Prediction({"species": str(label)}, 0.9, (), 2),
        )
        for row, label in zip(rows, predicted, strict=True)
    ]
    uow = FakeUnitOfWork(data)
    async with uow:
        await record_statistics(uow, model, written, clock())
        await uow.commit()


def _training_rows() -> list[list[float]]:
    data = load_iris()
    x_train, _, _, _ = train_test_split(
        data.data, data.target, test_size=0.25, random_state=SEED, stratify=data.target
    )
    rows: list[list[float]] = x_train.tolist()
    return rows


async def test_a_stream_from_the_reference_is_ok_and_a_shifted_one_drifts(
    trained: TrainedModel,
) -> None:
    data, clock = FakeData(), FakeClock()
    model = _registered(trained, data)
    rng = random.Random(1)
    reference = _training_rows()
    await _stream(trained, data, model, clock, [rng.choice(reference) for _ in range(3000)])
    window = window_of(None, None, POLICY, clock() + timedelta(minutes=1))
    drift = await model_drift(FakeUnitOfWork(data), ADMIN, model, window, POLICY)
    assert drift.status is DriftStatus.OK, [(f.feature, f.psi) for f in drift.features]
    assert drift.drift_share == 0.0

    clock.advance(hours=2)
    shifted = [[a, b, c + 2.0, d] for a, b, c, d in (rng.choice(reference) for _ in range(3000))]
    await _stream(trained, data, model, clock, shifted)
    window = window_of(None, None, POLICY, clock() + timedelta(minutes=1))
    drift = await model_drift(FakeUnitOfWork(data), ADMIN, model, window, POLICY)
    assert drift.status is DriftStatus.DRIFT
    by_name = {f.feature: f for f in drift.features}
    assert by_name["petal_length_cm"].status is DriftStatus.DRIFT
    assert by_name["sepal_width_cm"].status is DriftStatus.OK
    assert drift.drift_share == 0.25
    assert by_name["petal_length_cm"].ks is not None


async def test_stats_count_predictions_failures_and_latency(trained: TrainedModel) -> None:
    data, clock = FakeData(), FakeClock()
    model = _registered(trained, data)
    accepted = _submission(model, clock, dict.fromkeys(FEATURES, 5.0))
    clock.advance(seconds=0.02)
    uow = FakeUnitOfWork(data)
    failure = ModelFailure("no", is_transient=False)
    async with uow:
        ok = Prediction({"species": "setosa"}, 1.0, (), 3)
        await record_statistics(uow, model, [(accepted, ok), (accepted, failure)], clock())
        await uow.commit()
    window = window_of(None, None, POLICY, clock() + timedelta(minutes=1))
    stats = await model_stats(FakeUnitOfWork(data), ADMIN, model, window)
    assert (stats.total.predictions, stats.total.failures, stats.error_rate) == (1, 1, 0.5)
    assert stats.model_latency.p50_ms is not None
    assert 2 <= stats.model_latency.p50_ms <= 4
    e2e = stats.end_to_end_latency.p50_ms
    assert e2e is not None
    assert 15 <= e2e <= 25
    assert [b.label for b in stats.output_distribution][:3] == ["setosa", "versicolor", "virginica"]
    points = await stats_series(FakeUnitOfWork(data), stats, 600)
    assert sum(p.predictions for p in points) == 1
    assert len(points) <= 7


async def test_statistics_are_for_administrators_and_windows_are_checked(
    trained: TrainedModel,
) -> None:
    data, clock = FakeData(), FakeClock()
    model = _registered(trained, data)
    window = window_of(None, None, POLICY, clock())
    with pytest.raises(Forbidden):
        await model_stats(FakeUnitOfWork(data), _principal(), model, window)
    with pytest.raises(InvalidInput) as beyond:
        window_of(clock() - timedelta(days=3), None, POLICY, clock())
    assert list(beyond.value.fields) == ["window.from"]
    with pytest.raises(InvalidInput):
        window_of(clock(), clock() - timedelta(hours=1), POLICY, clock())
    with pytest.raises(InvalidInput) as naive:
        window_of(clock().replace(tzinfo=None), None, POLICY, clock())
    assert list(naive.value.fields) == ["window.from"]
    with pytest.raises(InvalidInput) as ahead:
        window_of(None, clock() + timedelta(days=3000), POLICY, clock())
    assert list(ahead.value.fields) == ["window.to"]


def _result(model: Model, clock: FakeClock, owner: uuid.UUID, data: FakeData, label: str) -> Result:
    submission = Submission(
        uuid.uuid4(), owner, model.id, {}, SubmissionStatus.SUCCEEDED, None, 1, None,
        clock(), clock(),
    )  # fmt: skip
    data.submissions[submission.id] = QueueRow(submission, clock())
    result = Result(
        uuid.uuid4(), submission.id, owner, {"species": label}, 0.9, (), "1.0.0", 2, clock()
    )
    data.results[result.id] = result
    return result


async def test_feedback_is_its_owners_and_must_be_a_class_of_the_model(
    trained: TrainedModel,
) -> None:
    data, clock = FakeData(), FakeClock()
    model = _registered(trained, data)
    owner = _principal()
    result = _result(model, clock, owner.user_id, data, "setosa")
    with pytest.raises(NotFound):
        await submit_feedback(FakeUnitOfWork(data), _principal(), result.id, "setosa", clock=clock)
    with pytest.raises(Forbidden):
        await submit_feedback(FakeUnitOfWork(data), ADMIN, result.id, "setosa", clock=clock)
    with pytest.raises(InvalidInput) as bad:
        await submit_feedback(FakeUnitOfWork(data), owner, result.id, "rose", clock=clock)
    assert list(bad.value.fields) == ["input.label"]
    assert data.feedback == {}
    await submit_feedback(FakeUnitOfWork(data), owner, result.id, "setosa", clock=clock)
    assert data.feedback[result.id].true_class == "setosa"


async def _label(
    data: FakeData, model: Model, clock: FakeClock, owner: Principal, n: int, *, right: bool
) -> None:
    for _ in range(n):
        result = _result(model, clock, owner.user_id, data, "setosa")
        truth = "setosa" if right else "virginica"
        await submit_feedback(FakeUnitOfWork(data), owner, result.id, truth, clock=clock)


async def test_an_accuracy_drop_raises_one_alert_and_the_recovery_clears_it(
    trained: TrainedModel,
) -> None:
    data, clock = FakeData(), FakeClock()
    model = _registered(trained, data)
    admin = User(uuid.uuid4(), "a", "a@x", "A", "en", True, ("admin",), clock(), clock())
    data.users[admin.id] = admin
    owner = _principal()
    policy = AlertPolicy(model.id, min_accuracy=0.8)
    await set_alert_policy(FakeUnitOfWork(data), ADMIN, policy, clock=clock)
    settings = AlertSettings(POLICY)

    async def check() -> list[AlertState]:
        clock.advance(seconds=1)  # windows end before now: what was labelled is in them
        found = await check_alerts(
            FakeUnitOfWork(data), FakeUnitOfWork(data), settings, clock=clock
        )
        return [a.state for a in found]

    await _label(data, model, clock, owner, 20, right=True)
    assert await check() == []
    await _label(data, model, clock, owner, 40, right=False)
    assert await check() == [AlertState.RAISED]
    assert await check() == []  # still low: no second alert
    clock.advance(hours=2)
    await _label(data, model, clock, owner, 30, right=True)
    assert await check() == [AlertState.CLEARED]
    assert await check() == []
    quality = await model_quality(
        FakeUnitOfWork(data), ADMIN, model, window_of(None, None, POLICY, clock())
    )
    assert quality.quality.accuracy == 1.0
    told = [e for e in data.events if e.type is EventType.MODEL_ALERT]
    assert [(e.owner_id, e.payload["state"]) for e in told] == [
        (admin.id, "RAISED"),
        (admin.id, "CLEARED"),
    ]
    assert {a.kind for a in data.alerts} == {AlertKind.QUALITY}


async def test_upkeep_keeps_a_reference_from_the_first_predictions_then_prunes() -> None:
    data, clock = FakeData(), FakeClock()
    model = Model(
        uuid.uuid4(), "plain", "1", "", {"type": "object", "properties": {"x": {"type": "number"}}},
        {"type": "number"}, "local",
    )  # fmt: skip
    data.models[model.id] = model
    uow = FakeUnitOfWork(data)
    written = [(_submission(model, clock, {"x": 1.0}), Prediction(2.0, None, (), 1))] * 60
    async with uow:
        await record_statistics(uow, model, written, clock())
        await uow.commit()
    clock.advance(days=3)
    assert await maintain(FakeUnitOfWork(data), POLICY, clock=clock) == 1
    kept = data.profiles[model.id]
    assert kept.source == "predictions"
    assert kept.size == 60


async def test_each_models_health_reaches_the_prometheus_gauges(trained: TrainedModel) -> None:
    data, clock = FakeData(), FakeClock()
    model = _registered(trained, data)
    accepted = _submission(model, clock, dict.fromkeys(FEATURES, 5.0))
    uow = FakeUnitOfWork(data)
    failed = ModelFailure("no", is_transient=False)
    async with uow:
        ok = Prediction({"species": "setosa"}, 1.0, (), 3)
        await record_statistics(uow, model, [(accepted, ok)] * 3 + [(accepted, failed)], clock())
        await uow.commit()
    clock.advance(seconds=1)
    [health] = await model_health(lambda: FakeUnitOfWork(data), POLICY, clock=clock)
    assert (health.name, health.error_rate, health.drift_level) == ("iris-species", 0.25, -1)
    assert health.model_p95_seconds is not None
    metrics.record_model_health(
        health.name,
        health.version,
        predictions_per_second=health.predictions_per_second,
        error_rate=health.error_rate,
        p95_seconds={"model": health.model_p95_seconds, "end_to_end": None},
        drift_level=health.drift_level,
        worst_psi=health.worst_psi,
        accuracy=health.accuracy,
    )
    text = metrics.render()[0].decode()
    assert 'assay_model_error_rate{model="iris-species",version="1.0.0"} 0.25' in text
    assert 'assay_model_latency_p95_seconds{kind="model",model="iris-species"' in text
    assert 'kind="end_to_end",model="iris-species"' not in text


def test_a_gauge_removed_for_want_of_a_reading_shows_again_once_set() -> None:
    # A model without traffic for a while loses its p95 (removed), then gets traffic again.
    def record(p95: float | None) -> str:
        metrics.record_model_health(
            "comeback",
            "1",
            predictions_per_second=1.0,
            error_rate=0.0,
            p95_seconds={"model": p95},
            drift_level=-1,
            worst_psi=None,
            accuracy=None,
        )
        return metrics.render()[0].decode()

    line = 'assay_model_latency_p95_seconds{kind="model",model="comeback",version="1"}'
    assert f"{line} 0.5" in record(0.5)
    assert line not in record(None)
    assert f"{line} 0.25" in record(0.25)
