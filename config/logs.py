"""Structured logs: one JSON object per line (time, level, logger, message, and the request path, status or task
when the record carries them), for log shippers in production; and the tail of a log file, as the pages show it."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

_EXTRA = ("status_code", "path", "method", "task_id", "task_name", "job", "run", "project")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "path"):
            out["path"], out["method"] = request.path, request.method
        for key in _EXTRA:
            if key not in out and hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def file_tail(path: Path, chars: int) -> str:
    """The last ``chars`` bytes of a log file, as text ("" when there is no file yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
