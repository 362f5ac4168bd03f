"""The scaling benchmark's table: the machine's cores above it, one row per process count."""

from __future__ import annotations

from bench.scaling import Figure, table


def test_the_table_names_the_cores_and_leaves_unmeasured_cells_empty() -> None:
    figures = [
        Figure("W2 req/s", 1, 1234.5, 12.34, 0.5),
        Figure("queue inferences/s", 4, 800.0),
    ]

    lines = table(figures, cpus=2).splitlines()

    assert lines[0] == "2 CPU cores on this machine."
    assert lines[-2] == "| W2 req/s | 1 | 1,234.5 | 12.3 | 0.50 |"
    assert lines[-1] == "| queue inferences/s | 4 | 800.0 | - | - |"
