"""Synthesize the CDK app (both environments) and check the security-relevant properties.

Synthesis runs the CDK's JavaScript core through jsii, so Node.js must be installed; it
does not need Docker (the container image is only staged as an asset) nor AWS access.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
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
from aws_cdk.assertions import Annotations, Match, Template

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
ACCOUNT = "123456789012"
REGION = "us-east-1"
CERTIFICATE_ARN = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000"
WEB_ORIGIN = "https://app.example.com"
ENVIRONMENTS = ("dev", "prod")
APP_CONTAINERS = {"api", "worker", "migrate"}

Json = dict[str, Any]
# The CDK CLI passes cdk.json's context (feature flags, defaults) to the app; so do we.
CDK_JSON_CONTEXT: Json = json.loads((INFRA_DIR / "cdk.json").read_text())["context"]


def _load_app_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("assay_cdk_app", INFRA_DIR / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


APP_MODULE = _load_app_module()

from assay_infra import ENVIRONMENTS as CONFIGS  # noqa: E402  (path set up by infra/app.py)
from assay_infra import AssayStack  # noqa: E402


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Json]:
    """Both stacks, synthesized once from the real entry point (infra/app.py)."""
    app = cdk.App(
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
        context={
            **CDK_JSON_CONTEXT,
            "certificateArn": CERTIFICATE_ARN,
            "webOrigin": WEB_ORIGIN,
            "prod.sagemakerEndpoints": "Sentiment-Classifier,toxicity",
            "prod.alarmEmail": "oncall@example.com",
            # what `cdk synth` would look up and cache in infra/cdk.context.json
            f"availability-zones:account={ACCOUNT}:region={REGION}": [
                f"{REGION}a",
                f"{REGION}b",
                f"{REGION}c",
            ],
        },
    )
    APP_MODULE.build_app(app, env=cdk.Environment(account=ACCOUNT, region=REGION))
    assembly = app.synth()
    return {env: assembly.get_stack_by_name(f"Assay-{env}").template for env in ENVIRONMENTS}


@pytest.fixture(scope="module")
def assertions(templates: dict[str, Json]) -> dict[str, Template]:
    return {env: Template.from_json(template) for env, template in templates.items()}


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


# ------------------------------------------------------------------------------ storage


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_assets_bucket_is_private_encrypted_and_tls_only(
    env: str, templates: dict[str, Json], assertions: dict[str, Template]
) -> None:
    template = assertions[env]
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    bucket = one(templates[env], "AWS::S3::Bucket")
    rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    multipart = rules["abort-incomplete-multipart-uploads"]
    assert multipart["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    pending = rules["expire-unconfirmed-uploads"]
    assert pending["Prefix"] == "assets/"
    assert pending["TagFilters"] == [{"Key": "assay-status", "Value": "pending-upload"}]
    assert pending["ExpirationInDays"] == 2
    (cors,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == [WEB_ORIGIN]
    assert set(cors["AllowedMethods"]) == {"PUT", "GET", "HEAD"}
    assert {h.lower() for h in cors["AllowedHeaders"]} == {
        "content-type",
        "content-length",
        "x-amz-tagging",
        "if-none-match",
    }
    assert cors["ExposedHeaders"] == ["ETag"]
    expected_policy = "Retain" if env == "prod" else "Delete"
    assert bucket["DeletionPolicy"] == expected_policy


# ----------------------------------------------------------------------------- database


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
    cluster = one(templates[env], "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert props["EngineVersion"].startswith("16.")
    assert props["StorageEncrypted"] is True
    assert props["DeletionProtection"] is protected
    assert props["BackupRetentionPeriod"] == retention
    scaling = props["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == CONFIGS[env].db_min_acu
    assert scaling["MaxCapacity"] == CONFIGS[env].db_max_acu
    assert cluster["DeletionPolicy"] == deletion_policy
    instances = resources(templates[env], "AWS::RDS::DBInstance").values()
    assert instances
    assert {i["Properties"]["DBInstanceClass"] for i in instances} == {"db.serverless"}
    assert all(i["Properties"]["PubliclyAccessible"] is False for i in instances)
    params = one(templates[env], "AWS::RDS::DBClusterParameterGroup")["Properties"]
    assert params["Parameters"]["rds.force_ssl"] == "1"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_database_secret_rotates(env: str, assertions: dict[str, Template]) -> None:
    assertions[env].resource_count_is("AWS::SecretsManager::RotationSchedule", 1)
    assertions[env].has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": Match.object_like(
                {"SecretStringTemplate": '{"username":"assay"}'}
            )
        },
    )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_database_reachable_only_from_task_security_groups(
    env: str, templates: dict[str, Json]
) -> None:
    template = templates[env]
    (cluster_id,) = resources(template, "AWS::RDS::DBCluster")
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
    matched = {group for group in task_groups if any(s.startswith(group) for s in sources)}
    assert matched == task_groups
    # the only other peer is the secret-rotation Lambda
    others = [s for s in sources if not any(s.startswith(group) for group in task_groups)]
    assert len(others) == 1
    assert "Rotation" in others[0]


# ----------------------------------------------------------------------------- identity


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cognito_user_pool(env: str, assertions: dict[str, Template]) -> None:
    template = assertions[env]
    template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "UsernameAttributes": ["email"],
            "MfaConfiguration": "OPTIONAL",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "Policies": {
                "PasswordPolicy": Match.object_like(
                    {
                        "MinimumLength": 8,
                        "RequireLowercase": True,
                        "RequireUppercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                    }
                )
            },
            "AccountRecoverySetting": {
                "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
            },
        },
    )
    template.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "GenerateSecret": False,
            "AllowedOAuthFlows": ["code"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "AllowedOAuthScopes": Match.array_with(["openid", "email", "profile"]),
            "CallbackURLs": [WEB_ORIGIN],
            "PreventUserExistenceErrors": "ENABLED",
            "RefreshTokenValidity": Match.any_value(),
        },
    )
    template.has_resource_properties("AWS::Cognito::UserPoolGroup", {"GroupName": "admin"})


# ------------------------------------------------------------------------------ compute


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_services_and_migrate_task(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    assert len(resources(template, "AWS::ECS::Service")) == 2
    assert len(resources(template, "AWS::ECS::TaskDefinition")) == 3
    by_name = containers(template)
    assert by_name["api"]["Command"] == ["assay", "serve"]
    assert by_name["worker"]["Command"] == ["assay", "worker"]
    assert by_name["migrate"]["Command"] == ["assay", "migrate"]
    assert "readyz" in " ".join(by_name["api"]["HealthCheck"]["Command"])
    cluster = one(template, "AWS::ECS::Cluster")
    assert {"Name": "containerInsights", "Value": "enabled"} in cluster["Properties"][
        "ClusterSettings"
    ]
    outputs = template["Outputs"]
    for name in (
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "AssetsBucketName",
        "MigrateTaskDefinitionArn",
        "MigrateRunTaskCommand",
        "ClusterName",
    ):
        assert name in outputs, name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_container_environment_is_production_grade(env: str, templates: dict[str, Json]) -> None:
    for name in APP_CONTAINERS:
        container = containers(templates[env])[name]
        environment = {item["Name"]: item["Value"] for item in container["Environment"]}
        assert environment["ASSAY_ENVIRONMENT"] == "production"
        assert environment["ASSAY_GRAPHIQL"] == "false"
        assert environment["ASSAY_INTROSPECTION"] == "false"
        assert environment["ASSAY_DB_SSL_MODE"] == "require"
        assert environment["ASSAY_LOG_FORMAT"] == "json"
        assert environment["ASSAY_PORT"] == "8000"
        for key in (
            "ASSAY_PUBLIC_URL",
            "ASSAY_COGNITO_REGION",
            "ASSAY_COGNITO_USER_POOL_ID",
            "ASSAY_COGNITO_APP_CLIENT_ID",
            "ASSAY_S3_BUCKET",
            "ASSAY_S3_REGION",
            "ASSAY_SAGEMAKER_REGION",
        ):
            assert key in environment, key
        assert not any("PASSWORD" in key or "DATABASE_URL" in key for key in environment)
        secrets = {item["Name"]: item["ValueFrom"] for item in container["Secrets"]}
        assert set(secrets) == {"ASSAY_DATABASE_SECRET"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_metrics_agent_sidecar(env: str, templates: dict[str, Json]) -> None:
    agent = containers(templates[env])["metrics-agent"]
    image = agent["Image"]
    assert image.startswith("public.ecr.aws/cloudwatch-agent/cloudwatch-agent:")
    assert not image.endswith(":latest")
    assert agent["Essential"] is False
    environment = {item["Name"]: item["Value"] for item in agent["Environment"]}
    assert "127.0.0.1:8000" in environment["PROMETHEUS_CONFIG_CONTENT"]
    agent_config = json.dumps(environment["CW_CONFIG_CONTENT"])
    assert '\\"metric_namespace\\":\\"Assay\\"' in agent_config
    assert "assay_queue_oldest_pending_age_seconds" in agent_config
    assert "assay_webhook_deliveries" in agent_config


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_autoscaling_bounds(env: str, templates: dict[str, Json]) -> None:
    config = CONFIGS[env]
    bounds = sorted(
        (t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"])
        for t in resources(templates[env], "AWS::ApplicationAutoScaling::ScalableTarget").values()
    )
    assert bounds == sorted(
        [
            (config.api_min_tasks, config.api_max_tasks),
            (config.worker_min_tasks, config.worker_max_tasks),
        ]
    )
    for policy in resources(templates[env], "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        target = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        assert target["TargetValue"] == 60
        assert (
            target["PredefinedMetricSpecification"]["PredefinedMetricType"]
            == "ECSServiceAverageCPUUtilization"
        )


# -------------------------------------------------------------------------------- edge


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_https_listener_and_http_redirect(env: str, assertions: dict[str, Template]) -> None:
    template = assertions[env]
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [
                {
                    "Type": "redirect",
                    "RedirectConfig": Match.object_like(
                        {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}
                    ),
                }
            ],
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": CERTIFICATE_ARN}]},
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup", {"HealthCheckPath": "/healthz"}
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Actions": [Match.object_like({"Type": "fixed-response"})],
            "Conditions": [Match.object_like({"Field": "path-pattern"})],
        },
    )


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
    assert "AWSManagedRulesCommonRuleSet" in managed
    (rate,) = [rule for rule in acl["Rules"] if "RateBasedStatement" in rule["Statement"]]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == 2000
    association = one(template, "AWS::WAFv2::WebACLAssociation")["Properties"]
    (acl_id,) = resources(template, "AWS::WAFv2::WebACL")
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    (alb_id,) = resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert association["ResourceArn"] == {"Ref": alb_id}


# -------------------------------------------------------------------------- monitoring


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_alarms(env: str, templates: dict[str, Json]) -> None:
    alarms = resources(templates[env], "AWS::CloudWatch::Alarm")
    assert len(alarms) == 5
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
    (topic_id,) = resources(templates[env], "AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    subscriptions = resources(templates[env], "AWS::SNS::Subscription")
    assert len(subscriptions) == (1 if env == "prod" else 0)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_log_retention(env: str, templates: dict[str, Json]) -> None:
    expected = 30 if env == "prod" else 7
    groups = resources(templates[env], "AWS::Logs::LogGroup").values()
    assert len(groups) >= 3
    assert {group["Properties"]["RetentionInDays"] for group in groups} == {expected}


# --------------------------------------------------------------------------------- IAM


def _policy_documents(template: Json) -> Iterator[tuple[str, Json]]:
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            yield logical_id, props["PolicyDocument"]
        elif resource["Type"] == "AWS::IAM::Role":
            for inline in props.get("Policies", []):
                yield logical_id, inline["PolicyDocument"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_wildcard_permissions(env: str, templates: dict[str, Json]) -> None:
    checked = 0
    for logical_id, document in _policy_documents(templates[env]):
        for statement in _as_list(document["Statement"]):
            checked += 1
            if statement["Effect"] != "Allow":
                continue
            actions = _as_list(statement.get("Action", []))
            assert "*" not in actions, f"{logical_id}: Action *"
            if "*" in _as_list(statement.get("Resource", [])):
                wildcards = [a for a in actions if isinstance(a, str) and a.endswith(":*")]
                assert not wildcards, f"{logical_id}: {wildcards} on Resource *"
    assert checked > 0


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_task_role_permissions_are_scoped(env: str, templates: dict[str, Json]) -> None:
    policies = {
        logical_id: document
        for logical_id, document in _policy_documents(templates[env])
        if logical_id.startswith(("ApiTaskRole", "WorkerTaskRole"))
    }
    assert len(policies) == 2
    for logical_id, document in policies.items():
        statements = {s.get("Sid"): s for s in document["Statement"]}
        objects = statements["AssetObjects"]
        assert set(objects["Action"]) <= {
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:PutObjectTagging",
            "s3:DeleteObjectTagging",
        }
        assert objects["Resource"]["Fn::Join"][1][-1] == "/assets/*"
        sagemaker = statements.get("InvokeModels")
        if env == "dev":
            assert sagemaker is None, logical_id
        else:
            assert sagemaker is not None
            assert sagemaker["Action"] == "sagemaker:InvokeEndpoint"
            rendered = json.dumps(sagemaker["Resource"])
            assert "endpoint/sentiment-classifier" in rendered
            assert "endpoint/toxicity" in rendered
        metrics = statements.get("AssayMetrics")
        if logical_id.startswith("ApiTaskRole"):
            assert metrics is not None
            assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Assay"}}
        else:
            assert metrics is None


# ------------------------------------------------------------------------------ lint


def test_templates_pass_cfn_lint(templates: dict[str, Json], tmp_path: Path) -> None:
    paths = []
    for env, template in templates.items():
        path = tmp_path / f"Assay-{env}.template.json"
        path.write_text(json.dumps(template, indent=1))
        paths.append(str(path))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            # the `cfn-lint` console script of this interpreter's environment
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            "--format",
            "parseable",
            "--ignore-checks",
            # W3005 (redundant DependsOn) is emitted by the CDK's own constructs (LogRetention,
            # auto-delete custom resource, ALB listener -> service); it is harmless.
            "W3005",
            # W3010 (hard-coded availability zones): an environment-specific CDK stack
            # resolves its AZs at synth time (cached in cdk.context.json) by design.
            "W3010",
            "--",
            *paths,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------- without context


def test_synth_without_certificate_serves_http_and_warns() -> None:
    app = cdk.App(context=CDK_JSON_CONTEXT)
    stack = AssayStack(
        app,
        "Assay-nocert",
        config=CONFIGS["dev"],
        env=cdk.Environment(account=ACCOUNT, region=REGION),
    )
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::ElasticLoadBalancingV2::Listener", 1)
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener", {"Port": 80, "Protocol": "HTTP"}
    )
    Annotations.from_stack(stack).has_warning(
        "/Assay-nocert", Match.string_like_regexp("No certificateArn")
    )
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "CorsConfiguration": {
                "CorsRules": [Match.object_like({"AllowedOrigins": ["http://localhost:5173"]})]
            }
        },
    )
