"""Log lines for operators: one line per event, as text or (FEEDSVC_LOG_FORMAT=json) as JSON lines.

The same configuration goes to granian, so its own lines match ours. The access log is written
here too (`AccessLog`), in the same shapes, without going through `logging` for every request.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

from feedsvc.config import Settings

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_JSON_STRING = json.JSONEncoder(ensure_ascii=False)  # .encode(str): the quoted, escaped JSON string
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


class AccessLog:
    """One line per answered request on stdout, as granian's access log wrote them through `logging`.

    A line through `logging` (a record, a handler lock, a formatter, a write and a flush) cost more
    than answering a poll: two thirds of a 304's time (bench/vs_nginx.py). Here a request only
    queues a tuple of what its line says; a thread formats the queued lines every `interval`
    seconds and writes them in one write (and at `close()`, which the worker's exit runs), so the
    request threads hold the interpreter lock for less (see tally). While stdout does not keep up
    (a stalled log collector), at most `limit` lines wait; the rest are counted and the count is
    written instead, rather than holding requests or memory.
    """

    def __init__(self, *, json_lines: bool, stream: BinaryIO | None = None, interval: float = 0.2,
                 limit: int = 100_000) -> None:
        self._stream = stream
        self._json = json_lines
        self._interval = interval
        # Request threads append; the writer takes a prefix with two list operations, each atomic, so
        # nothing on the request path takes a lock, and a line appended meanwhile stays for the next write.
        self._queued: list[tuple[float, float, int, Any, Any, Any, Any]] = []
        self._limit = limit
        self._dropped = 0  # lines not queued since the last write: only a count (approximate across threads)
        self._stamps = (-1, "", "")  # a second, and its times as `_stamps_of` makes them
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    def request(self, environ: Mapping[str, Any], status: int, started: float) -> None:
        """Queue the line of one request (a WSGI environ) answered `status`, begun at perf_counter() `started`."""
        elapsed = time.perf_counter() - started
        if len(self._queued) >= self._limit:
            self._dropped += 1
            return
        self._queued.append((time.time(), elapsed, status, environ.get("REMOTE_ADDR", "-"),
                             environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), environ.get("SERVER_PROTOCOL")))

    def _line(self, now: float, elapsed: float, status: int, address: Any, method: Any, path: Any,
              protocol: Any) -> str:
        second = int(now)
        stamps = self._stamps
        if stamps[0] != second:
            stamps = self._stamps = self._stamps_of(second)
        message = f'[{stamps[2]}] {address} - "{method} {path} {protocol}" {status} {elapsed * 1000:.3f}'
        millis = int((now - second) * 1000)
        if self._json:
            # What JsonLines writes for this record, without a dict and a json.dumps call per line.
            return (f'{{"time": "{stamps[1] % millis}", "level": "info", "logger": "granian.access", '
                    f'"message": {_JSON_STRING.encode(message)}}}')
        if not (message.isascii() and message.isprintable()):
            message = printable(message)
        return f"{stamps[1] % millis} INFO granian.access: {message}"

    def _stamps_of(self, second: int) -> tuple[int, str, str]:
        """For one second: the line's time with `%03d` for the milliseconds, and granian's request time."""
        local = time.localtime(second)
        if self._json:  # as JsonLines writes it
            line = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").replace("+00:00", ".%03d+00:00")
        else:  # as logging.Formatter's default asctime
            line = time.strftime("%Y-%m-%d %H:%M:%S", local) + ",%03d"
        return second, line, time.strftime("%Y-%m-%d %H:%M:%S %z", local)

    def start(self) -> None:
        self._writer = threading.Thread(target=self._write_every_interval, name="access-log", daemon=True)
        self._writer.start()

    def close(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        self.flush()

    def _write_every_interval(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        """Write every queued line in one write; a closed or broken stdout loses them, as logging would."""
        queued = self._queued
        count = len(queued)
        taken = [self._line(*request) for request in queued[:count]]
        del queued[:count]
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            formatter = JsonLines() if self._json else TextLines(fmt=TEXT)
            taken.append(formatter.format(logging.LogRecord(
                __name__, logging.WARNING, __file__, 0, "access log: %d lines dropped, stdout was not keeping up",
                (dropped,), None)))
        if not taken:
            return
        data = ("\n".join(taken) + "\n").encode("utf-8", "backslashreplace")
        try:
            stream = self._stream or sys.stdout.buffer
            stream.write(data)
            stream.flush()
        except (OSError, ValueError, AttributeError):  # AttributeError: no sys.stdout at all
            pass


def logging_config(settings: Settings) -> dict[str, Any]:
    """A dictConfig for our loggers and granian's (its access log is off: AccessLog writes ours)."""
    formatter = {"()": JsonLines} if settings.log_format == "json" else {"()": TextLines, "fmt": TEXT}
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter, "generic": formatter},
        "handlers": {"main": handler, "console": handler},
        "root": {"handlers": ["main"], "level": "INFO"},
        "loggers": {
            "apscheduler": {"level": "WARNING"},  # it logs every job it adds
            "_granian": {"handlers": ["main"], "level": "INFO", "propagate": False},
        },
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
