"""AWS CDK infrastructure for the Assay API server."""

from assay_infra.config import ENVIRONMENTS, DeployContext, EnvironmentConfig
from assay_infra.stack import AssayStack

__all__ = ["ENVIRONMENTS", "AssayStack", "DeployContext", "EnvironmentConfig"]
