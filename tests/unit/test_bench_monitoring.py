"""M1's seed: a day of rollups as the record paths leave them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from bench.monitoring import MINUTES, day_of_rows
from domain.monitoring import HOUR, MINUTE, Axis, Layout
from persistence.monitoring import SHARDS


def test_a_seeded_day_holds_every_prediction_in_its_minutes_and_again_in_its_hours() -> None:
    layout = Layout((Axis("x", edges=(1.0, 2.0)),), Axis("prediction", categories=("a",)), None)
    end = datetime(2026, 12, 5, 12, 30, 15, tzinfo=UTC)
    rows = day_of_rows(uuid.uuid4(), layout, 1_000_000, end)
    minutes = [r for r in rows if r[1] == MINUTE]
    hours = [r for r in rows if r[1] == HOUR]
    assert len(minutes) == MINUTES * SHARDS
    assert len(hours) == 25 * SHARDS  # a day that does not start on the hour touches 25 hours
    for part in (minutes, hours):
        assert sum(int(str(r[4])) for r in part) == 1_000_000
