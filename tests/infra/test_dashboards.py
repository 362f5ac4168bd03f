"""Dashboards construct: the application's and the models' (business metrics)."""

from __future__ import annotations

import json

import pytest

from tests.infra.synth import ENVIRONMENTS, Json, resources


def _body(dashboard: Json) -> str:
    """The dashboard body's text (CloudFormation joins it from parts and references)."""
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, str):
        return body
    parts = body["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else json.dumps(p) for p in parts)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_two_dashboards_show_the_application_and_the_models(
    env: str, templates: dict[str, Json]
) -> None:
    dashboards = resources(templates[env], "AWS::CloudWatch::Dashboard")
    by_name = {d["Properties"]["DashboardName"]: _body(d) for d in dashboards.values()}
    assert set(by_name) == {f"Assay-{env}-application", f"Assay-{env}-models"}
    application = by_name[f"Assay-{env}-application"]
    for metric in (
        "RequestCount",
        "HTTPCode_Target_5XX_Count",
        "TargetResponseTime",
        "CPUUtilization",
        "assay_queue_oldest_pending_age_seconds",
    ):
        assert metric in application, metric
    models = by_name[f"Assay-{env}-models"]
    for metric in (
        "assay_model_predictions_per_second",
        "assay_model_latency_p95_seconds",
        "assay_model_error_rate",
        "assay_model_drift_status",
        "assay_model_accuracy",
    ):
        assert metric in models, metric
    assert "SEARCH(" in models  # a line per model and version, whichever are registered
