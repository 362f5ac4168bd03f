"""Database construct: Aurora Serverless v2, KMS everywhere, IAM auth, rotation, no
route from anywhere but the task security groups."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from tests.infra.synth import CONFIGS, ENVIRONMENTS, Json, key_ref, one, only_id, resources


@pytest.mark.parametrize(
    ("env", "protected", "retention", "deletion_policy"),
    [("dev", False, 7, "Delete"), ("prod", True, 30, "Snapshot")],
)
def test_aurora_serverless_v2_cluster(
    env: str,
    protected: bool,
    retention: int,
    deletion_policy: str,
    templates: dict[str, Json],
) -> None:
    template = templates[env]
    cluster = one(template, "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert props["EngineVersion"].startswith("16.")
    assert props["StorageEncrypted"] is True
    assert props["KmsKeyId"] == key_ref(template)
    assert props["EnableIAMDatabaseAuthentication"] is True
    assert props["DeletionProtection"] is protected
    assert props["BackupRetentionPeriod"] == retention
    scaling = props["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == CONFIGS[env].db_min_acu
    assert scaling["MaxCapacity"] == CONFIGS[env].db_max_acu
    assert cluster["DeletionPolicy"] == deletion_policy
    instances = resources(template, "AWS::RDS::DBInstance").values()
    assert len(instances) == (2 if env == "prod" else 1)
    assert {i["Properties"]["DBInstanceClass"] for i in instances} == {"db.serverless"}
    assert all(i["Properties"]["PubliclyAccessible"] is False for i in instances)
    params = one(template, "AWS::RDS::DBClusterParameterGroup")["Properties"]
    assert params["Parameters"]["rds.force_ssl"] == "1"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_enhanced_monitoring_in_prod_only(env: str, templates: dict[str, Json]) -> None:
    instances = resources(templates[env], "AWS::RDS::DBInstance").values()
    roles = resources(templates[env], "AWS::IAM::Role")
    monitoring_roles = [r for logical_id, r in roles.items() if "MonitoringRole" in logical_id]
    for instance in instances:
        interval = instance["Properties"].get("MonitoringInterval")
        assert interval == (60 if env == "prod" else None)
    assert len(monitoring_roles) == (1 if env == "prod" else 0)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_postgres_logs_go_to_an_encrypted_log_group_without_log_retention_function(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    cluster_id = only_id(template, "AWS::RDS::DBCluster")
    cluster = template["Resources"][cluster_id]
    assert cluster["Properties"]["EnableCloudwatchLogsExports"] == ["postgresql"]
    identifier = cluster["Properties"]["DBClusterIdentifier"]
    assert identifier == f"assay-{env}"
    groups = {
        logical_id: group
        for logical_id, group in resources(template, "AWS::Logs::LogGroup").items()
        if group["Properties"].get("LogGroupName") == f"/aws/rds/cluster/{identifier}/postgresql"
    }
    ((group_id, group),) = groups.items()
    assert group["Properties"]["KmsKeyId"] == key_ref(template)
    assert group_id in cluster["DependsOn"]  # exists before RDS would create its own
    # CDK's LogRetention function (whose role may change any log group's retention) is gone
    assert resources(template, "Custom::LogRetention") == {}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_database_secret_is_encrypted_with_the_key_and_rotates(
    env: str, templates: dict[str, Json], assertions: dict[str, Template]
) -> None:
    assertions[env].resource_count_is("AWS::SecretsManager::RotationSchedule", 1)
    assertions[env].has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": Match.object_like(
                {"SecretStringTemplate": '{"username":"assay"}'}
            ),
            "KmsKeyId": key_ref(templates[env]),
        },
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_database_reachable_only_from_task_security_groups(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    cluster_id = only_id(template, "AWS::RDS::DBCluster")
    cluster = template["Resources"][cluster_id]
    assert cluster["Properties"]["Port"] == 5432
    (db_sg_ref,) = cluster["Properties"]["VpcSecurityGroupIds"]
    db_sg_id = db_sg_ref["Fn::GetAtt"][0]
    assert template["Resources"][db_sg_id]["Properties"].get("SecurityGroupIngress") is None
    sources = set()
    for ingress in resources(template, "AWS::EC2::SecurityGroupIngress").values():
        props = ingress["Properties"]
        if props["GroupId"] != {"Fn::GetAtt": [db_sg_id, "GroupId"]}:
            continue
        assert "CidrIp" not in props
        assert "CidrIpv6" not in props
        source = props["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        # the rotation construct refers to the cluster's port attribute (5432 at deploy time)
        allowed_ports = [5432, {"Fn::GetAtt": [cluster_id, "Endpoint.Port"]}]
        assert props["FromPort"] in allowed_ports
        assert props["ToPort"] == props["FromPort"]
        sources.add(source)
    task_groups = {"ApiSecurityGroup", "WorkerSecurityGroup", "MigrateSecurityGroup"}
    matched = {group for group in task_groups if any(group in s for s in sources)}
    assert matched == task_groups
    # the only other peer is the secret-rotation Lambda
    others = [s for s in sources if not any(group in s for group in task_groups)]
    assert len(others) == 1
    assert "Rotation" in others[0]
