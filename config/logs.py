"""Structured logs: one JSON object per line (time, level, logger, message, and the request path, status or task
when the record carries them), for log shippers in production."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

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
