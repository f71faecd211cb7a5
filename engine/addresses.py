"""Email addresses and the text that reaches email headers, checked at every boundary.

An address is checked by ``email-validator`` (RFC 5321/5322 syntax, internationalised
domains; no DNS lookup): quoted local parts, display names, domain literals and markup such
as ``"><img/src=x>@x.example`` are refused. Names and subjects end up in ``To:`` and
``Subject:`` headers, where a CR or LF would start a header of its own: the API and the
store refuse control characters in them, and `one_line` flattens whatever a template
renders (defence in depth).
"""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LENGTH = 320
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
NO_CONTROL = r"^[^\x00-\x1f\x7f\u2028\u2029]*$"
"""A pattern for single-line text: no control characters (CR, LF, NUL, tab...)."""


def check_email(value: str) -> str:
    """The address normalised (trimmed, lower-case), or ValueError saying what is wrong."""
    value = value.strip()
    if len(value) > MAX_EMAIL_LENGTH:
        raise ValueError(f"not an email address: longer than {MAX_EMAIL_LENGTH} characters")
    try:
        # test_environment: accept the reserved "test" domain too; nothing is looked up.
        checked = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(f"not an email address: {value[:100]!r}: {exc}") from None
    return checked.normalized.lower()


def check_line(value: str) -> str:
    """``value`` if it has no control characters (a header value must be one line)."""
    if CONTROL.search(value):
        raise ValueError("must be one line: control characters (CR, LF, tab...) are refused")
    return value


def one_line(value: str) -> str:
    """``value`` with runs of control characters (line breaks...) made one space."""
    return re.sub(r"\s*" + CONTROL.pattern + r"+\s*", " ", value).strip()
