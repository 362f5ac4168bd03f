"""Encryption: one customer-managed key, rotated, used by every log group, and a key
policy that lets only this account's log groups and alarms use it on their own."""

from __future__ import annotations

import pytest

from tests.infra.synth import ENVIRONMENTS, Json, key_ref, one, resources


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_rotated_customer_managed_key(env: str, templates: dict[str, Json]) -> None:
    key = one(templates[env], "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == ("Retain" if env == "prod" else "Delete")
    statements = {s.get("Sid"): s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    logs = statements["CloudWatchLogsOfThisAccount"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
    alarms = statements["CloudWatchAlarmsToEncryptedTopic"]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


@pytest.mark.parametrize(("env", "days"), [("dev", 7), ("prod", 30)])
def test_every_log_group_is_encrypted_with_the_key_and_expires(
    env: str, days: int, templates: dict[str, Json]
) -> None:
    template = templates[env]
    groups = resources(template, "AWS::Logs::LogGroup")
    # api, worker, migrate, metrics agent, prometheus, postgresql, flow log, WAF
    assert len(groups) == 8
    for logical_id, group in groups.items():
        assert group["Properties"]["KmsKeyId"] == key_ref(template), logical_id
        assert group["Properties"]["RetentionInDays"] == days, logical_id
