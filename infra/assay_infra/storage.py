"""S3: the assets bucket (KMS, versioned, access-logged) and the access-log bucket."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from assay_infra.checkov import skip
from assay_infra.config import DeployContext, EnvironmentConfig
from assay_infra.encryption import DataKey

ASSETS_PREFIX = "assets/"
PENDING_UPLOAD_TAG = ("assay-status", "pending-upload")
ALB_LOG_PREFIX = "alb"
ASSETS_LOG_PREFIX = "s3/assets/"

LOG_BUCKET_SKIPS = {
    "CKV_AWS_18": "this is the access-log bucket: logging its own accesses into itself "
    "would log every log delivery, without end",
}


def retention_rules(days: int) -> list[s3.LifecycleRule]:
    """Assets expire at the service's retention age: a backstop to its own sweep, which
    marks them DELETED first (a versioned bucket keeps the bytes as a noncurrent version
    until expire-old-versions removes them)."""
    if days <= 0:
        return []
    return [
        s3.LifecycleRule(
            id="expire-assets-after-retention",
            prefix=ASSETS_PREFIX,
            expiration=Duration.days(days),
        )
    ]


class Storage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        context: DeployContext,
        key: DataKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = key
        retain = config.retain_data
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        old_versions = s3.LifecycleRule(
            id="expire-old-versions",
            noncurrent_version_expiration=Duration.days(config.noncurrent_version_days),
            expired_object_delete_marker=True,
        )
        # Load balancer and S3 access-log delivery write with SSE-S3 only (neither can
        # use a customer-managed key), so this one bucket is S3-encrypted.
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            removal_policy=removal,
            auto_delete_objects=not retain,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(config.access_log_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                old_versions,
            ],
        )
        skip(self.log_bucket, LOG_BUCKET_SKIPS)
        self.bucket = s3.Bucket(
            self,
            "AssetsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix=ASSETS_LOG_PREFIX,
            removal_policy=removal,
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
                *retention_rules(config.asset_retention_days),
                old_versions,
            ],
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
                    allowed_origins=[context.web_origin],
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

    def grant_app(self, role: iam.IRole) -> None:
        """What the application itself needs: its assets prefix, through the bucket's key."""
        role.add_to_principal_policy(
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
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AssetListing", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AssetEncryption",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[self.key.key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
