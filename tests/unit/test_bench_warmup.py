"""The benchmark warms each server up longer before its first timed run of a workload."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import load, measure, run, workloads


class _Server:
    name, port = "postgraphile 5", 0

    class child:  # the attribute a Server's process sits in
        pid = os.getpid()

    def snapshot(self) -> measure.Snapshot:
        return measure.Snapshot(0.0, 0.0, {})


def test_only_a_servers_first_run_of_a_workload_gets_the_long_warm_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    warmups: list[float] = []

    def drive(_port: int, _bodies: Sequence[bytes], *args: Any, **hooks: Any) -> load.LoadResult:
        warmups.append(args[2])
        hooks["at_start"](), hooks["at_end"]()
        return load.LoadResult("asyncio", args[1], args[3], 10, 0, 1.0, 1.0, 1.0, 0.0)

    monkeypatch.setattr(run, "settle", lambda *_: None)
    monkeypatch.setattr(load, "drive", drive)
    monkeypatch.setattr(run.Bench, "sql_per_request", lambda *_: 1.0)
    bench = run.Bench(run.parse_options(["--quick"]), tmp_path, "postgresql://unused")
    server: Any = _Server()
    w1, w2 = workloads.w1(), workloads.w2(["U3VibWlzc2lvbjox"])
    for workload, connections in ((w2, 8), (w2, 32), (w1, 8), (w2, 8)):
        bench.timed(server, workload, None, connections)
    assert warmups == [5.0, 1.0, 5.0, 1.0]
    assert run.parse_options([]).first_warmup == 10.0
    assert run.parse_options(["--first-warmup", "0"]).first_warmup == 0.0
