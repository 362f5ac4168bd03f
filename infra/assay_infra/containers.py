"""The application containers: their image, environment, port and readiness probe."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_s3 as s3

from assay_infra.config import DeployContext
from assay_infra.identity import ADMIN_GROUP, Identity

APP_PORT = 8000
READY_PROBE = (
    "import urllib.request; "
    f"urllib.request.urlopen('http://127.0.0.1:{APP_PORT}/readyz', timeout=4)"
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Kept out of the Docker build context (on top of the repo's .dockerignore) so that the
# asset hash, and with it the image, only changes when the application changes.
ASSET_EXCLUDES = [
    *(".git", ".venv", "infra", "tests", "docs", "bench", "**/__pycache__", "**/*.pyc"),
    *(".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules", ".assay-data"),
    "*.egg-info",
]


def app_image() -> ecs.ContainerImage:
    """The repository's Dockerfile, built and pushed by `cdk deploy` (staged at synth)."""
    return ecs.ContainerImage.from_asset(
        str(REPO_ROOT),
        file="Dockerfile",
        exclude=ASSET_EXCLUDES,
        ignore_mode=IgnoreMode.DOCKER,
        platform=ecr_assets.Platform.LINUX_AMD64,
    )


def app_environment(
    stack: Stack,
    context: DeployContext,
    public_url: str,
    *,
    identity: Identity,
    bucket: s3.IBucket,
    proxies: str,
) -> dict[str, str]:
    """Production settings shared by the api, worker and migrate containers."""
    environment = {
        "ASSAY_ENVIRONMENT": "production",
        "ASSAY_HOST": "0.0.0.0",  # noqa: S104 - inside the task's own network namespace
        "ASSAY_PORT": str(APP_PORT),
        "ASSAY_WORKERS": "2",
        "ASSAY_PUBLIC_URL": public_url,
        "ASSAY_DB_SSL_MODE": "require",
        "ASSAY_COGNITO_REGION": stack.region,
        "ASSAY_COGNITO_USER_POOL_ID": identity.user_pool.user_pool_id,
        "ASSAY_COGNITO_APP_CLIENT_ID": identity.client.user_pool_client_id,
        "ASSAY_ADMIN_GROUP": ADMIN_GROUP,
        "ASSAY_S3_BUCKET": bucket.bucket_name,
        "ASSAY_S3_REGION": stack.region,
        "ASSAY_SAGEMAKER_REGION": stack.region,
        "ASSAY_GRAPHIQL": "false",
        "ASSAY_INTROSPECTION": "false",
        "ASSAY_LOG_FORMAT": "json",
        "ASSAY_LOG_LEVEL": "INFO",
        "ASSAY_MODEL_DIR": "/app/models",
        "ASSAY_DATA_DIR": "/var/lib/assay",
        # Production allows no browser origin unless told: the web app's, as the bucket does.
        "ASSAY_CORS_ORIGINS": context.web_origin,
        # The ALB's addresses: only its X-Forwarded-For names the client that rate limits key on.
        "ASSAY_TRUSTED_PROXIES": proxies,
    }
    if context.sagemaker_endpoints:
        environment["ASSAY_SAGEMAKER_ENDPOINTS"] = ",".join(context.sagemaker_endpoints)
    return environment
