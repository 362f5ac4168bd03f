"""Alarms construct: eight alarms, every one wired to the KMS-encrypted topic."""

from __future__ import annotations

import pytest

from tests.infra.synth import ENVIRONMENTS, Json, key_ref, one, only_id, resources, walk


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarms(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 8
    metric_names = {
        node["MetricName"]
        for node in walk(list(alarms.values()))
        if isinstance(node, dict)
        if "MetricName" in node
    }
    assert metric_names == {
        "HTTPCode_Target_5XX_Count",
        "RequestCount",
        "TargetResponseTime",
        "CPUUtilization",
        "assay_queue_oldest_pending_age_seconds",
        "assay_webhook_deliveries",
    }
    topic_id = only_id(template, "AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["Properties"]["OKActions"] == [{"Ref": topic_id}]
    subscriptions = resources(template, "AWS::SNS::Subscription")
    assert len(subscriptions) == (1 if env == "prod" else 0)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarm_topic_is_encrypted_and_tls_only(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    topic = one(template, "AWS::SNS::Topic")["Properties"]
    assert topic["KmsMasterKeyId"] == key_ref(template)
    policy = one(template, "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Statement"]
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_model_alarms_watch_every_model_for_the_seeds_rules(
    env: str, templates: dict[str, Json]
) -> None:
    alarms = resources(templates[env], "AWS::CloudWatch::Alarm")
    by_id = {name.split("Alarms", 1)[1]: a["Properties"] for name, a in alarms.items()}
    expected = {
        "InferenceLatencyAlarm": ("assay_model_latency_p95_seconds", 2, "kind = 'end_to_end'"),
        "ModelErrorRateAlarm": ("assay_model_error_rate", 0.05, "SCHEMA"),
        "ModelDriftAlarm": ("assay_model_drift_status", 2, "SCHEMA"),
    }
    for alarm_id, (metric, threshold, clause) in expected.items():
        found = next(p for name, p in by_id.items() if name.startswith(alarm_id))
        [query] = [m["Expression"] for m in found["Metrics"] if "Expression" in m]
        assert query.startswith(f'SELECT MAX({metric}) FROM SCHEMA("Assay"')  # noqa: S608 - a Metrics Insights query
        assert clause in query
        assert found["Threshold"] == threshold
