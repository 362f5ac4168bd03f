"""Aurora PostgreSQL Serverless v2 in the isolated subnets, its secret and its rotation."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from assay_infra.checkov import skip
from assay_infra.config import EnvironmentConfig
from assay_infra.encryption import DataKey
from assay_infra.network import APP_SUBNETS, Network

DB_PORT = 5432
DB_USER = "assay"


class Database(Construct):
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
        retain = config.retain_data
        identifier = f"assay-{config.name}"
        # Created here (not by RDS) so that it is encrypted with the data key and has the
        # environment's retention without CDK's LogRetention function, whose role may
        # change the retention of every log group in the account.
        self.log_group = key.log_group(
            self, "PostgresqlLogs", name=f"/aws/rds/cluster/{identifier}/postgresql"
        )
        self.cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            cluster_identifier=identifier,
            engine=rds.DatabaseClusterEngine.aurora_postgres(
                version=rds.AuroraPostgresEngineVersion.VER_16_13
            ),
            credentials=rds.Credentials.from_generated_secret(DB_USER, encryption_key=key.key),
            default_database_name="assay",
            port=DB_PORT,
            writer=rds.ClusterInstance.serverless_v2(
                "writer", auto_minor_version_upgrade=True, publicly_accessible=False
            ),
            readers=(
                [rds.ClusterInstance.serverless_v2("reader", scale_with_writer=True)]
                if config.db_reader
                else []
            ),
            serverless_v2_min_capacity=config.db_min_acu,
            serverless_v2_max_capacity=config.db_max_acu,
            parameters={"rds.force_ssl": "1"},
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[network.db_sg],
            storage_encrypted=True,
            storage_encryption_key=key.key,
            iam_authentication=True,
            monitoring_interval=(Duration.seconds(60) if config.db_enhanced_monitoring else None),
            deletion_protection=config.db_deletion_protection,
            backup=rds.BackupProps(
                retention=Duration.days(config.db_backup_days), preferred_window="03:00-04:00"
            ),
            preferred_maintenance_window="sun:04:30-sun:05:30",
            copy_tags_to_snapshot=True,
            cloudwatch_logs_exports=["postgresql"],
            removal_policy=RemovalPolicy.SNAPSHOT if retain else RemovalPolicy.DESTROY,
        )
        self.cluster.node.add_dependency(self.log_group)
        # The rotation Lambda runs in the app subnets: it needs the Secrets Manager API
        # (through the NAT) and the database (allowed by add_rotation_single_user).
        self.cluster.add_rotation_single_user(
            automatically_after=Duration.days(30), vpc_subnets=APP_SUBNETS
        )
        for peer in (network.api_sg, network.worker_sg, network.migrate_sg):
            network.db_sg.add_ingress_rule(
                peer, ec2.Port.tcp(DB_PORT), f"PostgreSQL from {peer.node.id}"
            )
        secret = self.cluster.secret
        assert secret is not None  # from_generated_secret always creates one
        self.secret: secretsmanager.ISecret = secret
        if not config.db_enhanced_monitoring:
            for instance in self._instances():
                skip(instance, {"CKV_AWS_118": NO_ENHANCED_MONITORING})

    def _instances(self) -> list[rds.CfnDBInstance]:
        return [c for c in self.cluster.node.find_all() if isinstance(c, rds.CfnDBInstance)]


NO_ENHANCED_MONITORING = (
    "dev stack: enhanced monitoring is on in prod only (EnvironmentConfig."
    "db_enhanced_monitoring); dev keeps the standard CloudWatch RDS metrics"
)
