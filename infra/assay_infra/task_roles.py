"""IAM roles of the ECS tasks: each gets what its process uses and nothing else."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from assay_infra.config import METRICS_NAMESPACE, DeployContext
from assay_infra.storage import Storage

ECS_TASKS = "ecs-tasks.amazonaws.com"


class TaskRoles(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        context: DeployContext,
        storage: Storage,
        metrics_logs: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.worker = iam.Role(
            self,
            "WorkerTaskRole",
            assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description="Assay worker tasks: assets bucket, SageMaker endpoints",
        )
        # The CloudWatch agent sidecar shares the API task role.
        self.api = iam.Role(
            self,
            "ApiTaskRole",
            assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description="Assay API tasks: app permissions plus the metrics agent",
        )
        self.migrate = iam.Role(
            self,
            "MigrateTaskRole",
            assumed_by=iam.ServicePrincipal(ECS_TASKS),
            description="Assay migrate task: database only (credentials injected by ECS)",
        )
        for role in (self.api, self.worker):
            storage.grant_app(role)
            self._grant_models(role, context)
        metrics_logs.grant_write(self.api)
        self.api.add_to_policy(
            iam.PolicyStatement(
                sid="PrometheusLogStreams",
                actions=["logs:DescribeLogStreams"],
                resources=[metrics_logs.log_group_arn],
            )
        )
        self.api.add_to_policy(
            iam.PolicyStatement(
                sid="AssayMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; scoped by namespace
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            )
        )

    def _grant_models(self, role: iam.Role, context: DeployContext) -> None:
        if not context.sagemaker_endpoints:
            return
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeModels",
                actions=["sagemaker:InvokeEndpoint"],
                resources=[
                    # SageMaker stores endpoint names lower-case in ARNs
                    stack.format_arn(
                        service="sagemaker", resource="endpoint", resource_name=name.lower()
                    )
                    for name in context.sagemaker_endpoints
                ],
            )
        )
