"""JSON log lines: the message, the extra fields, and nothing meant for a terminal."""

from __future__ import annotations

import json
import logging

from server.logging import JsonFormatter


def record(**extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("assay.request", logging.INFO, __file__, 1, "query ok", None, None)
    for name, value in extra.items():
        setattr(entry, name, value)
    return entry


def test_extra_fields_are_logged_and_terminal_colours_are_not() -> None:
    line = json.loads(
        JsonFormatter().format(
            record(request_id="r1", sql_statements=2, color_message="\x1b[32mquery ok\x1b[0m")
        )
    )
    assert line["message"] == "query ok"
    assert line["logger"] == "assay.request"
    assert line["request_id"] == "r1"
    assert line["sql_statements"] == 2
    assert "color_message" not in line
