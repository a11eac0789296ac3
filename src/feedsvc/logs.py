"""Log lines for operators: one line per event, as text or (FEEDSVC_LOG_FORMAT=json) as JSON lines.

The same configuration goes to granian, so its own and its access log lines match ours.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any

from feedsvc.config import Settings

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Controls (C0, DEL, C1) and bidirectional overrides: from a file name or a request they would
# start a forged line, recolour a terminal or reorder what an operator reads.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control character escaped as Python writes it (\\n, \\x1b, \\u202e)."""
    return _UNPRINTABLE.sub(lambda m: repr(m[0])[1:-1], text)


class TextLines(logging.Formatter):
    """One line per event, whatever the message holds (a traceback follows on lines of its own)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


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
    formatter = {"()": JsonLines} if settings.log_format == "json" else {"()": TextLines, "fmt": TEXT}
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
