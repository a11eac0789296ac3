"""Log lines for operators: one line per event, as text or (FEEDSVC_LOG_FORMAT=json) as JSON lines.

The same configuration goes to granian, so its own and its access log lines match ours.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from feedsvc.config import Settings

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for our loggers, granian's and its access log."""
    formatter = {"()": JsonLines} if settings.log_format == "json" else {"format": TEXT}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    access = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter, "generic": formatter, "access": formatter},
        "handlers": {"main": handler, "console": handler, "access": access},
        "root": {"handlers": ["main"], "level": "INFO"},
        "loggers": {
            "apscheduler": {"level": "WARNING"},  # it logs every job it adds
            "_granian": {"handlers": ["main"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
