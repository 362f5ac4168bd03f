"""Model monitoring's shapes: the bins a model's inputs and outputs are counted in (its
layout), its reference profile, and the per-minute tallies (rollups) recorded with the work.

A numeric feature is counted in bins between edges (below the first, between two, from the
last up); a category in one bin per known value and one for any other. The edges come from
the model's shipped reference profile (quantiles of its training data), else from the
bounds its input schema declares (ten equal bins), else from a fixed logarithmic scale. A
layout depends only on the model's registration, so every tally of one model version adds up.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.models import JSONValue, Model

# runtime_config key under which a model ships its reference profile.
PROFILE_KEY = "monitoring_profile"
MAX_FEATURES = 32
MAX_CATEGORIES = 32
# Model and end-to-end latency buckets, in milliseconds: 0.25 ms to ~53 s, 25% apart.
LATENCY_EDGES_MS = tuple(round(0.25 * 1.25**k, 4) for k in range(56))
_GENERIC_EDGES = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)
PREDICTION = "prediction"  # the output's name among the features


@dataclass(frozen=True, slots=True)
class Axis:
    """How one feature (or the output) is counted: numeric bins or categories."""

    name: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return bool(self.edges)

    @property
    def size(self) -> int:
        return len(self.edges) + 1 if self.is_numeric else len(self.categories) + 1

    def bin_of(self, value: JSONValue) -> int | None:
        """The bin a value falls in; None for a value this axis cannot place (missing)."""
        if self.is_numeric:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if not math.isfinite(value):
                return None
            return bisect.bisect_right(self.edges, value)
        if value is None:
            return None
        text = value if isinstance(value, str) else _json_text(value)
        try:
            return self.categories.index(text)
        except ValueError:
            return len(self.categories)

    def labels(self) -> list[str]:
        if not self.is_numeric:
            return [*self.categories, "other"]
        edges = [f"{e:g}" for e in self.edges]
        inner = [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
        return [f"< {edges[0]}", *inner, f">= {edges[-1]}"]


def _json_text(value: JSONValue) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class Layout:
    """Every axis a model's tallies count, in order; `features` flattened one after another."""

    features: tuple[Axis, ...]
    output: Axis
    output_key: str | None

    @property
    def feature_width(self) -> int:
        return sum(axis.size for axis in self.features)

    def split(self, flat: Sequence[int]) -> dict[str, list[int]]:
        """A flattened feature tally as counts per feature."""
        parts: dict[str, list[int]] = {}
        start = 0
        for axis in self.features:
            parts[axis.name] = list(flat[start : start + axis.size])
            start += axis.size
        return parts


@dataclass(frozen=True, slots=True)
class Profile:
    """A reference distribution on a layout: counts per feature bin and per output bin."""

    features: Mapping[str, tuple[int, ...]]
    output: tuple[int, ...]
    source: str  # "training" or "predictions"

    @property
    def size(self) -> int:
        return sum(self.output)


_LAYOUTS: dict[tuple[UUID, str, str], Layout] = {}
_MAX_LAYOUTS = 1024


def layout_of(model: Model) -> Layout:
    """The bins a model is counted in (see the module's docstring), made once per model
    version: a version's registration does not change its schemas."""
    key = (model.id, model.name, model.version)
    found = _LAYOUTS.get(key)
    if found is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        found = _LAYOUTS[key] = _layout(model)
    return found


def _layout(model: Model) -> Layout:
    config = model.runtime_config
    shipped = config.get(PROFILE_KEY)
    shipped_axes: Mapping[str, JSONValue] = {}
    if isinstance(shipped, dict):
        axes = shipped.get("features")
        shipped_axes = axes if isinstance(axes, dict) else {}
    properties = model.input_schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    names = config.get("features")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        names = list(properties)
    features = [
        axis
        for name in names[:MAX_FEATURES]
        if (axis := _axis(name, shipped_axes.get(name), properties.get(name))) is not None
    ]
    output_key, output_schema = _output_property(model)
    output_shipped = shipped.get("output") if isinstance(shipped, dict) else None
    output = _axis(PREDICTION, output_shipped, output_schema) or Axis(PREDICTION)
    return Layout(tuple(features), output, output_key)


def _output_property(model: Model) -> tuple[str | None, JSONValue]:
    properties = model.output_schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None, model.output_schema
    key = model.runtime_config.get("output_key")
    if not isinstance(key, str) or key not in properties:
        key = next(iter(properties))
    return key, properties[key]


def _axis(name: str, shipped: JSONValue, schema: JSONValue) -> Axis | None:
    if isinstance(shipped, dict):
        edges, categories = shipped.get("edges"), shipped.get("categories")
        if isinstance(edges, list) and edges and all(_is_number(e) for e in edges):
            return Axis(name, edges=tuple(float(e) for e in edges))
        if isinstance(categories, list):
            return Axis(name, categories=tuple(str(c) for c in categories[:MAX_CATEGORIES]))
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("enum"), list):
        return Axis(name, categories=tuple(_json_text(v) for v in schema["enum"][:MAX_CATEGORIES]))
    kind = schema.get("type")
    if kind == "boolean":
        return Axis(name, categories=("false", "true"))
    if kind in ("number", "integer"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and isinstance(high, int | float) and high > low:
            step = (high - low) / 10
            return Axis(name, edges=tuple(low + step * k for k in range(1, 10)))
        return Axis(name, edges=_GENERIC_EDGES)
    if kind == "string":
        return Axis(name, categories=())
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def shipped_profile(model: Model, layout: Layout) -> Profile | None:
    """The reference profile a model ships in its runtime_config, if it fits its layout."""
    shipped = model.runtime_config.get(PROFILE_KEY)
    if not isinstance(shipped, dict):
        return None
    features: dict[str, tuple[int, ...]] = {}
    for axis in layout.features:
        counts = _counts(shipped.get("features", {}).get(axis.name), axis.size)
        if counts is None:
            return None
        features[axis.name] = counts
    output = _counts(shipped.get("output"), layout.output.size)
    if output is None:
        return None
    return Profile(features, output, "training")


def _counts(part: JSONValue, size: int) -> tuple[int, ...] | None:
    counts = part.get("counts") if isinstance(part, dict) else None
    if not isinstance(counts, list) or len(counts) != size:
        return None
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return None
    return tuple(counts)


def output_value(layout: Layout, prediction: JSONValue) -> JSONValue:
    """The value of a prediction that its output axis counts (the output key's, if any)."""
    if layout.output_key is not None and isinstance(prediction, dict):
        return prediction.get(layout.output_key)
    return prediction


@dataclass(frozen=True, slots=True)
class Tally:
    """One model version's work recorded in one minute (a rollup row, or a delta to one)."""

    model_id: UUID
    minute: datetime
    predictions: int
    failures: int
    model_ms: tuple[int, ...]
    end_to_end_ms: tuple[int, ...]
    output: tuple[int, ...]
    features: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    """One recorded outcome: its input, prediction (None when it failed) and timings."""

    input: JSONValue
    prediction: JSONValue
    failed: bool
    model_ms: float
    end_to_end_ms: float


MINUTE, HOUR = 60, 3600  # the spans of rollup rows, in seconds


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def add_counts(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Element-wise sum; the shorter one counts as zeros (as the SQL function does)."""
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    return tuple(x + (shorter[i] if i < len(shorter) else 0) for i, x in enumerate(longer))


def merged(model_id: UUID, minute: datetime, tallies: Sequence[Tally]) -> Tally:
    """Many tallies as one (a window's total), dated `minute`: column sums, so a day's 1,440
    rows add up in a few milliseconds."""
    return Tally(
        model_id,
        minute,
        sum(t.predictions for t in tallies),
        sum(t.failures for t in tallies),
        _column_sums([t.model_ms for t in tallies]),
        _column_sums([t.end_to_end_ms for t in tallies]),
        _column_sums([t.output for t in tallies]),
        _column_sums([t.features for t in tallies]),
    )


def _column_sums(arrays: Sequence[Sequence[int]]) -> tuple[int, ...]:
    if not arrays:
        return ()
    width = max(len(a) for a in arrays)
    padded = [a if len(a) == width else (*a, *([0] * (width - len(a)))) for a in arrays]
    return tuple(map(sum, zip(*padded, strict=True)))


def profile_from(layout: Layout, total: Tally) -> Profile:
    """A reference profile made from recorded predictions (a model that ships none)."""
    features = {k: tuple(v) for k, v in layout.split(_padded(total.features, layout)).items()}
    output = tuple(_sized(total.output, layout.output.size))
    return Profile(features, output, "predictions")


def _padded(flat: Sequence[int], layout: Layout) -> list[int]:
    return _sized(flat, layout.feature_width)


def _sized(counts: Sequence[int], size: int) -> list[int]:
    return [*counts[:size], *([0] * (size - len(counts)))]


def percentile_ms(buckets: Sequence[int], q: float) -> float | None:
    """The q-quantile of a latency histogram, linear within its bucket; None when empty."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            low = 0.0 if i == 0 else LATENCY_EDGES_MS[i - 1]
            high = LATENCY_EDGES_MS[min(i, len(LATENCY_EDGES_MS) - 1)]
            if i >= len(LATENCY_EDGES_MS):
                return high
            return round(low + (high - low) * (rank - seen) / count, 3)
        seen += count
    return LATENCY_EDGES_MS[-1]
