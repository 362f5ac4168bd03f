"""Typed settings, read once from the environment (prefix ASSAY_, plus DATABASE_URL)."""

from __future__ import annotations

import json
import os
import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, urlsplit

import platformdirs
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as UnparsableSetting

from graph.protection.rate_limit import parse_networks
from graph.transport.cors import parse_origins


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class DatabaseSslMode(StrEnum):
    DISABLE = "disable"
    REQUIRE = "require"
    VERIFY_FULL = "verify-full"


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("assay", appauthor=False))


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


class ModelBatching(BaseModel):
    """One model's batching on the synchronous path, overriding the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int | None = Field(default=None, ge=1, le=1000)
    max_delay_ms: float | None = Field(default=None, ge=0, le=1000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    public_url: str | None = None
    data_dir: Path = Field(default_factory=default_data_dir)

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "ASSAY_DATABASE_URL")
    )
    database_secret: str | None = None
    # A fixed pool: SQLAlchemy closes an overflow connection given back while pool_size sit
    # in the pool, so under more requests than connections (10 + 10 overflow, 32 callers)
    # ~20 connections a second were opened and closed, each a new backend: W2 at 32 callers
    # ran at half its rate at 8 (docs/performance.md, session 18).
    db_pool_size: int = Field(default=20, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_ssl_mode: DatabaseSslMode = DatabaseSslMode.DISABLE
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    # Together under 2 s: a request meets an outage with UNAVAILABLE, not a hang.
    db_connect_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    db_pool_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    # How long any statement waits for the server's answer: a frozen database answers
    # UNAVAILABLE within about the connect timeout plus this, in flight or not.
    db_command_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    cognito_region: str | None = None
    cognito_user_pool_id: str | None = None
    cognito_app_client_id: str | None = None
    admin_group: str = "admin"
    clock_skew_seconds: int = Field(default=30, ge=0, le=600)
    jwks_refresh_cooldown_seconds: float = Field(default=30.0, ge=0)
    max_token_bytes: int = Field(default=8192, ge=512)

    s3_bucket: str | None = None
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    max_asset_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    upload_url_ttl_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    # Assets older than this become DELETED and their bytes are removed; 0 keeps them forever.
    asset_retention_days: int = Field(default=30, ge=0, le=3650)
    download_url_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Model monitoring: per-minute statistics are kept this long (and windows may not reach
    # further back); a model that ships no reference profile gets one from its first N.
    stats_retention_days: int = Field(default=14, ge=1, le=3650)
    reference_predictions: int = Field(default=1000, ge=100, le=1_000_000)

    run_workers: bool = True
    # Load the active local models at start (in the background), not at their first call.
    preload_models: bool = True
    model_dir: Path | None = None
    run_inference_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    max_attempts: int = Field(default=3, ge=1, le=20)
    worker_concurrency: int = Field(default=2, ge=1, le=64)
    worker_batch_size: int = Field(default=1000, ge=1, le=10_000)
    worker_max_claim: int = Field(default=1000, ge=1, le=10_000)
    worker_lease_seconds: float = Field(default=60.0, ge=1)
    worker_poll_seconds: float = Field(default=0.2, gt=0, le=60)
    inference_threads: int = Field(default=2, ge=1, le=64)
    # A local model whose recent calls each took less runs on the event loop (0: never).
    inference_inline_ms: float = Field(default=1.0, ge=0, le=100)
    # runInference: concurrent calls of one model grouped into one predict call and one
    # group commit; 0 ms of delay takes what queued while the previous group ran.
    inference_max_batch_size: int = Field(default=32, ge=1, le=1000)
    inference_max_delay_ms: float = Field(default=0.0, ge=0, le=1000)
    inference_groups_in_flight: int = Field(default=2, ge=1, le=64)
    # batchInference of a local model, while a worker loop here idles: run before it is
    # stored (stored finished) when the model answers it within this (0: always queued).
    inference_batch_inline_ms: float = Field(default=100.0, ge=0, le=10_000)
    # Per model, by "name" or "name:version" (JSON): {"iris-species": {"max_batch_size": 64}}.
    inference_batching: dict[str, ModelBatching] = Field(default_factory=dict)
    sagemaker_region: str | None = None
    sagemaker_timeout_seconds: float = Field(default=10.0, gt=0)

    max_subscriptions_per_connection: int = Field(default=10, ge=1, le=1000)
    max_connections_per_user: int = Field(default=20, ge=1, le=1_000_000)
    # Events waiting per subscription; a reader that falls this far behind is closed (1013).
    # Room for a whole 1,000-input batch (PENDING, RUNNING and terminal of each) and more.
    subscription_queue_size: int = Field(default=4096, ge=1, le=100_000)
    max_subscription_message_bytes: int = Field(default=512 * 1024, ge=1024)
    max_websockets: int = Field(default=10_000, ge=1, le=1_000_000)
    # Sockets without connection_init yet, in all: a share of max_websockets, so they cannot
    # keep signed-in users out (when full, the oldest of them is closed for a new one).
    max_unauthenticated_websockets: int = Field(default=1_000, ge=1, le=1_000_000)
    max_unauthenticated_websockets_per_address: int = Field(default=50, ge=1, le=1_000_000)
    # uvicorn: header size, keep-alive, a deadline to read headers and body, open connections.
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    http_keep_alive_seconds: float = Field(default=5.0, gt=0, le=3600)
    http_read_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    http_limit_concurrency: int = Field(default=12_000, ge=1)

    webhook_allow_private_networks: bool = False
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    max_webhook_endpoints_per_user: int = Field(default=10, ge=1, le=1000)

    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_document_bytes: int = Field(default=20 * 1024, ge=1024)
    max_tokens: int = Field(default=2_000, ge=100)
    max_depth: int = Field(default=10, ge=2, le=100)
    max_aliases: int = Field(default=30, ge=0)
    max_directives: int = Field(default=50, ge=0)
    max_root_fields: int = Field(default=20, ge=1)
    max_query_cost: int = Field(default=10_000, ge=1)
    max_string_input_bytes: int = Field(default=2048, ge=64, le=1024 * 1024)
    max_json_input_bytes: int = Field(default=256 * 1024, ge=1024)
    batching: bool = False
    max_batch_operations: int = Field(default=10, ge=1, le=100)
    rate_limit_points_per_second: float = Field(default=200.0, gt=0)
    rate_limit_burst: float = Field(default=20_000.0, ge=1)
    inference_rate_per_second: float = Field(default=50.0, gt=0)
    inference_burst: float = Field(default=2_000.0, ge=1)
    # Where the callers' buckets live: `database` (the application's PostgreSQL, which every
    # process shares), `process` (each process its own), or a redis:// or rediss:// URL.
    rate_limit_store: str = "database"
    rate_limit_store_token: str | None = None  # the Redis AUTH token (from Secrets Manager)
    # The share of a bucket's burst a process may spend between two settles with the store.
    rate_limit_lease: float = Field(default=0.05, gt=0, le=0.5)
    trusted_proxies: str = ""
    # Unset: localhost and 127.0.0.1 on any port in development, no origin in production.
    cors_origins: str = ""

    ws_init_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    # How long a verified caller is signed in without a database read (0: never cached);
    # revocation (deactivation) drops it on every process at once through the event bus.
    sign_in_cache_seconds: float = Field(default=30.0, ge=0, le=300)

    tracing: bool = False
    tracing_resolver_threshold_ms: float = Field(default=20.0, ge=0)
    # The standard OpenTelemetry variable, read here with the rest; default as the spec's.
    otel_traces_exporter: str = Field(
        default="otlp", validation_alias=AliasChoices("OTEL_TRACES_EXPORTER")
    )
    graphiql: bool = True
    introspection: bool = True
    document_cache_size: int = Field(default=1000, ge=0, le=1_000_000)
    compiled_execution: bool = True
    compiled_plan_cache_size: int = Field(default=500, ge=0, le=100_000)
    only_persisted_operations: bool = False
    allow_admin_arbitrary_operations: bool = False
    persisted_queries_per_caller: int = Field(default=200, ge=1, le=100_000)
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.AUTO

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _retry_schedule(cls, value: str) -> str:
        parse_retry_schedule(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        parse_networks(value)  # comma-separated IP addresses or CIDR networks
        return value

    @field_validator("rate_limit_store")
    @classmethod
    def _budget_store(cls, value: str) -> str:
        if value in {"database", "process"}:
            return value
        url = urlsplit(value)
        if url.scheme not in {"redis", "rediss"} or not url.hostname:
            raise ValueError(
                "must be `database`, `process`, or a redis:// or rediss:// URL "
                "(e.g. rediss://my-cache.example.com:6379/0)"
            )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        parse_origins(value)  # comma-separated scheme://host[:port], or *
        return value

    @model_validator(mode="after")
    def _no_wildcard_origin(self) -> Settings:
        # Refused in development too: any page the developer opens could drive the local
        # server (and read GraphiQL's demo token) if every origin were reflected.
        if "*" in parse_origins(self.cors_origins):
            raise ValueError("ASSAY_CORS_ORIGINS: `*` is refused; list the origins")
        return self

    @model_validator(mode="after")
    def _budget_store_encrypted_in_production(self) -> Settings:
        if self.is_production and self.rate_limit_store.startswith("redis://"):
            raise ValueError(
                "ASSAY_RATE_LIMIT_STORE: production needs TLS in transit: use rediss://"
            )
        return self

    @model_validator(mode="after")
    def _document_fits_request(self) -> Settings:
        if self.max_document_bytes > self.max_request_bytes:
            raise ValueError(
                "ASSAY_MAX_DOCUMENT_BYTES must not exceed ASSAY_MAX_REQUEST_BYTES "
                f"({self.max_document_bytes} > {self.max_request_bytes})"
            )
        return self

    @model_validator(mode="after")
    def _cognito_all_or_nothing(self) -> Settings:
        values = {
            "ASSAY_COGNITO_REGION": self.cognito_region,
            "ASSAY_COGNITO_USER_POOL_ID": self.cognito_user_pool_id,
            "ASSAY_COGNITO_APP_CLIENT_ID": self.cognito_app_client_id,
        }
        missing = [name for name, value in values.items() if not value]
        if 0 < len(missing) < len(values):
            raise ValueError(f"Cognito needs all three settings; missing {', '.join(missing)}")
        return self

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def uses_cognito(self) -> bool:
        return self.cognito_user_pool_id is not None

    @property
    def rate_limit_store_label(self) -> str:
        """The store's name for logs: its kind and host, never a password."""
        if self.rate_limit_store in {"database", "process"}:
            return self.rate_limit_store
        url = urlsplit(self.rate_limit_store)
        return f"{url.scheme}://{url.hostname}:{url.port or 6379}"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """Seconds to wait after each failed webhook attempt; DEAD after the last."""
        return parse_retry_schedule(self.webhook_retry_schedule)

    def resolved_database_url(self) -> str | None:
        """DATABASE_URL, or one assembled from an RDS-style JSON secret, or None (embedded)."""
        if self.database_url:
            return self.database_url
        if self.database_secret:
            return database_url_from_secret(self.database_secret)
        return None


def parse_retry_schedule(text: str) -> tuple[float, ...]:
    """ "5,300,1800" -> (5.0, 300.0, 1800.0); each step a positive number of seconds."""
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        delays = ()
    if not delays or not all(0 < d < float("inf") for d in delays):
        raise ValueError(
            "ASSAY_WEBHOOK_RETRY_SCHEDULE must be comma-separated positive seconds, "
            f"e.g. 5,300,1800; got {text!r}"
        )
    return delays


def database_url_from_secret(secret_json: str) -> str:
    """Build a URL from the JSON that Secrets Manager holds for an RDS/Aurora cluster."""
    try:
        secret = json.loads(secret_json)
        user, password = quote(secret["username"], safe=""), quote(secret["password"], safe="")
        host, port = secret["host"], int(secret.get("port", 5432))
        dbname = secret.get("dbname", "postgres")
    except (ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            "ASSAY_DATABASE_SECRET: expected JSON with username, password, host, port, dbname"
        ) from exc
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}"


def load_settings() -> Settings:
    """Read and validate the settings; a SettingsError names every bad setting."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            env_name = name if name == "DATABASE_URL" else f"ASSAY_{name}" if name else "settings"
            problems.append(f"{env_name}: {error['msg']}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None
    except UnparsableSetting as exc:  # a JSON setting (ASSAY_INFERENCE_BATCHING) that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"ASSAY_{field.group(1).upper()}" if field else "a setting"
        raise SettingsError(f"invalid settings:\n  {name}: not valid JSON") from None


def export_for_workers(database_url: str, *, host: str, port: int, run_workers: bool) -> None:
    """Hand settings decided at start to uvicorn's worker processes, which read them anew."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["ASSAY_HOST"] = host
    os.environ["ASSAY_PORT"] = str(port)
    os.environ["ASSAY_RUN_WORKERS"] = "true" if run_workers else "false"
