"""`assay serve` keeps its embedded PostgreSQL: started again when it dies, or a reason to exit."""

from __future__ import annotations

import threading
from pathlib import Path

from persistence.embedded import EmbeddedKeeper, EmbeddedPostgres

URL = "postgresql://postgres@/assay?host=/data/postgres"
WAIT_SECONDS = 10.0  # a bound on the wait, never an assertion about time


class DyingPostgres(EmbeddedPostgres):
    """Down at the first look; `restart` answers `comes_back_at` or raises `fails_with`."""

    def __init__(self, comes_back_at: str = URL, fails_with: Exception | None = None) -> None:
        super().__init__(Path("/nonexistent"))
        self.running = False
        self.comes_back_at = comes_back_at
        self.fails_with = fails_with
        self.restarted = threading.Event()

    def is_running(self) -> bool:
        return self.running

    def restart(self) -> str:
        self.restarted.set()
        if self.fails_with is not None:
            raise self.fails_with
        self.running = True
        return self.comes_back_at


def keep(embedded: DyingPostgres) -> tuple[EmbeddedKeeper, list[str], threading.Event]:
    reasons: list[str] = []
    failed = threading.Event()

    def on_failure(reason: str) -> None:
        reasons.append(reason)
        failed.set()

    keeper = EmbeddedKeeper(embedded, URL, on_failure, interval_seconds=0.01)
    keeper.start()
    return keeper, reasons, failed


def test_a_dead_database_is_started_again_at_the_same_url() -> None:
    embedded = DyingPostgres()
    keeper, reasons, _ = keep(embedded)
    try:
        assert embedded.restarted.wait(WAIT_SECONDS)
    finally:
        keeper.stop()
    assert embedded.running
    assert reasons == []


def test_a_database_that_does_not_start_again_is_a_reason_to_exit() -> None:
    embedded = DyingPostgres(fails_with=RuntimeError("pg_ctl: could not start server"))
    keeper, reasons, failed = keep(embedded)
    try:
        assert failed.wait(WAIT_SECONDS)
    finally:
        keeper.stop()
    assert "did not start again: pg_ctl: could not start server" in reasons[0]


def test_a_database_back_elsewhere_is_a_reason_to_exit() -> None:
    embedded = DyingPostgres(comes_back_at="postgresql://postgres@/assay?host=/tmp/other")
    keeper, reasons, failed = keep(embedded)
    try:
        assert failed.wait(WAIT_SECONDS)
    finally:
        keeper.stop()
    assert "came back at postgresql://postgres@/assay?host=/tmp/other" in reasons[0]
