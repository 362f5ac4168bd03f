"""Telemetry every layer may import: Prometheus metrics."""
