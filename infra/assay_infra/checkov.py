"""checkov suppressions, written into the template next to the resource they concern.

checkov reads `Metadata.checkov.skip` of a CloudFormation resource; each skip names the
check and says why it does not apply, so a reviewer can verify the reason in place.
Nothing is switched off globally.
"""

from __future__ import annotations

import re
from typing import Any

import jsii
from aws_cdk import CfnResource, IAspect
from constructs import IConstruct

# CDK's own custom-resource providers (`Custom::<Name>CustomResourceProvider/Handler`):
# here the one that empties the default security group and the one that empties
# buckets when a dev stack is deleted. The app defines no Lambda functions of its own.
CDK_PROVIDER = re.compile(r"Custom::\w+CustomResourceProvider")
CDK_FUNCTION_REASONS = {
    "CKV_AWS_115": "CDK-provided custom-resource handler: only CloudFormation invokes "
    "it, once per create/update/delete of its resource; no traffic for a limit to bound",
    "CKV_AWS_116": "CDK-provided custom-resource handler: it reports its outcome to "
    "CloudFormation, and a failure fails the deployment; a DLQ would keep nothing to act on",
    "CKV_AWS_117": "CDK-provided custom-resource handler: calls only AWS APIs (EC2 to "
    "empty the default security group, S3 to empty a bucket), nothing inside the VPC",
    "CKV_AWS_173": "CDK-provided custom-resource handler: it defines no environment "
    "variables at all, so there is nothing for a key to encrypt",
}


def skip(construct: IConstruct, checks: dict[str, str]) -> None:
    """Add checkov skips (check id -> reason) to the construct's CloudFormation resource."""
    resource = construct if isinstance(construct, CfnResource) else construct.node.default_child
    assert isinstance(resource, CfnResource), f"{construct.node.path} has no resource"
    existing: dict[str, Any] = resource.get_metadata("checkov") or {"skip": []}
    known = {entry["id"] for entry in existing["skip"]}
    added = [{"id": c, "comment": why} for c, why in checks.items() if c not in known]
    resource.add_metadata("checkov", {"skip": [*existing["skip"], *added]})


@jsii.implements(IAspect)
class CdkProvidedFunctions:
    """Justify, per function, the Lambda checks that do not apply to CDK's own handlers."""

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CfnResource) or node.cfn_resource_type != "AWS::Lambda::Function":
            return
        provider = node.node.scope
        if provider is not None and CDK_PROVIDER.fullmatch(provider.node.id):
            skip(node, CDK_FUNCTION_REASONS)
