"""Cache construct: ElastiCache for Valkey as the shared rate-limit store, TLS in transit with
an auth token from Secrets Manager, encrypted at rest with the data key, reachable only from
the API tasks, and handed to the API container alone."""

from __future__ import annotations

import pytest

from tests.infra.synth import (
    CONFIGS,
    ENVIRONMENTS,
    Json,
    containers,
    key_ref,
    one,
    only_id,
    resources,
)


def secret_id(template: Json, description_contains: str) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, secret in resources(template, "AWS::SecretsManager::Secret").items()
        if description_contains in secret["Properties"].get("Description", "")
    ]
    return logical_id


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_valkey_with_tls_an_auth_token_and_the_data_key(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    group = one(template, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert group["Engine"] == "valkey"
    assert group["TransitEncryptionEnabled"] is True
    assert group["TransitEncryptionMode"] == "required"
    assert group["AtRestEncryptionEnabled"] is True
    assert group["KmsKeyId"] == key_ref(template)
    token = secret_id(template, "AUTH token")
    assert group["AuthToken"] == {
        "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": token}, ":SecretString:::}}"]]
    }
    secret = template["Resources"][token]["Properties"]
    assert secret["KmsKeyId"] == key_ref(template)
    assert secret["GenerateSecretString"]["ExcludePunctuation"] is True
    assert group["CacheNodeType"] == CONFIGS[env].cache_node_type


@pytest.mark.parametrize(("env", "replicas"), [("dev", 0), ("prod", 1)])
def test_prod_fails_over_across_zones(env: str, replicas: int, templates: dict[str, Json]) -> None:
    group = one(templates[env], "AWS::ElastiCache::ReplicationGroup")["Properties"]
    assert group["ReplicasPerNodeGroup"] == replicas
    assert group["AutomaticFailoverEnabled"] is (replicas > 0)
    assert group["MultiAZEnabled"] is (replicas > 0)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cache_lives_in_the_isolated_subnets(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    subnets = one(template, "AWS::ElastiCache::SubnetGroup")["Properties"]["SubnetIds"]
    data = {
        logical_id
        for logical_id, subnet in resources(template, "AWS::EC2::Subnet").items()
        if {"Key": "aws-cdk:subnet-name", "Value": "data"} in subnet["Properties"]["Tags"]
    }
    assert {ref["Ref"] for ref in subnets} == data


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cache_reachable_only_from_the_api_tasks(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    group = one(template, "AWS::ElastiCache::ReplicationGroup")["Properties"]
    (sg_ref,) = group["SecurityGroupIds"]
    sg_id = sg_ref["Fn::GetAtt"][0]
    assert "CacheSecurityGroup" in sg_id
    sg = template["Resources"][sg_id]["Properties"]
    assert sg.get("SecurityGroupIngress") is None
    # allow_all_outbound=False: CDK's placeholder rule that matches no traffic
    assert [rule["CidrIp"] for rule in sg["SecurityGroupEgress"]] == ["255.255.255.255/32"]
    rules = [
        ingress["Properties"]
        for ingress in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if ingress["Properties"]["GroupId"] == {"Fn::GetAtt": [sg_id, "GroupId"]}
    ]
    assert len(rules) == 1
    (rule,) = rules
    assert rule["FromPort"] == rule["ToPort"] == group["Port"] == 6379
    assert "ApiSecurityGroup" in rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_the_api_container_gets_the_store_and_its_token(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    group_id = only_id(template, "AWS::ElastiCache::ReplicationGroup")
    token = secret_id(template, "AUTH token")
    for name, container in containers(template).items():
        environment = {item["Name"]: item["Value"] for item in container.get("Environment", [])}
        secrets = {item["Name"]: item["ValueFrom"] for item in container.get("Secrets", [])}
        if name != "api":
            assert "ASSAY_RATE_LIMIT_STORE" not in environment, name
            assert "ASSAY_RATE_LIMIT_STORE_TOKEN" not in secrets, name
            continue
        parts = environment["ASSAY_RATE_LIMIT_STORE"]["Fn::Join"][1]
        assert parts[0] == "rediss://"
        assert parts[1] == {"Fn::GetAtt": [group_id, "PrimaryEndPoint.Address"]}
        assert secrets["ASSAY_RATE_LIMIT_STORE_TOKEN"] == {"Ref": token}
