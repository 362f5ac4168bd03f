"""Compile times of the compiled execution path: the bench's documents and adversarial ones."""

from __future__ import annotations

import time
from collections.abc import Callable

from graphql import parse

from bench.workloads import W1_QUERY, W2_QUERY
from graph.execution.collection import MAX_PLAN_FIELDS
from graph.execution.extension import CompiledPlans
from graph.execution.specs import Unsupported
from graph.protection.limits import QueryLimits, check_document, check_operation, measure_operation
from graph.schema.record import schema


def multiplied(levels: int) -> str:
    """Each fragment spreads the next under two aliases: 2**levels subtrees to compile."""
    fragments = [
        f"fragment F{i} on User {{ id "
        + " ".join(
            f"{alias}: submissions(first: 1) {{ edges {{ node {{ owner {{ ...F{i + 1} }} }} }} }}"
            for alias in ("a", "b")
        )
        + " }"
        for i in range(levels)
    ]
    return "\n".join(["{ viewer { ...F0 } }", *fragments, f"fragment F{levels} on User {{ id }}"])


def wide(aliases: int) -> str:
    """As many aliased copies of a nested selection as the document holds."""
    item = "submissions(first: 100) { edges { node { id status model { id name } } } }"
    return "{ " + " ".join(f"a{n}: viewer {{ {item} }}" for n in range(aliases)) + " }"


def largest_accepted_multiplied() -> tuple[int, str]:
    """The most-multiplied document that the default query limits let through."""
    limits = QueryLimits()
    accepted = 0
    for levels in range(1, 21):
        document = multiplied(levels)
        if check_document(document, limits) is not None:
            break
        measure = measure_operation(schema._schema, parse(document))
        if measure is None or check_operation(measure, limits) is not None:
            break
        accepted = levels
    return accepted, multiplied(accepted)


def _compile_ms(document: str, variables: dict[str, object] | None = None) -> tuple[float, str]:
    """Best of 5 compiles (a fresh plan cache each time), and the outcome."""
    best = float("inf")
    outcome = "compiled"
    for _ in range(5):
        plans = CompiledPlans(1)
        parsed = parse(document)
        started = time.perf_counter()
        try:
            plans.plan_for(schema._schema, parsed, (document, None), variables or {})
        except Unsupported as unsupported:
            outcome = f"fallback ({unsupported.reason})"
        best = min(best, time.perf_counter() - started)
    return best * 1000, outcome


def compile_times() -> dict[str, str]:
    cases: dict[str, Callable[[], tuple[float, str]]] = {
        "W1": lambda: _compile_ms(W1_QUERY),
        "W2": lambda: _compile_ms(W2_QUERY, {"id": "U3VibWlzc2lvbjow"}),
        "fragment-multiplied, 2**12 subtrees": lambda: _compile_ms(multiplied(12)),
        "fragment-multiplied, 2**20 subtrees": lambda: _compile_ms(multiplied(20)),
        "300 aliases (past the document limits)": lambda: _compile_ms(wide(300)),
    }
    levels, accepted = largest_accepted_multiplied()
    cases[f"fragment-multiplied within the default limits (2**{levels})"] = lambda: _compile_ms(
        accepted
    )
    figures: dict[str, str] = {"plan field bound": f"{MAX_PLAN_FIELDS:,}"}
    for name, measure in cases.items():
        milliseconds, outcome = measure()
        figures[name] = f"{milliseconds:.2f} ms, {outcome}"
    return figures
