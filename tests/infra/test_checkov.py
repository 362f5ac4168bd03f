"""checkov (CloudFormation framework) over both synthesized stacks: no failed check, and
every skip is written next to its resource, with a reason, and actually needed.

checkov runs from its own locked virtualenv (tests/tools.py), built on first use.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.infra.synth import ENVIRONMENTS, Json, resources
from tests.tools import checkov

Finding = tuple[str, str, str]  # template file, "Type.LogicalId", check id


@pytest.fixture(scope="module")
def report(templates: dict[str, Json], tmp_path_factory: pytest.TempPathFactory) -> Json:
    folder = tmp_path_factory.mktemp("checkov")
    for env, template in templates.items():
        (folder / f"Assay-{env}.template.json").write_text(json.dumps(template, indent=1))
    result = subprocess.run(
        [
            str(checkov()),
            *("--framework", "cloudformation", "--directory", str(folder)),
            *("--output", "json", "--compact"),
            # offline: no severities or guideline links from the vendor's API
            "--skip-download",
        ],
        # a .checkov.yaml in the working directory could switch checks off: run elsewhere
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout, result.stderr
    parsed: Any = json.loads(result.stdout)
    (scan,) = parsed if isinstance(parsed, list) else [parsed]
    assert scan["check_type"] == "cloudformation"
    return dict(scan)


def findings(report: Json, kind: str) -> list[Json]:
    return list(report["results"][f"{kind}_checks"])


def per_stack(report: Json, kind: str) -> Counter[str]:
    return Counter(Path(f["file_path"]).name.split(".")[0] for f in findings(report, kind))


def test_no_failed_check(report: Json) -> None:
    failed = [(f["check_id"], f["resource"], f["file_path"]) for f in findings(report, "failed")]
    assert failed == []
    passed = per_stack(report, "passed")
    print(  # the summary, per stack, for the record (pytest -s)
        {
            f"Assay-{env}": {
                kind: per_stack(report, kind)[f"Assay-{env}"]
                for kind in ("passed", "failed", "skipped")
            }
            for env in ENVIRONMENTS
        }
    )
    assert all(passed[f"Assay-{env}"] > 150 for env in ENVIRONMENTS), passed


def test_every_skip_has_a_reason(report: Json) -> None:
    skipped = findings(report, "skipped")
    assert skipped
    for finding in skipped:
        reason = finding["check_result"].get("suppress_comment") or ""
        assert len(reason) > 40, (finding["check_id"], finding["resource"], reason)


def _declared_skips(templates: dict[str, Json]) -> set[Finding]:
    return {
        (f"Assay-{env}", f"{resource['Type']}.{logical_id}", entry["id"])
        for env, template in templates.items()
        for logical_id, resource in template["Resources"].items()
        for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }


def test_every_declared_skip_is_needed(report: Json, templates: dict[str, Json]) -> None:
    used = {
        (Path(f["file_path"]).name.split(".")[0], f["resource"], f["check_id"])
        for f in findings(report, "skipped")
    }
    assert _declared_skips(templates) == used


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_lambda_skips_cover_cdk_providers_only(env: str, templates: dict[str, Json]) -> None:
    functions = resources(templates[env], "AWS::Lambda::Function")
    providers: tuple[str, ...] = ("CustomVpcRestrictDefaultSGCustomResourceProvider",)
    if env == "dev":  # buckets are emptied on stack deletion in dev only
        providers += ("CustomS3AutoDeleteObjectsCustomResourceProvider",)
    assert sorted(logical_id[:-8] for logical_id in functions) == sorted(
        f"{p}Handler" for p in providers
    )


def test_an_application_function_gets_no_skip() -> None:
    from assay_infra.checkov import CdkProvidedFunctions
    from aws_cdk import App, Aspects, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk.assertions import Template

    stack = Stack(App(), "AppFunction")
    lambda_.Function(
        stack,
        "Handler",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
    )
    Aspects.of(stack).add(CdkProvidedFunctions())
    template: Json = dict(Template.from_stack(stack).to_json())
    (function,) = resources(template, "AWS::Lambda::Function").values()
    assert "checkov" not in function.get("Metadata", {})
