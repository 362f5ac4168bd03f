"""Terminal logs: one readable line with the request id in development; JSON otherwise."""

from __future__ import annotations

import logging

import pytest

from graph.transport.app import CURRENT_REQUEST_ID
from server.logging import ConsoleFormatter, RequestIdFilter, uses_json
from server.settings import Environment, LogFormat, Settings


def record(message: str = "loaded %d models", *args: object) -> logging.LogRecord:
    return logging.LogRecord("assay.models", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    ("environment", "log_format", "is_terminal", "expected"),
    [
        (Environment.DEVELOPMENT, LogFormat.AUTO, True, False),
        (Environment.DEVELOPMENT, LogFormat.AUTO, False, True),
        (Environment.PRODUCTION, LogFormat.AUTO, True, True),
        (Environment.DEVELOPMENT, LogFormat.JSON, True, True),
        (Environment.PRODUCTION, LogFormat.CONSOLE, False, False),
    ],
)
def test_json_unless_a_development_terminal_or_the_setting_says(
    environment: Environment, log_format: LogFormat, is_terminal: bool, expected: bool
) -> None:
    settings = Settings(environment=environment, log_format=log_format)
    assert uses_json(settings, is_terminal) is expected


def test_a_console_line_is_one_line_with_the_request_id() -> None:
    entry = record("loaded %d models", 3)
    token = CURRENT_REQUEST_ID.set("req-42")
    try:
        RequestIdFilter().filter(entry)
    finally:
        CURRENT_REQUEST_ID.reset(token)
    line = ConsoleFormatter().format(entry)
    assert "\n" not in line
    assert line.endswith("INFO  assay.models loaded 3 models [req req-42]")
    assert not line.startswith("{")


def test_outside_a_request_no_id_is_added() -> None:
    entry = record("loaded %d models", 3)
    RequestIdFilter().filter(entry)
    assert ConsoleFormatter().format(entry).endswith("loaded 3 models")
