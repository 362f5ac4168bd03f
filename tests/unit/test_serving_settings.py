"""runInference's batching settings: defaults, a per-model JSON map, refusals that name it."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.services.batcher import BatchPolicy
from server.bootstrap import serving_policy
from server.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSAY_DATA_DIR", str(tmp_path))


def test_by_default_a_group_takes_what_queued_and_waits_for_nothing() -> None:
    policy = serving_policy(load_settings())

    assert policy.batching == BatchPolicy(max_batch_size=32, max_delay_seconds=0.0)
    assert policy.by_model == {}
    assert policy.timeout_seconds == 30.0


def test_models_named_in_the_json_map_override_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSAY_INFERENCE_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv(
        "ASSAY_INFERENCE_BATCHING",
        '{"iris-species": {"max_delay_ms": 2}, "big:2.0.0": {"max_batch_size": 256}}',
    )

    policy = serving_policy(load_settings())

    assert policy.by_model == {
        "iris-species": BatchPolicy(max_batch_size=16, max_delay_seconds=0.002),
        "big:2.0.0": BatchPolicy(max_batch_size=256, max_delay_seconds=0.0),
    }


@pytest.mark.parametrize(
    "value",
    ['{"iris-species": {"max_batch_size": 0}}', '{"iris-species": {"size": 4}}', "not json"],
)
def test_an_unusable_per_model_setting_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ASSAY_INFERENCE_BATCHING", value)

    with pytest.raises(SettingsError, match="ASSAY_INFERENCE_BATCHING"):
        load_settings()
