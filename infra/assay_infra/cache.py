"""ElastiCache for Valkey: the rate-limit store every API process shares (one budget per
caller across tasks), in the isolated subnets, TLS in transit and an auth token.

Only the API tasks may connect (the worker and migrate tasks never rate limit). The token
lives in Secrets Manager, encrypted with the data key; ECS injects it as
ASSAY_RATE_LIMIT_STORE_TOKEN and CloudFormation resolves it for the replication group.
"""

from __future__ import annotations

from aws_cdk import Fn, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from assay_infra.config import EnvironmentConfig
from assay_infra.encryption import DataKey
from assay_infra.network import Network

CACHE_PORT = 6379
CACHE_ENGINE = "valkey"
CACHE_ENGINE_VERSION = "8.0"


class Cache(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: Network,
        key: DataKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.auth_token = secretsmanager.Secret(
            self,
            "AuthToken",
            description=f"Assay {config.name}: the rate-limit cache's AUTH token",
            encryption_key=key.key,
            # ElastiCache takes 16-128 printable characters without @, " or /.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        subnets = elasticache.CfnSubnetGroup(
            self,
            "Subnets",
            description="Assay rate-limit cache: isolated subnets",
            subnet_ids=network.vpc.select_subnets(
                subnet_type=ec2.SubnetType.PRIVATE_ISOLATED
            ).subnet_ids,
        )
        replicas = config.cache_replicas
        self.group = elasticache.CfnReplicationGroup(
            self,
            "ReplicationGroup",
            replication_group_description=f"Assay {config.name} rate-limit budgets",
            engine=CACHE_ENGINE,
            engine_version=CACHE_ENGINE_VERSION,
            cache_node_type=config.cache_node_type,
            num_node_groups=1,
            replicas_per_node_group=replicas,
            automatic_failover_enabled=replicas > 0,
            multi_az_enabled=replicas > 0,
            port=CACHE_PORT,
            cache_subnet_group_name=subnets.ref,
            security_group_ids=[network.cache_sg.security_group_id],
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=self.auth_token.secret_value.unsafe_unwrap(),  # a dynamic reference
            at_rest_encryption_enabled=True,
            kms_key_id=key.key.key_arn,
            # Budgets refill on their own: a lost cache costs callers nothing but a full bucket.
            snapshot_retention_limit=config.cache_snapshot_days,
            auto_minor_version_upgrade=True,
            preferred_maintenance_window="sun:05:30-sun:06:30",
        )
        network.cache_sg.add_ingress_rule(
            network.api_sg, ec2.Port.tcp(CACHE_PORT), "Valkey from the Assay API tasks"
        )

    @property
    def url(self) -> str:
        """ASSAY_RATE_LIMIT_STORE: TLS (rediss://) to the primary endpoint."""
        return Fn.join(
            "",
            [
                "rediss://",
                self.group.attr_primary_end_point_address,
                ":",
                self.group.attr_primary_end_point_port,
                "/0",
            ],
        )
