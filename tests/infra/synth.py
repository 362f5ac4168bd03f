"""Synthesize the CDK app for the infrastructure tests, and read the templates.

Synthesis runs the CDK's JavaScript core through jsii, so Node.js must be installed; it
does not need Docker (the container image is only staged as an asset) nor AWS access.
Importing this module skips the importing test module when Node.js is missing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

if shutil.which("node") is None:
    pytest.skip(
        "Node.js is required to synthesize the CDK app (jsii runtime)", allow_module_level=True
    )

import aws_cdk as cdk

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
ACCOUNT = "123456789012"
REGION = "us-east-1"
CERTIFICATE_ARN = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000"
WEB_ORIGIN = "https://app.example.com"
ENVIRONMENTS = ("dev", "prod")
ENV = cdk.Environment(account=ACCOUNT, region=REGION)

Json = dict[str, Any]
# The CDK CLI passes cdk.json's context (feature flags, defaults) to the app; so do we.
CDK_JSON_CONTEXT: Json = json.loads((INFRA_DIR / "cdk.json").read_text())["context"]
# what `cdk synth` would look up and cache in infra/cdk.context.json
AZ_CONTEXT: Json = {
    f"availability-zones:account={ACCOUNT}:region={REGION}": [
        f"{REGION}a",
        f"{REGION}b",
        f"{REGION}c",
    ]
}


def _load_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("assay_cdk_app", INFRA_DIR / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


APP_MODULE = _load_app_module()

from assay_infra import ENVIRONMENTS as CONFIGS  # noqa: E402  (path set up by infra/app.py)
from assay_infra import AssayStack, DeployContext  # noqa: E402

__all__ = ["CONFIGS", "AssayStack", "DeployContext"]


def synthesize(outdir: Path) -> dict[str, Json]:
    """Both stacks, synthesized from the real entry point (infra/app.py)."""
    app = cdk.App(
        outdir=str(outdir),
        context={
            **CDK_JSON_CONTEXT,
            **AZ_CONTEXT,
            "certificateArn": CERTIFICATE_ARN,
            "webOrigin": WEB_ORIGIN,
            "prod.sagemakerEndpoints": "Sentiment-Classifier,toxicity",
            "prod.alarmEmail": "oncall@example.com",
        },
    )
    APP_MODULE.build_app(app, env=ENV)
    assembly = app.synth()
    return {env: assembly.get_stack_by_name(f"Assay-{env}").template for env in ENVIRONMENTS}


def resources(template: Json, type_: str) -> dict[str, Json]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == type_
    }


def one(template: Json, type_: str) -> Json:
    found = list(resources(template, type_).values())
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0]


def only_id(template: Json, type_: str) -> str:
    (logical_id,) = resources(template, type_)
    return logical_id


def containers(template: Json) -> dict[str, Json]:
    return {
        container["Name"]: container
        for task in resources(template, "AWS::ECS::TaskDefinition").values()
        for container in task["Properties"]["ContainerDefinitions"]
    }


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def key_ref(template: Json) -> Json:
    """`Fn::GetAtt [key, Arn]` of the stack's one customer-managed KMS key."""
    return {"Fn::GetAtt": [only_id(template, "AWS::KMS::Key"), "Arn"]}


def policy_documents(template: Json) -> Iterator[tuple[str, Json]]:
    """Every IAM policy document in the template, with the logical id that holds it."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            yield logical_id, props["PolicyDocument"]
        elif resource["Type"] == "AWS::IAM::Role":
            for inline in props.get("Policies", []):
                yield logical_id, inline["PolicyDocument"]
