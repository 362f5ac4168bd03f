"""ECS Fargate: the API service behind the load balancer, the worker, the migrate task."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from assay_infra.cache import Cache
from assay_infra.config import CLOUDWATCH_AGENT_IMAGE, DeployContext, EnvironmentConfig
from assay_infra.containers import APP_PORT, READY_PROBE, app_environment, app_image
from assay_infra.database import Database
from assay_infra.edge import Edge
from assay_infra.encryption import DataKey
from assay_infra.identity import Identity
from assay_infra.monitoring import agent_config, prometheus_config
from assay_infra.network import APP_SUBNETS, Network
from assay_infra.storage import Storage
from assay_infra.task_roles import TaskRoles

RUNTIME = ecs.RuntimePlatform(
    cpu_architecture=ecs.CpuArchitecture.X86_64,
    operating_system_family=ecs.OperatingSystemFamily.LINUX,
)


class Service(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        context: DeployContext,
        key: DataKey,
        network: Network,
        database: Database,
        cache: Cache,
        identity: Identity,
        storage: Storage,
        edge: Edge,
    ) -> None:
        super().__init__(scope, construct_id)
        self.logs = {
            name: key.log_group(self, f"{name}Logs")
            for name in ("Api", "Worker", "Migrate", "MetricsAgent", "PrometheusMetrics")
        }
        self.roles = TaskRoles(
            self,
            "Roles",
            context=context,
            storage=storage,
            metrics_logs=self.logs["PrometheusMetrics"],
        )
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=network.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.image = app_image()
        stack = Stack.of(self)
        self.environment = app_environment(
            stack,
            context,
            edge.public_url,
            identity=identity,
            bucket=storage.bucket,
            proxies=network.vpc.vpc_cidr_block,
        )
        self.secrets = {"ASSAY_DATABASE_SECRET": ecs.Secret.from_secrets_manager(database.secret)}
        self.api = self._api(config, network, edge, cache)
        self.worker = self._worker(config, network)
        self.migrate_task = self._task("Migrate", 512, 1024, self.roles.migrate)
        self._app_container(self.migrate_task, "migrate", "migrate")

    def _task(self, name: str, cpu: int, memory: int, role: iam.IRole) -> ecs.FargateTaskDefinition:
        return ecs.FargateTaskDefinition(
            self,
            f"{name}Task",
            cpu=cpu,
            memory_limit_mib=memory,
            task_role=role,
            runtime_platform=RUNTIME,
        )

    def _app_container(
        self, task: ecs.FargateTaskDefinition, name: str, command: str, **options: Any
    ) -> ecs.ContainerDefinition:
        log_group: logs.ILogGroup = self.logs[name.capitalize()]
        return task.add_container(
            name,
            image=self.image,
            command=["assay", command],
            environment=self.environment,
            secrets=self.secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name, log_group=log_group),
            essential=True,
            **options,
        )

    def _api(
        self, config: EnvironmentConfig, network: Network, edge: Edge, cache: Cache
    ) -> ecs.FargateService:
        task = self._task("Api", config.api_cpu, config.api_memory_mib, self.roles.api)
        api = self._app_container(
            task,
            "api",
            "serve",
            port_mappings=[ecs.PortMapping(container_port=APP_PORT)],
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", READY_PROBE],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
            stop_timeout=Duration.seconds(30),
        )
        # One budget per caller across the API's processes and tasks (docs/serving.md).
        api.add_environment("ASSAY_RATE_LIMIT_STORE", cache.url)
        token = ecs.Secret.from_secrets_manager(cache.auth_token)
        api.add_secret("ASSAY_RATE_LIMIT_STORE_TOKEN", token)
        metrics_logs = self.logs["PrometheusMetrics"]
        task.add_container(
            "metrics-agent",
            image=ecs.ContainerImage.from_registry(CLOUDWATCH_AGENT_IMAGE),
            essential=False,
            memory_reservation_mib=64,
            environment={
                "CW_CONFIG_CONTENT": Stack.of(self).to_json_string(
                    agent_config(
                        cluster_name=self.cluster.cluster_name,
                        log_group_name=metrics_logs.log_group_name,
                    )
                ),
                "PROMETHEUS_CONFIG_CONTENT": prometheus_config(port=APP_PORT),
            },
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="metrics-agent", log_group=self.logs["MetricsAgent"]
            ),
        )
        service = self._service("Api", task, config.api_min_tasks, network.api_sg)
        edge.listener.add_targets(
            "Api",
            port=APP_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service],
            deregistration_delay=Duration.seconds(30),
            health_check=elbv2.HealthCheck(
                path="/healthz",
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        self._scale(service, config.api_min_tasks, config.api_max_tasks, config)
        return service

    def _worker(self, config: EnvironmentConfig, network: Network) -> ecs.FargateService:
        task = self._task("Worker", config.worker_cpu, config.worker_memory_mib, self.roles.worker)
        self._app_container(task, "worker", "worker", stop_timeout=Duration.seconds(120))
        service = self._service("Worker", task, config.worker_min_tasks, network.worker_sg)
        self._scale(service, config.worker_min_tasks, config.worker_max_tasks, config)
        return service

    def _service(
        self, name: str, task: ecs.FargateTaskDefinition, count: int, group: ec2.ISecurityGroup
    ) -> ecs.FargateService:
        return ecs.FargateService(
            self,
            name,
            cluster=self.cluster,
            task_definition=task,
            desired_count=count,
            vpc_subnets=APP_SUBNETS,
            security_groups=[group],
            assign_public_ip=False,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            health_check_grace_period=Duration.seconds(90) if name == "Api" else None,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )

    @staticmethod
    def _scale(service: ecs.FargateService, low: int, high: int, config: EnvironmentConfig) -> None:
        scaling = service.auto_scale_task_count(min_capacity=low, max_capacity=high)
        scaling.scale_on_cpu_utilization(
            "CpuScaling",
            target_utilization_percent=config.cpu_target_percent,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
