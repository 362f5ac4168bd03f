"""Both stacks are synthesized once per session and shared by every infrastructure test."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    from tests.infra.synth import synthesize  # needs Node.js: imported only when used

    return synthesize(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def assertions(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from aws_cdk.assertions import Template

    return {env: Template.from_json(template) for env, template in templates.items()}
