"""The API's JSON parser: DRF's, except that a body nested too deeply for Python's recursion
limit (a 10,000-deep array is a few kilobytes) is a 400 malformed_json like any other bad JSON,
never a RecursionError and a 500. The ingest endpoint has its own decoder (metering.wire)."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


