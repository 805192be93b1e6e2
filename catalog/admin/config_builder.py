"""The metric config builder's server side: the live price preview. The admin's config textareas
(class `pricing-config`) get a form that builds the JSON (static/js/config_builder.js; the JSON
stays editable beside it), and every change asks this view for the preview of the config as it
stands — computed by the rating engine itself, so what the operator sees before saving is what
rating will charge. Staff only (the admin site's login), POST with the CSRF token; nothing is
read from or written to the database."""

from __future__ import annotations

import json
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from aforo.money import currency_is_valid
from billing.rating import ConfigError, validate_config

from .pricing_preview import price_preview_html

MAX_CONFIG_BYTES = 100_000


class _FloatRefused(ValueError):
    pass


def _refuse_float(text: str) -> Decimal:
    raise _FloatRefused(text)


@require_POST
def config_preview_view(request: HttpRequest) -> HttpResponse:
    """The preview fragment (HTML) of `config` (JSON text) in `currency`; an invalid config
    answers 200 with the engine's error naming its path, so the page shows why."""
    text = request.POST.get("config", "")
    currency = request.POST.get("currency", "")
    currency = currency if currency_is_valid(currency) else ""
    if len(text) > MAX_CONFIG_BYTES:
        return _error("The config is too long to preview.")
    try:
        config = json.loads(text, parse_float=_refuse_float)
    except _FloatRefused as error:
        return _error(f"{error} is a JSON float: write decimals as strings (\"{error}\"), floats are inexact.")
    except ValueError as error:
        return _error(f"Not JSON yet: {error}.")
    try:
        validate_config(config)
    except ConfigError as error:
        return _error(f"Not a valid price: {error}")
    return HttpResponse(price_preview_html(config, currency=currency))


def _error(message: str) -> HttpResponse:
    return HttpResponse(format_html('<p class="errornote pricing-preview-error">{}</p>', message))
