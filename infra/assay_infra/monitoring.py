"""CloudWatch agent configuration for the in-task Prometheus scrape of /metrics.

The agent runs as a non-essential sidecar in every API task, scrapes the app on
127.0.0.1 (tasks use awsvpc networking, so containers share localhost) and writes the
selected series as CloudWatch embedded-metric-format log events; CloudWatch turns them
into metrics in the `Assay` namespace with the dimensions declared here.
"""

from __future__ import annotations

from typing import Any

from assay_infra.config import METRICS_NAMESPACE

SERVICE_LABEL = "api"
JOB_NAME = "assay"

# Prometheus series shipped to CloudWatch, with the label sets that become dimensions.
SHIPPED_METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("assay_queue_oldest_pending_age_seconds", ("Service",)),
    ("assay_webhook_deliveries", ("Service", "status")),
    # Model monitoring (telemetry/metrics.py), per model and version.
    ("assay_model_predictions_per_second", ("Service", "model", "version")),
    ("assay_model_error_rate", ("Service", "model", "version")),
    ("assay_model_latency_p95_seconds", ("Service", "model", "version", "kind")),
    ("assay_model_drift_status", ("Service", "model", "version")),
    ("assay_model_accuracy", ("Service", "model", "version")),
)


def prometheus_config(*, port: int, interval_seconds: int = 60) -> str:
    """Prometheus scrape configuration (YAML) for the app in the same task."""
    return (
        "global:\n"
        f"  scrape_interval: {interval_seconds}s\n"
        "  scrape_timeout: 10s\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB_NAME}\n"
        "    metrics_path: /metrics\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
        "        labels:\n"
        f"          Service: {SERVICE_LABEL}\n"
    )


def agent_config(*, cluster_name: str, log_group_name: str) -> dict[str, Any]:
    """CloudWatch agent JSON configuration (passed as CW_CONFIG_CONTENT)."""
    return {
        "agent": {"debug": False},
        "logs": {
            "force_flush_interval": 15,
            "metrics_collected": {
                "prometheus": {
                    "cluster_name": cluster_name,
                    "log_group_name": log_group_name,
                    "prometheus_config_path": "env:PROMETHEUS_CONFIG_CONTENT",
                    "emf_processor": {
                        "metric_namespace": METRICS_NAMESPACE,
                        "metric_declaration": [
                            {
                                "source_labels": ["job"],
                                "label_matcher": f"^{JOB_NAME}$",
                                "dimensions": [list(dimensions)],
                                "metric_selectors": [f"^{name}$"],
                            }
                            for name, dimensions in SHIPPED_METRICS
                        ],
                    },
                }
            },
        },
    }
