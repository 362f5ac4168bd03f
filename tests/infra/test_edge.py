"""Edge construct: HTTPS only (TLS 1.2+ on 443, port 80 only redirects), the certificate
from context, DNS, and the WAF with its redacted log."""

from __future__ import annotations

import re

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from tests.infra.synth import (
    AZ_CONTEXT,
    CDK_JSON_CONTEXT,
    CERTIFICATE_ARN,
    CONFIGS,
    ENV,
    ENVIRONMENTS,
    AssayStack,
    DeployContext,
    Json,
    key_ref,
    one,
    only_id,
    resources,
)

# ELB policies that allow nothing older than TLS 1.2
TLS_12_OR_LATER = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]|TLS-1-2|FS-1-2)")


def listeners(template: Json) -> dict[int, Json]:
    found = resources(template, "AWS::ElasticLoadBalancingV2::Listener").values()
    return {listener["Properties"]["Port"]: listener["Properties"] for listener in found}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_https_only_listeners(env: str, templates: dict[str, Json]) -> None:
    by_port = listeners(templates[env])
    assert set(by_port) == {80, 443}
    https = by_port[443]
    assert https["Protocol"] == "HTTPS"
    assert https["Certificates"] == [{"CertificateArn": CERTIFICATE_ARN}]
    assert TLS_12_OR_LATER.match(https["SslPolicy"]), https["SslPolicy"]
    (forward,) = https["DefaultActions"]
    assert forward["Type"] == "forward"
    http = by_port[80]
    assert http["Protocol"] == "HTTP"
    # port 80 answers every request with a redirect and forwards nothing
    assert http["DefaultActions"] == [
        {
            "Type": "redirect",
            "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"},
        }
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_metrics_hidden_and_health_checked(env: str, assertions: dict[str, Template]) -> None:
    template = assertions[env]
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/healthz", "Port": 8000, "Protocol": "HTTP"},
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Actions": [Match.object_like({"Type": "fixed-response"})],
            "Conditions": [
                Match.object_like(
                    {
                        "Field": "path-pattern",
                        "PathPatternConfig": {"Values": ["/metrics", "/metrics/*"]},
                    }
                )
            ],
        },
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_load_balancer_hardening(env: str, templates: dict[str, Json]) -> None:
    alb = one(templates[env], "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["deletion_protection.enabled"] == str(env == "prod").lower()
    assert alb["Scheme"] == "internet-facing"
    outputs = templates[env]["Outputs"]
    assert outputs["ApiUrl"]["Value"]["Fn::Join"][1][0] == "https://"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_waf_protects_the_load_balancer(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    acl = one(template, "AWS::WAFv2::WebACL")["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True
    managed = {
        rule["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for rule in acl["Rules"]
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }
    assert managed == {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"}
    (rate,) = [rule for rule in acl["Rules"] if "RateBasedStatement" in rule["Statement"]]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 2000
    association = one(template, "AWS::WAFv2::WebACLAssociation")["Properties"]
    acl_id = only_id(template, "AWS::WAFv2::WebACL")
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    alb_id = only_id(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association["ResourceArn"] == {"Ref": alb_id}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_waf_logs_redact_credentials_into_an_encrypted_group(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    logging = one(template, "AWS::WAFv2::LoggingConfiguration")["Properties"]
    acl_id = only_id(template, "AWS::WAFv2::WebACL")
    assert logging["ResourceArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    redacted = {field["SingleHeader"]["Name"] for field in logging["RedactedFields"]}
    assert redacted == {"authorization", "cookie"}
    name = f"aws-waf-logs-assay-{env}"
    (destination,) = logging["LogDestinationConfigs"]
    assert name in str(destination)
    (group,) = [
        g
        for g in resources(template, "AWS::Logs::LogGroup").values()
        if g["Properties"].get("LogGroupName") == name
    ]
    assert group["Properties"]["KmsKeyId"] == key_ref(template)


def _stack(name: str, context: DeployContext, env: cdk.Environment | None = ENV) -> AssayStack:
    app = cdk.App(context={**CDK_JSON_CONTEXT, **AZ_CONTEXT})
    return AssayStack(app, name, config=CONFIGS["dev"], context=context, env=env)


def test_certificate_from_domain_and_hosted_zone() -> None:
    stack = _stack(
        "Assay-domain",
        DeployContext(domain_name="api.example.com", hosted_zone_id="Z0000000000EXAMPLE"),
    )
    template: Json = dict(Template.from_stack(stack).to_json())
    certificate = one(template, "AWS::CertificateManager::Certificate")["Properties"]
    assert certificate["DomainName"] == "api.example.com"
    assert certificate["ValidationMethod"] == "DNS"
    assert certificate["DomainValidationOptions"] == [
        {"DomainName": "api.example.com", "HostedZoneId": "Z0000000000EXAMPLE"}
    ]
    https = listeners(template)[443]
    cert_id = only_id(template, "AWS::CertificateManager::Certificate")
    assert https["Certificates"] == [{"CertificateArn": {"Ref": cert_id}}]
    record = one(template, "AWS::Route53::RecordSet")["Properties"]
    assert record["Name"] == "api.example.com."
    assert record["HostedZoneId"] == "Z0000000000EXAMPLE"
    assert record["Type"] == "A"
    assert template["Outputs"]["ApiUrl"]["Value"] == "https://api.example.com"


def test_no_certificate_no_stack() -> None:
    with pytest.raises(ValueError, match="HTTPS only: give the dev stack a certificate"):
        _stack("Assay-nocert", DeployContext())


def test_no_region_says_so() -> None:
    with pytest.raises(ValueError, match="access logs need the stack's region"):
        _stack("Assay-noregion", DeployContext(certificate_arn=CERTIFICATE_ARN), env=None)
