"""Drift of a window's counts against the reference: PSI, the KS statistic, a status.

Thresholds (the usual ones for PSI): below 0.1 OK, from 0.1 WARNING, from 0.25 DRIFT. A
feature with fewer than MIN_SAMPLES values in the window, or a model with no reference
yet, is INSUFFICIENT_DATA. KS is computed on the binned distributions (the largest gap
between the two cumulative shares at a bin edge), so it is a lower bound of the exact one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

PSI_WARNING = 0.1
PSI_DRIFT = 0.25
MIN_SAMPLES = 100
_EPSILON = 1e-4  # the share an empty bin counts as, so PSI stays finite


class DriftStatus(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    DRIFT = "DRIFT"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {
    DriftStatus.INSUFFICIENT_DATA: 0,
    DriftStatus.OK: 1,
    DriftStatus.WARNING: 2,
    DriftStatus.DRIFT: 3,
}


@dataclass(frozen=True, slots=True)
class Bin:
    label: str
    count: int
    share: float


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    feature: str
    psi: float | None
    ks: float | None
    status: DriftStatus
    current: tuple[Bin, ...]
    reference: tuple[Bin, ...]


def bins(labels: Sequence[str], counts: Sequence[int]) -> tuple[Bin, ...]:
    total = sum(counts)
    return tuple(
        Bin(label, count, count / total if total else 0.0)
        for label, count in zip(labels, counts, strict=True)
    )


def psi(current: Sequence[int], reference: Sequence[int]) -> float:
    """Population stability index: sum over bins of (c - r) * ln(c / r), on shares."""
    c_total, r_total = sum(current), sum(reference)
    value = 0.0
    for c, r in zip(current, reference, strict=True):
        c_share = max(c / c_total, _EPSILON)
        r_share = max(r / r_total, _EPSILON)
        value += (c_share - r_share) * math.log(c_share / r_share)
    return value


def ks(current: Sequence[int], reference: Sequence[int]) -> float:
    """The largest gap between the two cumulative distributions, at the bins' edges."""
    c_total, r_total = sum(current), sum(reference)
    c_seen = r_seen = gap = 0.0
    for c, r in zip(current, reference, strict=True):
        c_seen += c / c_total
        r_seen += r / r_total
        gap = max(gap, abs(c_seen - r_seen))
    return gap


def status_of(value: float) -> DriftStatus:
    if value >= PSI_DRIFT:
        return DriftStatus.DRIFT
    if value >= PSI_WARNING:
        return DriftStatus.WARNING
    return DriftStatus.OK


def feature_drift(
    name: str,
    labels: Sequence[str],
    current: Sequence[int],
    reference: Sequence[int] | None,
    *,
    is_numeric: bool,
) -> FeatureDrift:
    shown_reference = bins(labels, reference) if reference is not None else ()
    if reference is None or sum(reference) == 0 or sum(current) < MIN_SAMPLES:
        return FeatureDrift(
            name,
            None,
            None,
            DriftStatus.INSUFFICIENT_DATA,
            bins(labels, current),
            shown_reference,
        )
    index = psi(current, reference)
    gap = ks(current, reference) if is_numeric else None
    return FeatureDrift(
        name,
        round(index, 6),
        None if gap is None else round(gap, 6),
        status_of(index),
        bins(labels, current),
        shown_reference,
    )


def worst(statuses: Sequence[DriftStatus]) -> DriftStatus:
    """The worst status; INSUFFICIENT_DATA only when no feature had enough."""
    return max(statuses, key=lambda s: s.severity, default=DriftStatus.INSUFFICIENT_DATA)
