"""Dates and numbers in email templates, written the way the recipient's locale writes them.

Filters for the template sandbox, backed by Babel (CLDR data, not hand-kept tables)::

    {{ customer.renewal_date | format_date }}          -> 2027년 3월 29일 (ko), 29.03.2027 (de)
    {{ customer.renewal_date | format_date("long") }}  -> 29. März 2027 (de)
    {{ 12345.5 | format_number }}                      -> 12,345.5 (en), 12.345,5 (de)
    {{ 1200 | format_currency("EUR") }}                -> 1.200,00 € (de)

The locale is the template context's ``locale`` (the recipient's, set by `send_email`), and
English when there is none or Babel does not know it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_date
from babel.numbers import format_currency as babel_currency
from babel.numbers import format_decimal
from jinja2 import pass_context
from jinja2.runtime import Context

DEFAULT_LOCALE = "en"
DATE_FORMATS = ("short", "medium", "long", "full")


def babel_locale(tag: str | None) -> Locale:
    """The Babel locale for a tag such as 'ko', 'de-AT' or 'pt_BR'; English if unknown."""
    try:
        return Locale.parse((tag or DEFAULT_LOCALE).replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(DEFAULT_LOCALE)


def _locale(context: Context) -> Locale:
    value = context.get("locale")
    return babel_locale(value if isinstance(value, str) else None)


@pass_context
def format_date_filter(context: Context, value: Any, format: str = "medium") -> str:
    """A date (or ISO date text) in the recipient's locale: short, medium, long or full."""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        raise TypeError(f"format_date needs a date, got {type(value).__name__}")
    if format not in DATE_FORMATS:
        raise ValueError(f"format_date takes one of {', '.join(DATE_FORMATS)}")
    return str(babel_date(value, format=format, locale=_locale(context)))


@pass_context
def format_number_filter(context: Context, value: Any) -> str:
    """A number with the locale's digit grouping and decimal sign."""
    return str(format_decimal(Decimal(str(value)), locale=_locale(context)))


@pass_context
def format_currency_filter(context: Context, value: Any, currency: str) -> str:
    """An amount of ``currency`` (ISO 4217, e.g. 'EUR') as the locale writes money."""
    return str(babel_currency(Decimal(str(value)), currency, locale=_locale(context)))


FILTERS = {
    "format_date": format_date_filter,
    "format_number": format_number_filter,
    "format_currency": format_currency_filter,
}
