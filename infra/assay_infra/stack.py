"""The Assay stack: one environment, composed of its constructs, and its outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aspects, CfnOutput, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from assay_infra.alarms import Alarms
from assay_infra.cache import Cache
from assay_infra.checkov import CdkProvidedFunctions
from assay_infra.config import DeployContext, EnvironmentConfig
from assay_infra.dashboards import Dashboards
from assay_infra.database import Database
from assay_infra.edge import Edge
from assay_infra.encryption import DataKey
from assay_infra.identity import Identity
from assay_infra.network import Network
from assay_infra.service import Service
from assay_infra.storage import Storage


class AssayStack(Stack):
    """One complete Assay environment (dev or prod)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        context: DeployContext | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        ctx = context or DeployContext.from_node(self.node, config.name)
        self.context = ctx
        retain = config.retain_data
        self.key = DataKey(
            self,
            "DataKey",
            environment=config.name,
            retention=logs.RetentionDays.ONE_MONTH if retain else logs.RetentionDays.ONE_WEEK,
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        )
        self.network = Network(self, "Network", config=config, key=self.key)
        self.database = Database(
            self, "Database", config=config, network=self.network, key=self.key
        )
        self.cache = Cache(self, "Cache", config=config, network=self.network, key=self.key)
        self.identity = Identity(self, "Identity", config=config, context=ctx)
        self.storage = Storage(self, "Storage", config=config, context=ctx, key=self.key)
        self.edge = Edge(
            self,
            "Edge",
            config=config,
            context=ctx,
            network=self.network,
            storage=self.storage,
            key=self.key,
        )
        self.service = Service(
            self,
            "Service",
            config=config,
            context=ctx,
            key=self.key,
            network=self.network,
            database=self.database,
            cache=self.cache,
            identity=self.identity,
            storage=self.storage,
            edge=self.edge,
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            config=config,
            context=ctx,
            key=self.key,
            alb=self.edge.alb,
            database=self.database.cluster,
        )
        self.dashboards = Dashboards(
            self,
            "Dashboards",
            config=config,
            alb=self.edge.alb,
            database=self.database.cluster,
        )
        Aspects.of(self).add(CdkProvidedFunctions())
        self._outputs()

    def _outputs(self) -> None:
        service, network = self.service, self.network
        private_subnet_ids = Fn.join(
            ",",
            network.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids,
        )
        migrate_task_arn = service.migrate_task.task_definition_arn
        migrate_sg_id = network.migrate_sg.security_group_id
        outputs = {
            "ApiUrl": self.edge.public_url,
            "LoadBalancerDns": self.edge.alb.load_balancer_dns_name,
            "UserPoolId": self.identity.user_pool.user_pool_id,
            "UserPoolClientId": self.identity.client.user_pool_client_id,
            "AssetsBucketName": self.storage.bucket.bucket_name,
            "AccessLogsBucketName": self.storage.log_bucket.bucket_name,
            "ClusterName": service.cluster.cluster_name,
            "ApiServiceName": service.api.service_name,
            "WorkerServiceName": service.worker.service_name,
            "DatabaseSecretArn": self.database.secret.secret_arn,
            "DatabaseClusterId": self.database.cluster.cluster_identifier,
            "CacheReplicationGroupId": self.cache.group.ref,
            "DataKeyArn": self.key.key.key_arn,
            "AlarmTopicArn": self.alarms.topic.topic_arn,
            "ApiLogGroupName": service.logs["Api"].log_group_name,
            "WorkerLogGroupName": service.logs["Worker"].log_group_name,
            "MigrateLogGroupName": service.logs["Migrate"].log_group_name,
            "PrivateSubnetIds": private_subnet_ids,
            "MigrateSecurityGroupId": migrate_sg_id,
            # the one-off `assay migrate` task; see MigrateRunTaskCommand
            "MigrateTaskDefinitionArn": migrate_task_arn,
            "MigrateRunTaskCommand": Fn.join(
                "",
                [
                    "aws ecs run-task --launch-type FARGATE --cluster ",
                    service.cluster.cluster_name,
                    " --task-definition ",
                    migrate_task_arn,
                    " --network-configuration 'awsvpcConfiguration={subnets=[",
                    private_subnet_ids,
                    "],securityGroups=[",
                    migrate_sg_id,
                    "],assignPublicIp=DISABLED}'",
                ],
            ),
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
