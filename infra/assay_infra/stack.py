"""The Assay stack: network, database, identity, storage, compute, edge protection, alarms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import (
    Annotations,
    CfnOutput,
    Duration,
    Fn,
    IgnoreMode,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from assay_infra.config import (
    CLOUDWATCH_AGENT_IMAGE,
    METRICS_NAMESPACE,
    DeployContext,
    EnvironmentConfig,
)
from assay_infra.monitoring import agent_config, prometheus_config

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_PORT = 8000
DB_PORT = 5432
ASSETS_PREFIX = "assets/"
PENDING_UPLOAD_TAG = ("assay-status", "pending-upload")
ADMIN_GROUP = "admin"

# Kept out of the Docker build context (on top of the repo's .dockerignore) so that the
# asset hash, and with it the image, only changes when the application changes.
ASSET_EXCLUDES = [
    ".git",
    ".venv",
    "infra",
    "tests",
    "docs",
    "bench",
    "**/__pycache__",
    "**/*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "node_modules",
    ".assay-data",
    "*.egg-info",
]

_READY_PROBE = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{APP_PORT}/readyz', timeout=4)"
)


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
        data_removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        retention = logs.RetentionDays.ONE_MONTH if retain else logs.RetentionDays.ONE_WEEK

        # ---------------------------------------------------------------- network
        # Public subnets hold only the ALB and the NAT gateways; tasks run in private
        # subnets with egress (Cognito JWKS, SageMaker, ECR, Secrets Manager); the
        # database sits in isolated subnets with no route out at all.
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
        app_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3)

        api_sg = ec2.SecurityGroup(
            self, "ApiSecurityGroup", vpc=self.vpc, description="Assay API tasks"
        )
        worker_sg = ec2.SecurityGroup(
            self, "WorkerSecurityGroup", vpc=self.vpc, description="Assay worker tasks"
        )
        migrate_sg = ec2.SecurityGroup(
            self, "MigrateSecurityGroup", vpc=self.vpc, description="Assay one-off migrate task"
        )
        db_sg = ec2.SecurityGroup(
            self,
            "DatabaseSecurityGroup",
            vpc=self.vpc,
            description="Assay Aurora cluster: PostgreSQL from Assay tasks only",
            allow_all_outbound=False,
        )

        # --------------------------------------------------------------- database
        engine = rds.DatabaseClusterEngine.aurora_postgres(
            version=rds.AuroraPostgresEngineVersion.VER_16_13
        )
        self.database = rds.DatabaseCluster(
            self,
            "Database",
            engine=engine,
            credentials=rds.Credentials.from_generated_secret("assay"),
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
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[db_sg],
            storage_encrypted=True,
            deletion_protection=config.db_deletion_protection,
            backup=rds.BackupProps(
                retention=Duration.days(config.db_backup_days), preferred_window="03:00-04:00"
            ),
            preferred_maintenance_window="sun:04:30-sun:05:30",
            copy_tags_to_snapshot=True,
            cloudwatch_logs_exports=["postgresql"],
            cloudwatch_logs_retention=retention,
            removal_policy=RemovalPolicy.SNAPSHOT if retain else RemovalPolicy.DESTROY,
        )
        # The rotation Lambda runs in the app subnets: it needs the Secrets Manager API
        # (through the NAT) and the database (allowed by add_rotation_single_user).
        self.database.add_rotation_single_user(
            automatically_after=Duration.days(30), vpc_subnets=app_subnets
        )
        for peer in (api_sg, worker_sg, migrate_sg):
            db_sg.add_ingress_rule(peer, ec2.Port.tcp(DB_PORT), f"PostgreSQL from {peer.node.id}")
        db_secret = self.database.secret
        assert db_secret is not None  # from_generated_secret always creates one

        # --------------------------------------------------------------- identity
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=config.self_sign_up,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            password_policy=cognito.PasswordPolicy(
                min_length=8,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=data_removal,
            deletion_protection=retain,
        )
        callback_urls = list(ctx.effective_callback_urls)
        self.user_pool_client = self.user_pool.add_client(
            "WebClient",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False),
                scopes=[
                    cognito.OAuthScope.OPENID,
                    cognito.OAuthScope.EMAIL,
                    cognito.OAuthScope.PROFILE,
                ],
                callback_urls=callback_urls,
                logout_urls=list(ctx.effective_logout_urls),
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
            enable_token_revocation=True,
            prevent_user_existence_errors=True,
        )
        cognito.CfnUserPoolGroup(
            self,
            "AdminGroup",
            user_pool_id=self.user_pool.user_pool_id,
            group_name=ADMIN_GROUP,
            description="Assay administrators (manage models, see every submission)",
            precedence=0,
        )
        if ctx.user_pool_domain_prefix:
            domain = self.user_pool.add_domain(
                "HostedUiDomain",
                cognito_domain=cognito.CognitoDomainOptions(
                    domain_prefix=ctx.user_pool_domain_prefix
                ),
            )
            CfnOutput(self, "UserPoolDomain", value=domain.base_url())

        # ---------------------------------------------------------------- storage
        self.bucket = s3.Bucket(
            self,
            "AssetsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            removal_policy=data_removal,
            auto_delete_objects=not retain,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                # The API tags an object `assay-status=pending-upload` when it hands out a
                # presigned PUT and removes the tag once the upload is confirmed, so
                # uploads that were never confirmed disappear after two days.
                s3.LifecycleRule(
                    id="expire-unconfirmed-uploads",
                    prefix=ASSETS_PREFIX,
                    tag_filters={PENDING_UPLOAD_TAG[0]: PENDING_UPLOAD_TAG[1]},
                    expiration=Duration.days(2),
                ),
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[
                        s3.HttpMethods.PUT,
                        s3.HttpMethods.GET,
                        s3.HttpMethods.HEAD,
                    ],
                    allowed_origins=[ctx.web_origin],
                    # if-none-match: the upload URL's signed conditional write (single use).
                    allowed_headers=[
                        "content-type",
                        "content-length",
                        "x-amz-tagging",
                        "if-none-match",
                    ],
                    exposed_headers=["ETag"],
                    max_age=3000,
                )
            ],
        )

        # ------------------------------------------------------------------ logs
        def log_group(construct_id: str) -> logs.LogGroup:
            return logs.LogGroup(
                self, construct_id, retention=retention, removal_policy=data_removal
            )

        api_logs = log_group("ApiLogs")
        worker_logs = log_group("WorkerLogs")
        migrate_logs = log_group("MigrateLogs")
        agent_logs = log_group("MetricsAgentLogs")
        prometheus_logs = log_group("PrometheusMetricsLogs")

        # ----------------------------------------------------------- IAM (tasks)
        worker_role = iam.Role(
            self,
            "WorkerTaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Assay worker tasks: assets bucket, SageMaker endpoints",
        )
        self._grant_app_permissions(worker_role)
        # The CloudWatch agent sidecar shares the API task role.
        api_role = iam.Role(
            self,
            "ApiTaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Assay API tasks: app permissions plus the metrics agent",
        )
        self._grant_app_permissions(api_role)
        prometheus_logs.grant_write(api_role)
        api_role.add_to_policy(
            iam.PolicyStatement(
                sid="PrometheusLogStreams",
                actions=["logs:DescribeLogStreams"],
                resources=[prometheus_logs.log_group_arn],
            )
        )
        api_role.add_to_policy(
            iam.PolicyStatement(
                sid="AssayMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],  # PutMetricData has no resource type; scoped by namespace
                conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
            )
        )
        migrate_role = iam.Role(
            self,
            "MigrateTaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Assay migrate task: database only (credentials injected by ECS)",
        )

        # ---------------------------------------------------------------- compute
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT),
            file="Dockerfile",
            exclude=ASSET_EXCLUDES,
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        runtime_platform = ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        )

        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", ctx.certificate_arn)
            if ctx.certificate_arn
            else None
        )
        if certificate is None:
            Annotations.of(self).add_warning_v2(
                "assay:no-certificate",
                "No certificateArn context: the load balancer serves plain HTTP on port 80. "
                "Pass -c certificateArn=arn:aws:acm:... for HTTPS (required for production).",
            )

        api_task = ecs.FargateTaskDefinition(
            self,
            "ApiTask",
            cpu=config.api_cpu,
            memory_limit_mib=config.api_memory_mib,
            task_role=api_role,
            runtime_platform=runtime_platform,
        )
        alb_sg = ec2.SecurityGroup(
            self, "LoadBalancerSecurityGroup", vpc=self.vpc, description="Assay public ALB"
        )
        alb = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=alb_sg,
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(120),
        )

        if ctx.domain_name:
            public_url = f"https://{ctx.domain_name}"
        else:
            scheme = "https" if certificate else "http"
            public_url = f"{scheme}://{alb.load_balancer_dns_name}"

        environment = {
            "ASSAY_ENVIRONMENT": "production",
            "ASSAY_HOST": "0.0.0.0",  # noqa: S104 - inside the task's own network namespace
            "ASSAY_PORT": str(APP_PORT),
            "ASSAY_WORKERS": "2",
            "ASSAY_PUBLIC_URL": public_url,
            "ASSAY_DB_SSL_MODE": "require",
            "ASSAY_COGNITO_REGION": self.region,
            "ASSAY_COGNITO_USER_POOL_ID": self.user_pool.user_pool_id,
            "ASSAY_COGNITO_APP_CLIENT_ID": self.user_pool_client.user_pool_client_id,
            "ASSAY_ADMIN_GROUP": ADMIN_GROUP,
            "ASSAY_S3_BUCKET": self.bucket.bucket_name,
            "ASSAY_S3_REGION": self.region,
            "ASSAY_SAGEMAKER_REGION": self.region,
            "ASSAY_GRAPHIQL": "false",
            "ASSAY_INTROSPECTION": "false",
            "ASSAY_LOG_FORMAT": "json",
            "ASSAY_LOG_LEVEL": "INFO",
            "ASSAY_MODEL_DIR": "/app/models",
            "ASSAY_DATA_DIR": "/var/lib/assay",
        }
        if ctx.sagemaker_endpoints:
            environment["ASSAY_SAGEMAKER_ENDPOINTS"] = ",".join(ctx.sagemaker_endpoints)
        secrets = {"ASSAY_DATABASE_SECRET": ecs.Secret.from_secrets_manager(db_secret)}

        api_task.add_container(
            "api",
            image=image,
            command=["assay", "serve"],
            environment=environment,
            secrets=secrets,
            port_mappings=[ecs.PortMapping(container_port=APP_PORT)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="api", log_group=api_logs),
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", _READY_PROBE],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
            stop_timeout=Duration.seconds(30),
            essential=True,
        )
        api_task.add_container(
            "metrics-agent",
            image=ecs.ContainerImage.from_registry(CLOUDWATCH_AGENT_IMAGE),
            essential=False,
            memory_reservation_mib=64,
            environment={
                "CW_CONFIG_CONTENT": self.to_json_string(
                    agent_config(
                        cluster_name=self.cluster.cluster_name,
                        log_group_name=prometheus_logs.log_group_name,
                    )
                ),
                "PROMETHEUS_CONFIG_CONTENT": prometheus_config(port=APP_PORT),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="metrics-agent", log_group=agent_logs),
        )
        self.api = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Api",
            cluster=self.cluster,
            task_definition=api_task,
            desired_count=config.api_min_tasks,
            load_balancer=alb,
            open_listener=True,
            certificate=certificate,
            protocol=(
                elbv2.ApplicationProtocol.HTTPS if certificate else elbv2.ApplicationProtocol.HTTP
            ),
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if certificate else None,
            redirect_http=certificate is not None,
            task_subnets=app_subnets,
            security_groups=[api_sg],
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(90),
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.api.target_group.configure_health_check(
            path="/healthz",
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        )
        self.api.target_group.set_attribute("deregistration_delay.timeout_seconds", "30")
        # Prometheus metrics are for the in-task agent only, never the internet.
        self.api.listener.add_action(
            "HideMetrics",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(["/metrics", "/metrics/*"])],
            action=elbv2.ListenerAction.fixed_response(
                404, content_type="text/plain", message_body="Not Found"
            ),
        )
        api_scaling = self.api.service.auto_scale_task_count(
            min_capacity=config.api_min_tasks, max_capacity=config.api_max_tasks
        )
        api_scaling.scale_on_cpu_utilization(
            "ApiCpuScaling",
            target_utilization_percent=config.cpu_target_percent,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

        worker_task = ecs.FargateTaskDefinition(
            self,
            "WorkerTask",
            cpu=config.worker_cpu,
            memory_limit_mib=config.worker_memory_mib,
            task_role=worker_role,
            runtime_platform=runtime_platform,
        )
        worker_task.add_container(
            "worker",
            image=image,
            command=["assay", "worker"],
            environment=environment,
            secrets=secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=worker_logs),
            stop_timeout=Duration.seconds(120),
            essential=True,
        )
        self.worker = ecs.FargateService(
            self,
            "Worker",
            cluster=self.cluster,
            task_definition=worker_task,
            desired_count=config.worker_min_tasks,
            vpc_subnets=app_subnets,
            security_groups=[worker_sg],
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        worker_scaling = self.worker.auto_scale_task_count(
            min_capacity=config.worker_min_tasks, max_capacity=config.worker_max_tasks
        )
        worker_scaling.scale_on_cpu_utilization(
            "WorkerCpuScaling",
            target_utilization_percent=config.cpu_target_percent,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

        self.migrate_task = ecs.FargateTaskDefinition(
            self,
            "MigrateTask",
            cpu=512,
            memory_limit_mib=1024,
            task_role=migrate_role,
            runtime_platform=runtime_platform,
        )
        self.migrate_task.add_container(
            "migrate",
            image=image,
            command=["assay", "migrate"],
            environment=environment,
            secrets=secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="migrate", log_group=migrate_logs),
            essential=True,
        )

        # ------------------------------------------------------------------- WAF
        self.web_acl = self._web_acl(config)
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=alb.load_balancer_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )

        # ---------------------------------------------------------------- alarms
        self.alarm_topic = sns.Topic(
            self, "AlarmTopic", display_name=f"Assay {config.name} alarms", enforce_ssl=True
        )
        if ctx.alarm_email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(ctx.alarm_email))
        self._alarms(config, alb)

        # --------------------------------------------------------------- outputs
        private_subnet_ids = Fn.join(
            ",", self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        )
        CfnOutput(self, "ApiUrl", value=public_url, description="Public URL of the API")
        CfnOutput(self, "LoadBalancerDns", value=alb.load_balancer_dns_name)
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.user_pool_client.user_pool_client_id)
        CfnOutput(self, "AssetsBucketName", value=self.bucket.bucket_name)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "ApiServiceName", value=self.api.service.service_name)
        CfnOutput(self, "WorkerServiceName", value=self.worker.service_name)
        CfnOutput(self, "DatabaseSecretArn", value=db_secret.secret_arn)
        CfnOutput(self, "DatabaseClusterId", value=self.database.cluster_identifier)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        CfnOutput(self, "ApiLogGroupName", value=api_logs.log_group_name)
        CfnOutput(self, "WorkerLogGroupName", value=worker_logs.log_group_name)
        CfnOutput(self, "MigrateLogGroupName", value=migrate_logs.log_group_name)
        CfnOutput(self, "PrivateSubnetIds", value=private_subnet_ids)
        CfnOutput(self, "MigrateSecurityGroupId", value=migrate_sg.security_group_id)
        CfnOutput(
            self,
            "MigrateTaskDefinitionArn",
            value=self.migrate_task.task_definition_arn,
            description="One-off `assay migrate` task; see MigrateRunTaskCommand",
        )
        CfnOutput(
            self,
            "MigrateRunTaskCommand",
            description="Run database migrations as a one-off Fargate task",
            value=Fn.join(
                "",
                [
                    "aws ecs run-task --launch-type FARGATE --cluster ",
                    self.cluster.cluster_name,
                    " --task-definition ",
                    self.migrate_task.task_definition_arn,
                    " --network-configuration 'awsvpcConfiguration={subnets=[",
                    private_subnet_ids,
                    "],securityGroups=[",
                    migrate_sg.security_group_id,
                    "],assignPublicIp=DISABLED}'",
                ],
            ),
        )

    # ------------------------------------------------------------------ helpers
    def _grant_app_permissions(self, role: iam.Role) -> None:
        """What the application itself needs: its assets prefix and its model endpoints."""
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssetObjects",
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    # presigned PUTs carry the pending-upload tag, confirmation removes it
                    "s3:PutObjectTagging",
                    "s3:DeleteObjectTagging",
                ],
                resources=[self.bucket.arn_for_objects(f"{ASSETS_PREFIX}*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssetListing", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]
            )
        )
        if self.context.sagemaker_endpoints:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="InvokeModels",
                    actions=["sagemaker:InvokeEndpoint"],
                    resources=[
                        # SageMaker stores endpoint names lower-case in ARNs
                        self.format_arn(
                            service="sagemaker", resource="endpoint", resource_name=name.lower()
                        )
                        for name in self.context.sagemaker_endpoints
                    ],
                )
            )

    def _web_acl(self, config: EnvironmentConfig) -> wafv2.CfnWebACL:
        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=metric,
                sampled_requests_enabled=True,
            )

        def managed(name: str, priority: int, count_only: tuple[str, ...] = ()) -> Any:
            return wafv2.CfnWebACL.RuleProperty(
                name=f"AWS-{name}",
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in count_only
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(f"assay-{config.name}-{name}"),
            )

        return wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(f"assay-{config.name}-web-acl"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=config.waf_rate_limit_per_5min,
                            aggregate_key_type="IP",
                            evaluation_window_sec=300,
                        )
                    ),
                    visibility_config=visibility(f"assay-{config.name}-rate-limit"),
                ),
                # GraphQL inference requests routinely exceed the common rule set's 8 KB
                # body limit: count those instead of blocking them.
                managed("AWSManagedRulesCommonRuleSet", 1, count_only=("SizeRestrictions_BODY",)),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
            ],
        )

    def _alarms(self, config: EnvironmentConfig, alb: elbv2.ApplicationLoadBalancer) -> None:
        action = cw_actions.SnsAction(self.alarm_topic)
        five_minutes = Duration.minutes(5)

        def wire(alarm: cloudwatch.Alarm) -> None:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

        error_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": alb.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five_minutes, statistic="Sum"
                ),
                "requests": alb.metrics.request_count(period=five_minutes, statistic="Sum"),
            },
            label="API 5xx rate (%)",
            period=five_minutes,
        )
        wire(
            error_rate.create_alarm(
                self,
                "Api5xxRateAlarm",
                alarm_description="More than 5% of API requests answered 5xx (2 of 3 x 5 min)",
                threshold=5,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        wire(
            alb.metrics.target_response_time(period=five_minutes, statistic="p95").create_alarm(
                self,
                "ApiLatencyP95Alarm",
                alarm_description="API p95 response time above 2 s (3 x 5 min)",
                threshold=2,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        wire(
            self.database.metric_cpu_utilization(period=five_minutes).create_alarm(
                self,
                "DatabaseCpuAlarm",
                alarm_description="Aurora CPU above 80% (3 x 5 min)",
                threshold=80,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            )
        )
        queue_age = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name="assay_queue_oldest_pending_age_seconds",
            dimensions_map={"Service": "api"},
            statistic="Maximum",
            period=five_minutes,
        )
        wire(
            queue_age.create_alarm(
                self,
                "QueueAgeAlarm",
                alarm_description=(
                    f"Oldest PENDING submission older than {config.queue_age_alarm_seconds} s"
                ),
                threshold=config.queue_age_alarm_seconds,
                evaluation_periods=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        dead_webhooks = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name="assay_webhook_deliveries",
            dimensions_map={"Service": "api", "status": "DEAD"},
            statistic="Maximum",
            period=five_minutes,
        )
        wire(
            dead_webhooks.create_alarm(
                self,
                "DeadWebhooksAlarm",
                alarm_description="Webhook deliveries gave up (status DEAD)",
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
