"""What the REST APIs share: a service's ValidationError as DRF's, so a form field error reads the same in both; a
JSON parser that answers deep nesting with a 400."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError


def as_drf(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with absurdly deep nesting answered as a 400 like any other malformed body (the standard
    library raises RecursionError, which DRF would turn into a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
