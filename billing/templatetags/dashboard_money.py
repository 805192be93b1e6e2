"""{% money amount currency %}: an amount as people read it on the dashboard — rounded to the
currency's minor unit (aforo.money.money_display: JPY 0 places, USD 2, KWD 3), the currency on
it, and the exact figure in the title (shown on hover): 0.0075 USD reads "0.01 USD"."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.utils.html import format_html

from aforo.money import decimal_text, money_display

register = template.Library()


@register.simple_tag
def money(amount, currency: str, css_class: str = ""):
    """`amount`: a Decimal or its exact text ("0.0075"); anything else is shown as it is."""
    try:
        exact = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return format_html("{} {}", amount, currency)
    negative = " negative" if exact < 0 else ""
    return format_html(
        '<span class="money{}{}" title="{} {}">{} {}</span>',
        f" {css_class}" if css_class else "", negative, decimal_text(exact), currency,
        money_display(exact, currency), currency,
    )
