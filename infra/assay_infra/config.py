"""Per-environment settings (what differs between dev and prod) and deploy-time context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DEFAULT_WEB_ORIGIN = "http://localhost:5173"
CLOUDWATCH_AGENT_IMAGE = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300062.0b1304"
METRICS_NAMESPACE = "Assay"


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between the dev and prod stacks."""

    name: str
    nat_gateways: int
    db_min_acu: float
    db_max_acu: float
    db_reader: bool
    db_backup_days: int
    db_deletion_protection: bool
    retain_data: bool
    api_cpu: int
    api_memory_mib: int
    api_min_tasks: int
    api_max_tasks: int
    worker_cpu: int
    worker_memory_mib: int
    worker_min_tasks: int
    worker_max_tasks: int
    log_retention_days: int
    self_sign_up: bool
    db_enhanced_monitoring: bool
    access_log_days: int
    noncurrent_version_days: int
    waf_rate_limit_per_5min: int = 2000
    cpu_target_percent: int = 60
    queue_age_alarm_seconds: int = 900
    # The same as the service's ASSAY_ASSET_RETENTION_DAYS (default 30): the bucket expires
    # what the retention sweep should have removed already (0: keep forever, no rule).
    asset_retention_days: int = 30
    # The rate-limit cache (ElastiCache for Valkey): replicas give failover across AZs.
    cache_node_type: str = "cache.t4g.micro"
    cache_replicas: int = 0
    cache_snapshot_days: int = 1


DEV = EnvironmentConfig(
    name="dev",
    nat_gateways=1,
    db_min_acu=0.5,
    db_max_acu=2,
    db_reader=False,
    db_backup_days=7,
    db_deletion_protection=False,
    retain_data=False,
    api_cpu=512,
    api_memory_mib=1024,
    api_min_tasks=1,
    api_max_tasks=2,
    worker_cpu=512,
    worker_memory_mib=1024,
    worker_min_tasks=1,
    worker_max_tasks=2,
    log_retention_days=7,
    self_sign_up=True,
    db_enhanced_monitoring=False,
    access_log_days=30,
    noncurrent_version_days=7,
)

PROD = EnvironmentConfig(
    name="prod",
    nat_gateways=2,
    db_min_acu=0.5,
    db_max_acu=16,
    db_reader=True,
    db_backup_days=30,
    db_deletion_protection=True,
    retain_data=True,
    api_cpu=1024,
    api_memory_mib=2048,
    api_min_tasks=2,
    api_max_tasks=10,
    worker_cpu=1024,
    worker_memory_mib=2048,
    worker_min_tasks=1,
    worker_max_tasks=6,
    log_retention_days=30,
    self_sign_up=False,
    db_enhanced_monitoring=True,
    access_log_days=365,
    noncurrent_version_days=30,
    cache_node_type="cache.t4g.small",
    cache_replicas=1,
)

ENVIRONMENTS: dict[str, EnvironmentConfig] = {"dev": DEV, "prod": PROD}


class _Node(Protocol):
    def try_get_context(self, key: str) -> object: ...


def _split(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _optional(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


@dataclass(frozen=True)
class DeployContext:
    """Deploy-time values read from CDK context (`-c key=value` or cdk.json)."""

    certificate_arn: str | None = None
    web_origin: str = DEFAULT_WEB_ORIGIN
    callback_urls: tuple[str, ...] = ()
    logout_urls: tuple[str, ...] = ()
    sagemaker_endpoints: tuple[str, ...] = ()
    domain_name: str | None = None
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None
    user_pool_domain_prefix: str | None = None
    alarm_email: str | None = None

    @property
    def effective_callback_urls(self) -> tuple[str, ...]:
        return self.callback_urls or (self.web_origin,)

    @property
    def effective_logout_urls(self) -> tuple[str, ...]:
        return self.logout_urls or (self.web_origin,)

    @property
    def zone_name(self) -> str | None:
        """The hosted zone's name: given, or the domain name's parent."""
        if self.hosted_zone_name or not self.domain_name:
            return self.hosted_zone_name
        return self.domain_name.partition(".")[2]

    @classmethod
    def from_node(cls, node: _Node, environment: str) -> DeployContext:
        """Read context; `<env>.<key>` (e.g. `prod.certificateArn`) wins over `<key>`."""

        def get(key: str) -> object:
            specific = node.try_get_context(f"{environment}.{key}")
            return specific if specific is not None else node.try_get_context(key)

        return cls(
            certificate_arn=_optional(get("certificateArn")),
            web_origin=(_optional(get("webOrigin")) or DEFAULT_WEB_ORIGIN).rstrip("/"),
            callback_urls=_split(get("callbackUrls")),
            logout_urls=_split(get("logoutUrls")),
            sagemaker_endpoints=_split(get("sagemakerEndpoints")),
            domain_name=_optional(get("domainName")),
            hosted_zone_id=_optional(get("hostedZoneId")),
            hosted_zone_name=_optional(get("hostedZoneName")),
            user_pool_domain_prefix=_optional(get("userPoolDomainPrefix")),
            alarm_email=_optional(get("alarmEmail")),
        )
