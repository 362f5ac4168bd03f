"""Network construct: subnets by tier, a flow log to an encrypted log group, and the
security groups."""

from __future__ import annotations

import pytest

from tests.infra.synth import ENVIRONMENTS, Json, key_ref, one, only_id, resources


@pytest.mark.parametrize(("env", "nat_gateways"), [("dev", 1), ("prod", 2)])
def test_subnet_tiers_and_nat(env: str, nat_gateways: int, templates: dict[str, Json]) -> None:
    template = templates[env]
    subnets = resources(template, "AWS::EC2::Subnet")
    names = sorted(
        tag["Value"]
        for subnet in subnets.values()
        for tag in subnet["Properties"]["Tags"]
        if tag["Key"] == "aws-cdk:subnet-name"
    )
    assert names == ["app", "app", "data", "data", "public", "public"]
    assert len(resources(template, "AWS::EC2::NatGateway")) == nat_gateways
    public = [
        s
        for s in subnets.values()
        if {"Key": "aws-cdk:subnet-name", "Value": "public"} in s["Properties"]["Tags"]
    ]
    private = [s for s in subnets.values() if s not in public]
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in private)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_vpc_flow_log_to_an_encrypted_log_group(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    flow_log = one(template, "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["ResourceId"] == {"Ref": only_id(template, "AWS::EC2::VPC")}
    assert flow_log["TrafficType"] == "ALL"
    group_id = flow_log["LogGroupName"]["Ref"]
    assert template["Resources"][group_id]["Properties"]["KmsKeyId"] == key_ref(template)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_the_load_balancer_is_reachable_from_the_internet(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    open_rules = [
        (logical_id, rule)
        for logical_id, group in resources(template, "AWS::EC2::SecurityGroup").items()
        for rule in group["Properties"].get("SecurityGroupIngress", [])
        if rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0"
    ]
    assert {logical_id for logical_id, _ in open_rules} == {
        only_id_containing(template, "LoadBalancerSecurityGroup")
    }
    assert sorted(rule["FromPort"] for _, rule in open_rules) == [80, 443]
    standalone = resources(template, "AWS::EC2::SecurityGroupIngress").values()
    assert not [r for r in standalone if "CidrIp" in r["Properties"]]


def only_id_containing(template: Json, text: str) -> str:
    groups = resources(template, "AWS::EC2::SecurityGroup")
    found = [logical_id for logical_id in groups if text in logical_id]
    (logical_id,) = found
    return logical_id
