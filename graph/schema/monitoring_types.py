"""GraphQL types of model monitoring's reads: statistics, drift, quality, alert policies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from domain import drift as d
from domain.model_alerts import AlertKind, AlertPolicy, AlertState
from domain.services import monitoring as m
from graph.execution.declarations import reference_only
from graph.schema.nodes import AppInfo, described_enum

MONITORING = "model monitoring: computed from the rollups by the reference executor"

described_enum(
    d.DriftStatus,
    name="DriftStatus",
    description="How far a window's inputs or outputs moved from the model's reference, by "
    "PSI: below 0.1 OK, from 0.1 WARNING, from 0.25 DRIFT.",
    values={
        "OK": "PSI below 0.1: no meaningful shift.",
        "WARNING": "PSI from 0.1 to 0.25: a moderate shift.",
        "DRIFT": "PSI of 0.25 or more: the distribution shifted.",
        "INSUFFICIENT_DATA": "Fewer than 100 values in the window, or no reference yet.",
    },
)
described_enum(
    AlertKind,
    name="ModelAlertKind",
    description="What a model alert watches.",
    values={
        "LATENCY": "p95 end-to-end latency over the last 5 minutes above the policy's.",
        "ERROR_RATE": "Error rate over the last 5 minutes above the policy's.",
        "DRIFT": "Drift status over the last hour at the policy's or worse.",
        "QUALITY": "Accuracy (or R^2) over the last hour's feedback below the policy's.",
    },
)
described_enum(
    AlertState,
    name="ModelAlertState",
    description="Whether an alert began or ended.",
    values={
        "RAISED": "The value crossed its threshold.",
        "CLEARED": "The value is back within its threshold.",
    },
)


@strawberry.input(
    description="A time window; `from` defaults to `to` minus one hour, `to` to "
    "now. BAD_USER_INPUT on `window.from` when from >= to or the window reaches past retention."
)
class StatsWindow:
    from_: datetime | None = strawberry.field(
        name="from", default=None, description="Start (inclusive); default `to` minus one hour."
    )
    to: datetime | None = strawberry.field(default=None, description="End; default now.")


@reference_only(MONITORING)
@strawberry.type(description="Latency percentiles, from fixed buckets 25% apart.")
class LatencySummary:
    p50_ms: float | None = strawberry.field(description="Median, in ms; null with no prediction.")
    p95_ms: float | None = strawberry.field(description="95th percentile, in ms.")
    p99_ms: float | None = strawberry.field(description="99th percentile, in ms.")

    @classmethod
    def of(cls, latency: m.Latency) -> LatencySummary:
        return cls(p50_ms=latency.p50_ms, p95_ms=latency.p95_ms, p99_ms=latency.p99_ms)


@reference_only(MONITORING)
@strawberry.type(description="One bin of a distribution.")
class DistributionBin:
    label: str = strawberry.field(description='A class, or a numeric range like "[1.5, 2.0)".')
    count: int = strawberry.field(description="How many values fell in it.")
    share: float = strawberry.field(description="Its share of all values, 0 to 1.")

    @classmethod
    def many(cls, bins: tuple[d.Bin, ...]) -> list[DistributionBin]:
        return [cls(label=b.label, count=b.count, share=b.share) for b in bins]


@reference_only(MONITORING)
@strawberry.type(description="One bucket of a model's statistics over time.")
class ModelStatsPoint:
    at: datetime = strawberry.field(description="Start of the bucket.")
    predictions: int = strawberry.field(description="Predictions recorded in it.")
    failures: int = strawberry.field(description="Failed attempts recorded in it.")
    model_latency: LatencySummary = strawberry.field(description="Time inside the model.")


@reference_only(MONITORING)
@strawberry.type(description="A model version's traffic and latency over a window.")
class ModelStats:
    from_: datetime = strawberry.field(name="from", description="Start of the window.")
    to: datetime = strawberry.field(description="End of the window.")
    predictions: int = strawberry.field(description="Predictions recorded in the window.")
    failures: int = strawberry.field(description="Failed attempts recorded in the window.")
    error_rate: float = strawberry.field(
        description="failures / (predictions + failures); 0 when none."
    )
    throughput_per_second: float = strawberry.field(
        description="Predictions per second over the window."
    )
    model_latency: LatencySummary = strawberry.field(description="Time inside the model.")
    end_to_end_latency: LatencySummary = strawberry.field(
        description="From the request accepted to its result recorded."
    )
    output_distribution: list[DistributionBin] = strawberry.field(
        description="The predictions by class, or in value bins."
    )
    stats: strawberry.Private[m.ModelStats]

    @classmethod
    def of(cls, stats: m.ModelStats) -> ModelStats:
        return cls(
            from_=stats.window.start,
            to=stats.window.end,
            predictions=stats.total.predictions,
            failures=stats.total.failures,
            error_rate=stats.error_rate,
            throughput_per_second=stats.throughput_per_second,
            model_latency=LatencySummary.of(stats.model_latency),
            end_to_end_latency=LatencySummary.of(stats.end_to_end_latency),
            output_distribution=DistributionBin.many(stats.output_distribution),
            stats=stats,
        )

    @strawberry.field(
        description="The window in buckets aligned on multiples of `bucketSeconds` since the "
        "epoch; BAD_USER_INPUT outside 60..86400 or beyond 1,440 points."
    )
    async def series(
        self,
        info: AppInfo,
        bucket_seconds: Annotated[
            int | None,
            strawberry.argument(description="Bucket length in seconds, 60 to 86400 (null: 60)."),
        ] = 60,
    ) -> list[ModelStatsPoint]:
        bucket = 60 if bucket_seconds is None else bucket_seconds
        points = await m.stats_series(info.context.uow(), self.stats, bucket)
        return [
            ModelStatsPoint(
                at=p.at,
                predictions=p.predictions,
                failures=p.failures,
                model_latency=LatencySummary.of(p.model_latency),
            )
            for p in points
        ]


@reference_only(MONITORING)
@strawberry.type(description="One feature's (or the output's) drift against the reference.")
class FeatureDrift:
    feature: str = strawberry.field(
        description='An input property, or "prediction" for the output.'
    )
    psi: float | None = strawberry.field(
        description="Population stability index against the reference; null without data."
    )
    ks: float | None = strawberry.field(
        description="Kolmogorov-Smirnov statistic on the bins (numeric features only)."
    )
    status: d.DriftStatus = strawberry.field(description="By PSI; see DriftStatus.")
    current: list[DistributionBin] = strawberry.field(description="The window's bins.")
    reference: list[DistributionBin] = strawberry.field(
        description="The reference's bins; empty until the model has a reference."
    )

    @classmethod
    def of(cls, found: d.FeatureDrift) -> FeatureDrift:
        return cls(
            feature=found.feature,
            psi=found.psi,
            ks=found.ks,
            status=found.status,
            current=DistributionBin.many(found.current),
            reference=DistributionBin.many(found.reference),
        )


@reference_only(MONITORING)
@strawberry.type(description="A model version's input and output drift over a window.")
class ModelDrift:
    from_: datetime = strawberry.field(name="from", description="Start of the window.")
    to: datetime = strawberry.field(description="End of the window.")
    status: d.DriftStatus = strawberry.field(description="The worst feature's status.")
    drift_share: float = strawberry.field(description="Share of input features in DRIFT.")
    features: list[FeatureDrift] = strawberry.field(description="Per input feature.")
    output: FeatureDrift = strawberry.field(description="The predictions.")

    @classmethod
    def of(cls, found: m.ModelDrift) -> ModelDrift:
        return cls(
            from_=found.window.start,
            to=found.window.end,
            status=found.status,
            drift_share=found.drift_share,
            features=[FeatureDrift.of(f) for f in found.features],
            output=FeatureDrift.of(found.output),
        )


@reference_only(MONITORING)
@strawberry.type(description="A model's quality over the results with feedback in a window.")
class ModelQuality:
    from_: datetime = strawberry.field(name="from", description="Start of the window.")
    to: datetime = strawberry.field(description="End of the window.")
    labelled: int = strawberry.field(description="Results with feedback in the window.")
    accuracy: float | None = strawberry.field(description="Classifiers: share predicted right.")
    macro_f1: float | None = strawberry.field(description="Classifiers: mean F1 over classes.")
    mae: float | None = strawberry.field(description="Regressors: mean absolute error.")
    rmse: float | None = strawberry.field(description="Regressors: root mean squared error.")

    @classmethod
    def of(cls, found: m.ModelQuality) -> ModelQuality:
        q = found.quality
        return cls(
            from_=found.window.start,
            to=found.window.end,
            labelled=q.labelled,
            accuracy=q.accuracy,
            macro_f1=q.macro_f1,
            mae=q.mae,
            rmse=q.rmse,
        )


@reference_only(MONITORING)
@strawberry.type(description="What raises a model's alerts; null fields are not watched.")
class ModelAlertPolicy:
    latency_p95_ms: float | None = strawberry.field(
        description="p95 end-to-end latency (ms) over 5 minutes above this raises LATENCY."
    )
    error_rate: float | None = strawberry.field(
        description="Error rate over 5 minutes above this (0 to 1) raises ERROR_RATE."
    )
    drift: d.DriftStatus | None = strawberry.field(
        description="Drift over the last hour at this status or worse raises DRIFT."
    )
    min_accuracy: float | None = strawberry.field(
        description="Accuracy over the last hour's feedback below this raises QUALITY."
    )
    min_r2: float | None = strawberry.field(
        description="Regressors: R^2 over the last hour's feedback below this raises QUALITY."
    )

    @classmethod
    def of(cls, policy: AlertPolicy) -> ModelAlertPolicy:
        return cls(
            latency_p95_ms=policy.latency_p95_ms,
            error_rate=policy.error_rate,
            drift=policy.drift,
            min_accuracy=policy.min_accuracy,
            min_r2=policy.min_r2,
        )


def window_of(window: StatsWindow | None, policy: m.MonitoringPolicy, now: datetime) -> m.Window:
    given = window or StatsWindow()
    return m.window_of(given.from_, given.to, policy, now)
