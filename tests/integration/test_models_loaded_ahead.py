"""Active local models are loaded when a process starts, in the background, so that no
caller's first prediction waits for an artifact (~1.3 s for a scikit-learn one here)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]  # no type hints
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.models import JSONValue, Model, ModelDefinition
from domain.ports import UnitOfWork
from domain.submissions import Prediction
from integrations.models.local import LocalModelRuntime
from persistence.unit_of_work import SqlUnitOfWork
from server.bootstrap import build_app
from server.settings import Settings
from server.workers import ModelLoader
from tests.integration.conftest import IRIS_INPUT

LOADS_WITHIN = 30.0  # seconds: a bound on the background load, not a measure


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every artifact unpickled, by file name."""
    seen: list[str] = []
    load = joblib.load

    def counted(path: Path, *args: Any, **kwargs: Any) -> Any:
        seen.append(Path(path).parent.parent.name)
        return load(path, *args, **kwargs)

    monkeypatch.setattr(joblib, "load", counted)
    return seen


async def _registered(db: AsyncEngine, definitions: list[ModelDefinition]) -> list[Model]:
    async with SqlUnitOfWork(db) as uow:
        models = await uow.models.register(definitions)
        await uow.commit()
    return models


@pytest.fixture
def runtime(settings: Settings) -> Iterator[LocalModelRuntime]:
    runtime = LocalModelRuntime(settings.models_path)
    yield runtime
    runtime.close()


class RemoteRuntime:
    """A runtime that cannot load ahead (as SageMaker's: the endpoint holds the model)."""

    async def predict(self, model: Model, inputs: Sequence[JSONValue]) -> list[Prediction]:
        raise AssertionError("nothing predicts here")


async def test_every_active_local_model_is_loaded_before_its_first_prediction(
    db: AsyncEngine,
    model_definitions: list[ModelDefinition],
    runtime: LocalModelRuntime,
    loads: list[str],
) -> None:
    models = await _registered(db, model_definitions)

    def uow() -> UnitOfWork:
        return SqlUnitOfWork(db)

    await ModelLoader(uow, {"local": runtime, "remote": RemoteRuntime()}).run(asyncio.Event())

    local = sorted(m.name for m in models if m.runtime == "local")
    assert local, "the default models run locally"
    assert sorted(loads) == local
    iris = next(m for m in models if m.name == "iris-species")
    [prediction] = await runtime.predict(iris, [IRIS_INPUT])
    assert prediction.prediction
    assert sorted(loads) == local, "the first prediction loaded its model again"


async def test_a_model_that_cannot_load_is_left_to_its_first_prediction(
    db: AsyncEngine,
    model_definitions: list[ModelDefinition],
    settings: Settings,
    tmp_path: Path,
    loads: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = await _registered(db, model_definitions)
    directory = tmp_path / "models"
    shutil.copytree(settings.models_path, directory)
    broken = next(m for m in models if m.name == "iris-species")
    (directory / broken.name / broken.version / "model.joblib").write_bytes(b"not a pickle")
    runtime = LocalModelRuntime(directory)
    try:
        with caplog.at_level(logging.WARNING, logger="domain.services.serving"):
            await ModelLoader(lambda: SqlUnitOfWork(db), {"local": runtime}).run(asyncio.Event())
    finally:
        runtime.close()

    others = sorted(m.name for m in models if m.runtime == "local" and m.name != broken.name)
    assert [name for name in loads if name != broken.name] == others
    assert f"model {broken.name} {broken.version} not loaded ahead" in caplog.text


async def test_the_app_loads_the_active_models_when_it_starts(
    db: AsyncEngine,
    model_definitions: list[ModelDefinition],
    settings: Settings,
    postgres_url: str,
    loads: list[str],
) -> None:
    models = await _registered(db, model_definitions)
    local = sorted(m.name for m in models if m.runtime == "local")
    app = build_app(settings, postgres_url)
    async with app.router.lifespan_context(app):
        deadline = asyncio.get_running_loop().time() + LOADS_WITHIN
        while sorted(loads) != local:  # no request made: the start loads them
            assert asyncio.get_running_loop().time() < deadline, f"loaded only {loads}"
            await asyncio.sleep(0.05)
