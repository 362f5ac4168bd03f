#!/usr/bin/env python3
"""CDK entry point: one stack per environment, `Assay-dev` and `Assay-prod`.

    cd infra && AWS_REGION=eu-west-1 npx aws-cdk synth -c certificateArn=arn:aws:acm:...
    npx aws-cdk deploy Assay-prod -c certificateArn=arn:aws:acm:... -c webOrigin=https://app

Every stack needs a certificate (certificateArn, or domainName + hostedZoneId); see
docs/deploy.md for every context key.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aws_cdk as cdk

sys.path.insert(0, str(Path(__file__).resolve().parent))

from assay_infra import ENVIRONMENTS, AssayStack


def build_app(app: cdk.App | None = None, env: cdk.Environment | None = None) -> cdk.App:
    """Add both environment stacks to `app` (a new App by default) and return it.

    Without `env` the stacks target the CLI's current account and region (the CDK CLI
    sets CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION). A region is required: the load balancer's
    access logs name the region's ELB account.
    """
    app = app or cdk.App()
    env = env or cdk.Environment(
        account=os.getenv("CDK_DEFAULT_ACCOUNT"), region=os.getenv("CDK_DEFAULT_REGION")
    )
    for name, config in ENVIRONMENTS.items():
        stack = AssayStack(
            app,
            f"Assay-{name}",
            config=config,
            env=env,
            description=f"Assay GraphQL inference API ({name})",
            termination_protection=config.retain_data,
        )
        cdk.Tags.of(stack).add("project", "assay")
        cdk.Tags.of(stack).add("environment", name)
    return app


if __name__ == "__main__":
    build_app().synth()
