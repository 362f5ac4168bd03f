"""The internet-facing edge: HTTPS-only load balancer, its certificate, DNS and WAF.

Port 443 terminates TLS 1.2+ (AWS's recommended policy, TLS 1.3 preferred); port 80 only
answers with a permanent redirect to 443. Bearer tokens never cross the internet in
clear text, and the WAF log redacts them.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack, Token
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from assay_infra.checkov import skip
from assay_infra.config import DeployContext, EnvironmentConfig
from assay_infra.encryption import DataKey
from assay_infra.firewall import web_acl
from assay_infra.network import Network
from assay_infra.storage import ALB_LOG_PREFIX, Storage

NO_CERTIFICATE = (
    "HTTPS only: give the {env} stack a certificate, either "
    "-c certificateArn=arn:aws:acm:... or -c domainName=api.example.com "
    "-c hostedZoneId=Z... (a DNS-validated certificate is then created in that zone)"
)

NO_REGION = (
    "Load balancer access logs need the stack's region: synthesize with a region "
    "(AWS_REGION=... or CDK_DEFAULT_REGION=..., which `cdk` sets from the AWS profile)"
)


class Edge(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        context: DeployContext,
        network: Network,
        storage: Storage,
        key: DataKey,
    ) -> None:
        super().__init__(scope, construct_id)
        zone = self._zone(context)
        certificate = self._certificate(config, context, zone)
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=network.vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=network.alb_sg,
            drop_invalid_header_fields=True,
            idle_timeout=Duration.seconds(120),
            deletion_protection=config.retain_data,
        )
        if Token.is_unresolved(Stack.of(self).region):
            raise ValueError(NO_REGION)  # the log bucket policy names the region's ELB account
        self.alb.log_access_logs(storage.log_bucket, prefix=ALB_LOG_PREFIX)
        self.listener = self.alb.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=True,
        )
        # Prometheus metrics are for the in-task agent only, never the internet.
        self.listener.add_action(
            "HideMetrics",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(["/metrics", "/metrics/*"])],
            action=elbv2.ListenerAction.fixed_response(
                404, content_type="text/plain", message_body="Not Found"
            ),
        )
        self.alb.add_redirect(source_port=80, target_port=443)
        skip(
            network.alb_sg,
            {
                "CKV_AWS_260": "port 80 is open only for the listener that answers every "
                "request with a 301 to https:443 (Redirect80To443); nothing is served on it"
            },
        )
        self.public_url = f"https://{context.domain_name or self.alb.load_balancer_dns_name}"
        if zone is not None:
            route53.ARecord(
                self,
                "ApiAlias",
                zone=zone,
                record_name=context.domain_name,
                target=route53.RecordTarget.from_alias(
                    route53_targets.LoadBalancerTarget(self.alb)
                ),
            )
        self.web_acl = web_acl(self, config)
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=self.alb.load_balancer_arn,
            web_acl_arn=self.web_acl.attr_arn,
        )
        self._waf_logging(config, key)

    def _zone(self, context: DeployContext) -> route53.IHostedZone | None:
        zone_name = context.zone_name
        if not (context.hosted_zone_id and context.domain_name and zone_name):
            return None
        return route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=context.hosted_zone_id, zone_name=zone_name
        )

    def _certificate(
        self, config: EnvironmentConfig, context: DeployContext, zone: route53.IHostedZone | None
    ) -> acm.ICertificate:
        if context.certificate_arn:
            return acm.Certificate.from_certificate_arn(
                self, "Certificate", context.certificate_arn
            )
        if zone is not None and context.domain_name:
            return acm.Certificate(
                self,
                "Certificate",
                domain_name=context.domain_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )
        raise ValueError(NO_CERTIFICATE.format(env=config.name))

    def _waf_logging(self, config: EnvironmentConfig, key: DataKey) -> None:
        # WAF only logs to log groups whose name starts with aws-waf-logs-.
        name = f"aws-waf-logs-assay-{config.name}"
        group = key.log_group(self, "WafLogs", name=name)
        logging = wafv2.CfnLoggingConfiguration(
            self,
            "WafLogging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[
                Stack.of(self).format_arn(
                    service="logs",
                    resource="log-group",
                    resource_name=name,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
            # Bearer tokens and cookies must not end up in a log.
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": header})
                for header in ("authorization", "cookie")
            ],
        )
        logging.node.add_dependency(group)
