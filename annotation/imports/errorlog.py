"""Errors and warnings of one import, each naming the file, the line/item/row and the field."""

from __future__ import annotations

ERRORS_KEPT = 50


class FileRejected(Exception):
    """The file cannot be read at all (too big, wrong encoding, unknown format); the message names the file."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line = message, line


class ErrorLog:
    """Collects errors and warnings, each naming the file, the line/item/row and the field."""

    def __init__(self, filename: str, unit: str = "line") -> None:
        self.filename = filename
        self.unit = unit
        self.errors: list[dict] = []
        self.count = 0
        self.warnings: list[str] = []
        self.warning_count = 0

    def where(self, line: int | None, field: str | None) -> str:
        parts = [self.filename]
        if line is not None:
            parts.append(f"{self.unit} {line}")
        if field:
            parts.append(f"field '{field}'")
        return ", ".join(parts)

    def error(self, line: int | None, field: str | None, message: str, *, prefix: bool = True) -> None:
        self.count += 1
        if len(self.errors) < ERRORS_KEPT:
            text = f"{self.where(line, field)}: {message}" if prefix else message
            self.errors.append({"line": line, "field": field, "message": text})

    def warn(self, line: int | None, field: str | None, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < ERRORS_KEPT:
            self.warnings.append(f"{self.where(line, field)}: {message}")

    def warnings_report(self) -> list[str]:
        extra = self.warning_count - len(self.warnings)
        return self.warnings + ([f"... and {extra} more warnings"] if extra else [])


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
