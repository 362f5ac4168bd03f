"""The VPC, its flow log and the security groups of everything that runs in it.

Public subnets hold only the load balancer and the NAT gateways; tasks run in private
subnets with egress (Cognito JWKS, SageMaker, ECR, Secrets Manager); the database sits
in isolated subnets with no route out at all.
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from assay_infra.config import EnvironmentConfig
from assay_infra.encryption import DataKey

APP_SUBNETS = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)


class Network(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, key: DataKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
                ec2.SubnetConfiguration(
                    name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                ),
            ],
        )
        self.vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(key.log_group(self, "FlowLogs")),
        )

        def group(construct_id: str, description: str, outbound: bool = True) -> ec2.SecurityGroup:
            return ec2.SecurityGroup(
                self,
                construct_id,
                vpc=self.vpc,
                description=description,
                allow_all_outbound=outbound,
            )

        self.api_sg = group("ApiSecurityGroup", "Assay API tasks")
        self.worker_sg = group("WorkerSecurityGroup", "Assay worker tasks")
        self.migrate_sg = group("MigrateSecurityGroup", "Assay one-off migrate task")
        self.db_sg = group(
            "DatabaseSecurityGroup",
            "Assay Aurora cluster: PostgreSQL from Assay tasks only",
            outbound=False,
        )
        self.cache_sg = group(
            "CacheSecurityGroup",
            "Assay rate-limit cache: Valkey from the API tasks only",
            outbound=False,
        )
        self.alb_sg = group("LoadBalancerSecurityGroup", "Assay public ALB")
