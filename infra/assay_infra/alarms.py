"""Eight alarms on an encrypted SNS topic: API errors and latency, database CPU, queue
age and dead webhooks, and the models' own (inference latency over 2 s, error rate over 5%,
drift), the last five from the app's metrics (see monitoring.py). The model alarms watch
every model and version at once through a Metrics Insights query: models are registered at
run time, so no alarm can name them when the stack is made."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from assay_infra.config import METRICS_NAMESPACE, DeployContext, EnvironmentConfig
from assay_infra.encryption import DataKey

FIVE_MINUTES = Duration.minutes(5)
ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        context: DeployContext,
        key: DataKey,
        alb: elbv2.ApplicationLoadBalancer,
        database: rds.DatabaseCluster,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"Assay {config.name} alarms",
            enforce_ssl=True,
            master_key=key.key,
        )
        if context.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(context.alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self._wire(
            self._error_rate(alb).create_alarm(
                self,
                "Api5xxRateAlarm",
                alarm_description="More than 5% of API requests answered 5xx (2 of 3 x 5 min)",
                threshold=5,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=ABOVE,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self._wire(
            alb.metrics.target_response_time(period=FIVE_MINUTES, statistic="p95").create_alarm(
                self,
                "ApiLatencyP95Alarm",
                alarm_description="API p95 response time above 2 s (3 x 5 min)",
                threshold=2,
                evaluation_periods=3,
                comparison_operator=ABOVE,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self._wire(
            database.metric_cpu_utilization(period=FIVE_MINUTES).create_alarm(
                self,
                "DatabaseCpuAlarm",
                alarm_description="Aurora CPU above 80% (3 x 5 min)",
                threshold=80,
                evaluation_periods=3,
                comparison_operator=ABOVE,
                treat_missing_data=cloudwatch.TreatMissingData.MISSING,
            )
        )
        self._wire(
            self._app_metric("assay_queue_oldest_pending_age_seconds").create_alarm(
                self,
                "QueueAgeAlarm",
                alarm_description=(
                    f"Oldest PENDING submission older than {config.queue_age_alarm_seconds} s"
                ),
                threshold=config.queue_age_alarm_seconds,
                evaluation_periods=2,
                comparison_operator=ABOVE,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        self._wire(
            self._app_metric("assay_webhook_deliveries", status="DEAD").create_alarm(
                self,
                "DeadWebhooksAlarm",
                alarm_description="Webhook deliveries gave up (status DEAD)",
                threshold=0,
                evaluation_periods=1,
                comparison_operator=ABOVE,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )

        self._model_alarms()

    def _model_alarms(self) -> None:
        for alarm_id, metric, statistic, threshold, description in MODEL_ALARMS:
            self._wire(
                model_metric(metric, statistic).create_alarm(
                    self,
                    alarm_id,
                    alarm_description=description,
                    threshold=threshold,
                    evaluation_periods=2,
                    comparison_operator=(
                        cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
                        if alarm_id == "ModelDriftAlarm"
                        else ABOVE
                    ),
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )

    def _wire(self, alarm: cloudwatch.Alarm) -> None:
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)

    @staticmethod
    def _error_rate(alb: elbv2.ApplicationLoadBalancer) -> cloudwatch.MathExpression:
        return cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": alb.metrics.http_code_target(
                    elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=FIVE_MINUTES, statistic="Sum"
                ),
                "requests": alb.metrics.request_count(period=FIVE_MINUTES, statistic="Sum"),
            },
            label="API 5xx rate (%)",
            period=FIVE_MINUTES,
        )

    @staticmethod
    def _app_metric(name: str, **dimensions: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"Service": "api", **dimensions},
            statistic="Maximum",
            period=FIVE_MINUTES,
        )


# (alarm id, metric, statistic over models, threshold, description): the seed's rules.
MODEL_ALARMS = (
    (
        "InferenceLatencyAlarm",
        "assay_model_latency_p95_seconds",
        "MAX",
        2.0,
        "A model's p95 inference latency (end to end) above 2 s (2 x 5 min)",
    ),
    (
        "ModelErrorRateAlarm",
        "assay_model_error_rate",
        "MAX",
        0.05,
        "A model's error rate above 5% (2 x 5 min)",
    ),
    (
        "ModelDriftAlarm",
        "assay_model_drift_status",
        "MAX",
        2.0,
        "A model's inputs or outputs drifted (status DRIFT, PSI >= 0.25; 2 x 5 min)",
    ),
)


def model_metric(name: str, statistic: str) -> cloudwatch.MathExpression:
    """`statistic` of a model metric over every model and version (Metrics Insights);
    latency only end to end."""
    where = " WHERE kind = 'end_to_end'" if name == "assay_model_latency_p95_seconds" else ""
    dimensions = "Service, model, version, kind" if where else "Service, model, version"
    return cloudwatch.MathExpression(
        expression=(
            f'SELECT {statistic}({name}) FROM SCHEMA("{METRICS_NAMESPACE}", {dimensions}){where}'  # noqa: S608 - a Metrics Insights query of constants
        ),
        using_metrics={},
        label=name,
        period=FIVE_MINUTES,
    )
