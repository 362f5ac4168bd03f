"""The model directory: building the defaults once, validating manifests, concurrent starts."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from domain.models import ModelDefinition
from integrations.models.defaults import build_defaults
from integrations.models.directory import ModelDirectory


def _names(definitions: list[ModelDefinition]) -> list[tuple[str, str]]:
    return [(d.name, d.version) for d in definitions]


def test_builds_the_defaults_into_a_missing_directory(tmp_path: Path) -> None:
    definitions = ModelDirectory(tmp_path / "models").definitions()

    assert _names(definitions) == [("diabetes-progression", "1.0.0"), ("iris-species", "1.0.0")]
    for definition in definitions:
        Draft202012Validator.check_schema(definition.input_schema)
        Draft202012Validator.check_schema(definition.output_schema)
        assert definition.runtime == "local"
        assert (tmp_path / "models" / definition.name / "1.0.0" / "model.joblib").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["models"]  # no staging left behind


def test_records_held_out_metrics(tmp_path: Path) -> None:
    by_name = {d.name: d for d in ModelDirectory(tmp_path).definitions()}

    assert by_name["iris-species"].runtime_config["metrics"]["accuracy"] > 0.9
    assert by_name["diabetes-progression"].runtime_config["metrics"]["r2"] > 0.3


def test_builds_into_an_existing_empty_directory(tmp_path: Path) -> None:
    assert len(ModelDirectory(tmp_path).definitions()) == 2


def test_a_second_call_does_not_rebuild(tmp_path: Path) -> None:
    directory = ModelDirectory(tmp_path)
    first = directory.definitions()
    artifact = tmp_path / "iris-species" / "1.0.0" / "model.joblib"
    built_at = artifact.stat().st_mtime_ns

    assert ModelDirectory(tmp_path).definitions() == first
    assert artifact.stat().st_mtime_ns == built_at


def _write_manifest(root: Path, **overrides: object) -> Path:
    manifest = {
        "name": "echo",
        "version": "1",
        "description": "",
        "runtime": "sagemaker",
        "input_schema": {"type": "object"},
        "output_schema": {},
        "runtime_config": {"endpoint_name": "echo"},
    }
    path = root / "echo" / "1" / "model.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**manifest, **overrides}))
    return path


def test_reads_a_hand_written_manifest_without_building(tmp_path: Path) -> None:
    _write_manifest(tmp_path)

    [definition] = ModelDirectory(tmp_path).definitions()

    assert definition.runtime_config == {"endpoint_name": "echo"}
    assert not (tmp_path / "iris-species").exists()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"input_schema": {"type": "banana"}}, "invalid model manifest"),
        ({"output_schema": {"minimum": "zero"}}, "invalid model manifest"),
        ({"runtime": "gpu-cluster"}, "'runtime' must be one of"),
        ({"name": "other"}, "must match the manifest's folders"),
        ({"version": 1}, "'version' must be a string"),
    ],
)
def test_a_bad_manifest_names_the_file(
    tmp_path: Path, overrides: dict[str, object], reason: str
) -> None:
    path = _write_manifest(tmp_path, **overrides)

    with pytest.raises(ValueError, match=reason) as raised:
        ModelDirectory(tmp_path).definitions()
    assert str(path) in str(raised.value)


def test_a_manifest_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = _write_manifest(tmp_path)
    path.write_text("{not json")

    with pytest.raises(ValueError, match="unreadable model manifest") as raised:
        ModelDirectory(tmp_path).definitions()
    assert str(path) in str(raised.value)


def test_a_build_that_loses_the_race_keeps_the_winner(tmp_path: Path) -> None:
    target = tmp_path / "models"

    def build_while_another_process_wins(staging: Path) -> None:
        build_defaults(target)  # the other process finishes first...
        _write_manifest(staging)  # ...while this one builds something else

    definitions = ModelDirectory(target, build_while_another_process_wins).definitions()

    assert _names(definitions) == [("diabetes-progression", "1.0.0"), ("iris-species", "1.0.0")]
    assert [p.name for p in tmp_path.iterdir()] == ["models"]


def _start(path: str, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait()
    ModelDirectory(Path(path)).definitions()


def test_two_processes_starting_at_once_end_with_one_directory(tmp_path: Path) -> None:
    target = tmp_path / "models"
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_start, args=(str(target), start)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0, 0]
    assert [p.name for p in tmp_path.iterdir()] == ["models"]
    definitions = ModelDirectory(target).definitions()
    assert _names(definitions) == [("diabetes-progression", "1.0.0"), ("iris-species", "1.0.0")]


def test_a_directory_holding_something_else_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")

    with pytest.raises(RuntimeError, match="cannot install the default models"):
        ModelDirectory(tmp_path).definitions()
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
