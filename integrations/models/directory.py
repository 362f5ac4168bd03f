"""Reads model manifests from a directory, building the default models into it on first run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from domain.models import JSONValue, ModelDefinition
from integrations.models.local import MANIFEST_FILE

RUNTIMES = ("local", "sagemaker")
_TEXT_FIELDS = ("name", "version", "description", "runtime")
_OBJECT_FIELDS = ("input_schema", "output_schema")


class ModelDirectory:
    """A ModelSource over `<path>/<name>/<version>/model.json` manifests.

    `build` fills an empty directory (default: train the bundled scikit-learn models). It runs in
    a temporary sibling directory that is renamed into place, so concurrent starters never see a
    half-built directory and the first complete build wins.
    """

    def __init__(self, path: Path, build: Callable[[Path], None] | None = None) -> None:
        self._path = path
        self._build = build

    def definitions(self) -> list[ModelDefinition]:
        if not self._manifests():
            self._build_once()
        return [read_manifest(manifest) for manifest in self._manifests()]

    def _manifests(self) -> list[Path]:
        return sorted(self._path.glob(f"*/*/{MANIFEST_FILE}"))

    def _build_once(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self._path.name}.", dir=self._path.parent))
        try:
            staging.chmod(0o755)  # mkdtemp's 0o700 would hide the models from operators
            (self._build or _train_defaults)(staging)
            self._install(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _install(self, staging: Path) -> None:
        try:
            # rename(2) is atomic and replaces only a missing or empty directory.
            os.rename(staging, self._path)
        except OSError as error:
            if not self._manifests():
                message = f"cannot install the default models at {self._path}: {error.strerror}"
                raise RuntimeError(message) from error
            # Another process installed its build first; keep theirs.


def _train_defaults(target: Path) -> None:
    # scikit-learn takes seconds to import; only a first run, with an empty directory, needs it.
    from integrations.models.defaults import build_defaults

    build_defaults(target)


def read_manifest(path: Path) -> ModelDefinition:
    """Parse and validate one manifest; raise ValueError naming the file when it is bad."""
    try:
        document: JSONValue = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable model manifest: {error}") from error
    try:
        return _definition(path, document)
    except (TypeError, SchemaError) as error:
        reason = error.message if isinstance(error, SchemaError) else str(error)
        raise ValueError(f"{path}: invalid model manifest: {reason}") from error


def _definition(path: Path, document: JSONValue) -> ModelDefinition:
    if not isinstance(document, dict):
        raise TypeError("expected a JSON object")
    for key in _TEXT_FIELDS:
        if not isinstance(document.get(key), str):
            raise TypeError(f"{key!r} must be a string")
    for key in (*_OBJECT_FIELDS, "runtime_config"):
        if not isinstance(document.get(key, {}), dict):
            raise TypeError(f"{key!r} must be an object")
    if document["runtime"] not in RUNTIMES:
        raise TypeError(f"'runtime' must be one of {', '.join(RUNTIMES)}")
    # The local runtime finds artifacts by name and version, so the folders must agree.
    if (document["name"], document["version"]) != (path.parent.parent.name, path.parent.name):
        raise TypeError("'name' and 'version' must match the manifest's folders")
    for key in _OBJECT_FIELDS:
        Draft202012Validator.check_schema(document[key])
    return ModelDefinition(
        name=document["name"],
        version=document["version"],
        description=document["description"],
        input_schema=document["input_schema"],
        output_schema=document["output_schema"],
        runtime=document["runtime"],
        runtime_config=document.get("runtime_config", {}),
    )
