"""What a server did in a timed window: counters from its GET /metrics and its CPU time.

A `Snapshot` is taken when the window opens and when it closes; `window()` subtracts them.
The benchmark opens a window on an idle server after the warm-up and closes it once the
server is idle again after the measured run, so the window holds exactly the requests sent in
the measured run, those wrk abandoned in flight at its end included. CPU per request is the
server's CPU time over the window divided by the requests the server completed in it (its own
counter).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

REQUESTS = "assay_graphql_requests_total"
ERRORS = "assay_graphql_errors_total"
STATEMENTS = "assay_db_statements_total"
EXECUTION = "assay_graphql_execution_total"
COMPILED, FALLBACK = "compiled", "fallback"

Labels = tuple[tuple[str, str], ...]
Samples = Mapping[str, Mapping[Labels, float]]

_LABEL = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group(0)], value)


def _labels(text: str) -> Labels:
    pairs, pos = [], 0
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None:
            raise ValueError(f"bad label set: {{{text}}}")
        pairs.append((match.group(1), _unescape(match.group(2))))
        pos = match.end()
    return tuple(sorted(pairs))


def parse(text: str) -> dict[str, dict[Labels, float]]:
    """Prometheus text format: samples by metric name, then by (sorted) label pairs.

    A metric declared by a `# TYPE` line but without samples yet maps to `{}`, so a server
    that has the metric (at zero) can be told from one that does not have it."""
    out: dict[str, dict[Labels, float]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# TYPE "):
            out.setdefault(line.split()[2], {})
            continue
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, _, rest = line.partition("{")
            inside, _, rest = rest.rpartition("}")
            labels = _labels(inside)
        else:
            name, _, rest = line.partition(" ")
            labels = ()
        value = rest.split()[0]  # a timestamp may follow
        samples = out.setdefault(name.strip(), {})
        samples[labels] = samples.get(labels, 0.0) + float(value)
    return out


def total(samples: Samples, name: str, **match: str) -> float:
    """The sum of `name`'s samples whose labels include `match`."""
    return sum(
        value
        for labels, value in samples.get(name, {}).items()
        if all(dict(labels).get(k) == v for k, v in match.items())
    )


@dataclass(frozen=True)
class Snapshot:
    """A server's counters and CPU time (user + system, its process tree) at one moment."""

    at: float
    cpu_seconds: float
    samples: Samples


@dataclass(frozen=True)
class Window:
    seconds: float
    cpu_seconds: float
    requests: int
    graphql_errors: int
    compiled: int | None  # None: the server has no execution-path counter (the baseline)
    fallback: int | None
    fallback_reasons: Mapping[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_request(self) -> float | None:
        return self.cpu_seconds * 1000 / self.requests if self.requests > 0 else None

    @property
    def compiled_share(self) -> float | None:
        return compiled_share(self.compiled, self.fallback)


def compiled_share(compiled: int | None, fallback: int | None) -> float | None:
    """compiled / (compiled + fallback); None when no query operation was counted."""
    counted = (compiled or 0) + (fallback or 0)
    return (compiled or 0) / counted if counted else None


def _delta(before: Samples, after: Samples, name: str, **match: str) -> int:
    return round(total(after, name, **match) - total(before, name, **match))


def window(before: Snapshot, after: Snapshot) -> Window:
    b, a = before.samples, after.samples
    has_paths = EXECUTION in a or EXECUTION in b
    reasons: dict[str, int] = {}
    for labels, value in a.get(EXECUTION, {}).items():
        label = dict(labels)
        if label.get("path") == FALLBACK:
            reason = label.get("reason", "")
            grown = round(value - b.get(EXECUTION, {}).get(labels, 0.0))
            reasons[reason] = reasons.get(reason, 0) + grown
    return Window(
        seconds=after.at - before.at,
        cpu_seconds=after.cpu_seconds - before.cpu_seconds,
        requests=_delta(b, a, REQUESTS),
        graphql_errors=_delta(b, a, ERRORS),
        compiled=_delta(b, a, EXECUTION, path=COMPILED) if has_paths else None,
        fallback=_delta(b, a, EXECUTION, path=FALLBACK) if has_paths else None,
        fallback_reasons={k: v for k, v in sorted(reasons.items()) if v},
    )


def per_request(counted: Sequence[float]) -> float:
    """Statements per request from requests each counted alone: the median. The counter is
    the whole process's, and a server's background work (the webhook dispatcher's poll, the
    sweepers) now and then lands a statement between two scrapes; a median of a few counts
    ignores that, where a mean over them showed W1 at 2 statements instead of 1."""
    return statistics.median(counted)
