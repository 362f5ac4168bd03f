"""Feedback (a result's true label, from its owner) and the quality it measures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.errors import InvalidInput
from domain.models import JSONValue
from domain.monitoring import Layout


@dataclass(frozen=True, slots=True)
class Feedback:
    result_id: UUID
    model_id: UUID
    label: JSONValue
    predicted_class: str | None
    true_class: str | None
    predicted_value: float | None
    true_value: float | None
    result_created_at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class ClassCount:
    predicted: str
    true: str
    count: int


@dataclass(frozen=True, slots=True)
class ValueErrors:
    """Sums over a regressor's labelled results, from which MAE, RMSE and R^2 follow."""

    count: int
    absolute: float
    squared: float
    true_sum: float
    true_squared: float


@dataclass(frozen=True, slots=True)
class Quality:
    labelled: int
    accuracy: float | None = None
    macro_f1: float | None = None
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None


def feedback_for(
    layout: Layout,
    prediction: JSONValue,
    label: JSONValue,
    *,
    result_id: UUID,
    model_id: UUID,
    result_created_at: datetime,
    now: datetime,
) -> Feedback:
    """Check a label against the model's output and keep both sides in comparable form:
    a class of the model for a classifier, a finite number for a regressor."""
    predicted = prediction.get(layout.output_key) if layout.output_key else prediction
    if isinstance(prediction, dict) and layout.output_key is None:
        predicted = None
    if layout.output.is_numeric:
        if (
            isinstance(label, bool)
            or not isinstance(label, int | float)
            or not math.isfinite(label)
        ):
            raise InvalidInput({"input.label": "must be a finite number for this regressor"})
        value = predicted if isinstance(predicted, int | float) else None
        return Feedback(
            result_id, model_id, label, None, None, value, float(label), result_created_at, now
        )
    classes = layout.output.categories
    if not isinstance(label, str | int) or isinstance(label, bool) or str(label) not in classes:
        raise InvalidInput({"input.label": f"must be one of the model's classes: {list(classes)}"})
    return Feedback(
        result_id,
        model_id,
        label,
        None if predicted is None else str(predicted),
        str(label),
        None,
        None,
        result_created_at,
        now,
    )


def classifier_quality(counts: Sequence[ClassCount]) -> Quality:
    labelled = sum(c.count for c in counts)
    if not labelled:
        return Quality(0)
    right = sum(c.count for c in counts if c.predicted == c.true)
    classes = {c.predicted for c in counts} | {c.true for c in counts}
    scores = []
    for name in sorted(classes):
        hits = sum(c.count for c in counts if c.predicted == name == c.true)
        said = sum(c.count for c in counts if c.predicted == name)
        were = sum(c.count for c in counts if c.true == name)
        scores.append(2 * hits / (said + were) if said + were else 0.0)
    return Quality(labelled, accuracy=right / labelled, macro_f1=sum(scores) / len(scores))


def regressor_quality(sums: ValueErrors) -> Quality:
    n = sums.count
    if not n:
        return Quality(0)
    spread = sums.true_squared - sums.true_sum**2 / n
    r2 = 1 - sums.squared / spread if spread > 0 else None
    return Quality(n, mae=sums.absolute / n, rmse=math.sqrt(sums.squared / n), r2=r2)
