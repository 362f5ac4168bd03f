"""Service construct: the API and worker services, the migrate task, their task roles."""

from __future__ import annotations

import json

import pytest

from tests.infra.synth import (
    CONFIGS,
    ENVIRONMENTS,
    WEB_ORIGIN,
    Json,
    containers,
    key_ref,
    one,
    policy_documents,
    resources,
)

APP_CONTAINERS = {"api", "worker", "migrate"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_services_and_migrate_task(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    services = resources(template, "AWS::ECS::Service").values()
    assert len(services) == 2
    for service in services:
        network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
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
        "DataKeyArn",
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
        assert environment["ASSAY_CORS_ORIGINS"] == WEB_ORIGIN
        # The VPC's CIDR block: the load balancer's addresses lie in it.
        assert environment["ASSAY_TRUSTED_PROXIES"]["Fn::GetAtt"][1] == "CidrBlock"
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
        # The API alone rate limits, so it alone gets the cache's token (tests/infra/test_cache.py).
        store = {"ASSAY_RATE_LIMIT_STORE_TOKEN"} if name == "api" else set()
        assert set(secrets) == {"ASSAY_DATABASE_SECRET", *store}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_container_logs_to_an_encrypted_group(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    for name, container in containers(template).items():
        options = container["LogConfiguration"]["Options"]
        group = template["Resources"][options["awslogs-group"]["Ref"]]
        assert group["Properties"]["KmsKeyId"] == key_ref(template), name


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


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_task_role_permissions_are_scoped(env: str, templates: dict[str, Json]) -> None:
    template = templates[env]
    policies = {
        logical_id: document
        for logical_id, document in policy_documents(template)
        if "ApiTaskRole" in logical_id or "WorkerTaskRole" in logical_id
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
        encryption = statements["AssetEncryption"]
        assert set(encryption["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
        assert encryption["Resource"] == key_ref(template)
        assert "kms:ViaService" in encryption["Condition"]["StringEquals"]
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
        if "ApiTaskRole" in logical_id:
            assert metrics is not None
            assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Assay"}}
        else:
            assert metrics is None
