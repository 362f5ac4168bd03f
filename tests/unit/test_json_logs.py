"""JSON log lines: the message, the extra fields, and nothing meant for a terminal."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from server.logging import JsonFormatter, configure_logging
from server.settings import Settings


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


async def test_outgoing_urls_are_not_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    # Webhook and callback URLs are the receivers' secrets (docs/serving.md): httpx logs
    # every request's URL at INFO, so its loggers stay at WARNING.
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    configure_logging(Settings(log_level="INFO"))
    collector = Collector()
    root.addHandler(collector)
    written = collector.records
    secret = "https://hooks.example.com/T0001/secret-path-token"
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    async with httpx.AsyncClient(transport=transport) as client:
        await client.post(secret, content=b"{}")
    logging.getLogger("assay.test").info("a line that is logged")
    assert [r.getMessage() for r in written] == ["a line that is logged"]


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
