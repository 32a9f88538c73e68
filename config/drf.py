"""What the REST APIs share: services raise Django's ValidationError whichever door the request came in by, and the
exception handler answers it as DRF's 400 (field errors keyed as in a form); a JSON parser that answers deep
nesting with a 400."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    """DRF's handler, with a service's Django ValidationError turned into a 400 first."""
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
    return drf_exception_handler(exc, context)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with absurdly deep nesting answered as a 400 like any other malformed body (the standard
    library raises RecursionError, which DRF would turn into a 500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
