"""Storage construct: the KMS-encrypted, versioned, access-logged assets bucket and the
access-log bucket with its own lifecycle."""

from __future__ import annotations

import pytest

from tests.infra.synth import ENVIRONMENTS, WEB_ORIGIN, Json, key_ref, resources

PUBLIC_ACCESS_BLOCKED = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def buckets(template: Json) -> tuple[Json, Json]:
    found = resources(template, "AWS::S3::Bucket")
    assets = [b for logical_id, b in found.items() if "AssetsBucket" in logical_id]
    logs = [b for logical_id, b in found.items() if "AccessLogsBucket" in logical_id]
    assert len(found) == 2
    assert len(assets) == 1
    assert len(logs) == 1
    return assets[0], logs[0]


def rules(bucket: Json) -> dict[str, Json]:
    return {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_assets_bucket_is_private_kms_encrypted_and_tls_only(
    env: str, templates: dict[str, Json]
) -> None:
    assets, _ = buckets(templates[env])
    props = assets["Properties"]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": key_ref(templates[env]),
    }
    assert encryption["BucketKeyEnabled"] is True
    assert props["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCKED
    tls_only = [
        policy
        for policy in resources(templates[env], "AWS::S3::BucketPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_only) == 2  # both buckets refuse plain HTTP
    assert assets["DeletionPolicy"] == ("Retain" if env == "prod" else "Delete")


@pytest.mark.parametrize(("env", "old_versions_days"), [("dev", 7), ("prod", 30)])
def test_assets_bucket_lifecycle_versions_and_cors(
    env: str, old_versions_days: int, templates: dict[str, Json]
) -> None:
    assets, _ = buckets(templates[env])
    assert assets["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    by_id = rules(assets)
    assert by_id["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    pending = by_id["expire-unconfirmed-uploads"]
    assert pending["Prefix"] == "assets/"
    assert pending["TagFilters"] == [{"Key": "assay-status", "Value": "pending-upload"}]
    assert pending["ExpirationInDays"] == 2
    old = by_id["expire-old-versions"]
    assert old["NoncurrentVersionExpiration"] == {"NoncurrentDays": old_versions_days}
    assert old["ExpiredObjectDeleteMarker"] is True
    (cors,) = assets["Properties"]["CorsConfiguration"]["CorsRules"]
    assert cors["AllowedOrigins"] == [WEB_ORIGIN]
    assert set(cors["AllowedMethods"]) == {"PUT", "GET", "HEAD"}
    assert {h.lower() for h in cors["AllowedHeaders"]} == {
        "content-type",
        "content-length",
        "x-amz-tagging",
        "if-none-match",
    }
    assert cors["ExposedHeaders"] == ["ETag"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_assets_expire_at_the_services_retention_age(env: str, templates: dict[str, Json]) -> None:
    """The same 30 days as ASSAY_ASSET_RETENTION_DAYS' default."""
    assets, _ = buckets(templates[env])
    retention = rules(assets)["expire-assets-after-retention"]
    assert retention["Prefix"] == "assets/"
    assert retention["ExpirationInDays"] == 30
    assert retention["Status"] == "Enabled"


def test_no_retention_rule_when_assets_are_kept_forever(templates: dict[str, Json]) -> None:
    from assay_infra.storage import retention_rules  # on the path once synth is imported

    assert retention_rules(0) == []
    [rule] = retention_rules(7)
    assert rule.expiration is not None
    assert rule.expiration.to_days() == 7


@pytest.mark.parametrize(("env", "log_days"), [("dev", 30), ("prod", 365)])
def test_access_logs_go_to_a_log_bucket_with_its_own_lifecycle(
    env: str, log_days: int, templates: dict[str, Json]
) -> None:
    template = templates[env]
    assets, log_bucket = buckets(template)
    (log_bucket_id,) = [i for i, b in template["Resources"].items() if b is log_bucket]
    assert assets["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": log_bucket_id},
        "LogFilePrefix": "s3/assets/",
    }
    props = log_bucket["Properties"]
    # log delivery (ELB, S3 server access logs) can only write SSE-S3 objects
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert props["PublicAccessBlockConfiguration"] == PUBLIC_ACCESS_BLOCKED
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    by_id = rules(log_bucket)
    assert by_id["expire-access-logs"]["ExpirationInDays"] == log_days
    assert "NoncurrentVersionExpiration" in by_id["expire-old-versions"]
    (alb,) = resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
    assert attributes["access_logs.s3.enabled"] == "true"
    assert attributes["access_logs.s3.bucket"] == {"Ref": log_bucket_id}
    assert attributes["access_logs.s3.prefix"] == "alb"
