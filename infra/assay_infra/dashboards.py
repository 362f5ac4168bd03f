"""The two CloudWatch dashboards of the operations design (section 9.1): the application's
(requests, errors, latency, database, queue, webhooks) and the business metrics' (the
models: predictions, latency, error rate, drift, accuracy)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_rds as rds
from constructs import Construct

from assay_infra.config import METRICS_NAMESPACE, EnvironmentConfig

PERIOD = Duration.minutes(1)
_BY_MODEL = "Service, model, version"


def _search(metric: str, dimensions: str = _BY_MODEL, where: str = "") -> cloudwatch.MathExpression:
    """One line per model and version (a SEARCH over the metric's dimensions)."""
    return cloudwatch.MathExpression(
        expression=(
            f"SEARCH('{{{METRICS_NAMESPACE},{dimensions}}} MetricName=\"{metric}\"{where}', "
            "'Maximum', 60)"
        ),
        using_metrics={},
        label="",
        period=PERIOD,
    )


def _app_metric(name: str, **dimensions: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"Service": "api", **dimensions},
        statistic="Maximum",
        period=PERIOD,
    )


class Dashboards(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        alb: elbv2.ApplicationLoadBalancer,
        database: rds.DatabaseCluster,
    ) -> None:
        super().__init__(scope, construct_id)
        self.application = cloudwatch.Dashboard(
            self,
            "Application",
            dashboard_name=f"Assay-{config.name}-application",
            widgets=[
                [
                    cloudwatch.GraphWidget(
                        title="API requests and 5xx",
                        left=[alb.metrics.request_count(period=PERIOD, statistic="Sum")],
                        right=[
                            alb.metrics.http_code_target(
                                elbv2.HttpCodeTarget.TARGET_5XX_COUNT,
                                period=PERIOD,
                                statistic="Sum",
                            )
                        ],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="API response time p50 / p95 (s)",
                        left=[
                            alb.metrics.target_response_time(period=PERIOD, statistic=s)
                            for s in ("p50", "p95")
                        ],
                        width=12,
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Aurora CPU (%) and connections",
                        left=[database.metric_cpu_utilization(period=PERIOD)],
                        right=[database.metric_database_connections(period=PERIOD)],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Queue: oldest PENDING (s); dead webhooks",
                        left=[_app_metric("assay_queue_oldest_pending_age_seconds")],
                        right=[_app_metric("assay_webhook_deliveries", status="DEAD")],
                        width=12,
                    ),
                ],
            ],
        )
        self.business = cloudwatch.Dashboard(
            self,
            "Business",
            dashboard_name=f"Assay-{config.name}-models",
            widgets=[
                [
                    cloudwatch.GraphWidget(
                        title="Predictions per second, by model",
                        left=[_search("assay_model_predictions_per_second")],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title="Inference latency p95 end to end (s), by model",
                        left=[
                            _search(
                                "assay_model_latency_p95_seconds",
                                f"{_BY_MODEL}, kind",
                                ' kind="end_to_end"',
                            )
                        ],
                        width=12,
                    ),
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Error rate, by model",
                        left=[_search("assay_model_error_rate")],
                        width=8,
                    ),
                    cloudwatch.GraphWidget(
                        title="Drift (0 OK, 1 WARNING, 2 DRIFT), by model",
                        left=[_search("assay_model_drift_status")],
                        width=8,
                    ),
                    cloudwatch.GraphWidget(
                        title="Accuracy from feedback, by model",
                        left=[_search("assay_model_accuracy")],
                        width=8,
                    ),
                ],
            ],
        )
