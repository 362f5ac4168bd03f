"""The WAF web ACL in front of the load balancer: a per-IP rate limit and AWS rule sets."""

from __future__ import annotations

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from assay_infra.config import EnvironmentConfig


def web_acl(scope: Construct, config: EnvironmentConfig) -> wafv2.CfnWebACL:
    def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
        return wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True,
            metric_name=metric,
            sampled_requests_enabled=True,
        )

    def managed(
        name: str, priority: int, count_only: tuple[str, ...] = ()
    ) -> wafv2.CfnWebACL.RuleProperty:
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
        scope,
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
